"""The JMAP endpoints of a server, built from its settings and store (serve.py calls
:func:`jmap_services`); the mail, submission (Identity, EmailSubmission), quota, blob
and vacation-response methods, and PushSubscription, registered on the core's dispatch."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from mailstead.admin.actors import Actor
from mailstead.auth.authenticator import Authenticator, UserRecord
from mailstead.config.schema import Settings
from mailstead.delivery.deliver import Deliverer
from mailstead.http.jmap import mail
from mailstead.http.jmap.app import JMAPServices
from mailstead.http.jmap.dispatch import Methods
from mailstead.http.jmap.mail.blob_calls import BLOB, BlobMethods
from mailstead.http.jmap.mail.blob_calls import account_capability as blob_account_capability
from mailstead.http.jmap.mail.blobs import AccountBlobs
from mailstead.http.jmap.mail.identities import SUBMISSION, IdentityMethods
from mailstead.http.jmap.mail.ids import state_text
from mailstead.http.jmap.mail.quotas import QUOTA, QuotaMethods
from mailstead.http.jmap.mail.services import (
    WRITE_RIGHTS,
    MailServices,
    MailStore,
    shared_by_owner,
)
from mailstead.http.jmap.mail.submissions import SubmissionMethods, SubmissionSettings
from mailstead.http.jmap.mail.vacation import VACATION, VacationMethods
from mailstead.http.jmap.push import ChangeFeed
from mailstead.http.jmap.push_subscriptions import (
    PushNotifier,
    PushSubscriptionMethods,
    SubscriptionPolicy,
)
from mailstead.http.jmap.session import Capabilities, OtherAccount
from mailstead.http.jmap.standard import Limits
from mailstead.http.jmap.vapid import WEBPUSH_VAPID
from mailstead.store.models import User


class TokenCheck(Protocol):
    """Who an API token stands for (admin/service.py's AdminService)."""

    async def authenticate_token(self, text: str, source: str) -> Actor | None: ...


def account_id(user_id: int) -> str:
    """An account's JMAP id: ``A`` and its number in the store (stable for its life)."""
    return f"A{user_id}"


def account_id_of(user: UserRecord) -> str:
    """The JMAP id of an authenticated account (:func:`account_id` of the store's)."""
    if isinstance(user, User):
        return account_id(user.id)
    # Not the store's record (a test's): an id from the address, stable all the same.
    return "A" + hashlib.sha256(user.address.lower().encode()).hexdigest()[:16]


class StorePush:
    """Push from the store: its change bus and the account's mod-sequence (every type's
    state, http/jmap/mail/ids.py)."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def _user_id(self, user: UserRecord) -> int:
        if isinstance(user, User):
            return user.id
        found = await self.store.find_user(user.address)
        if found is None:
            raise LookupError("the account no longer exists")
        return found.id

    async def subscribe(self, user: UserRecord) -> ChangeFeed:
        return self.store.changes.subscribe(await self._user_id(user))

    async def state(self, user: UserRecord) -> str:
        return state_text(await self.store.account_state(await self._user_id(user)))


def jmap_services(settings: Settings, store: MailStore, authenticator: Authenticator,
                  deliverer: Deliverer, web_push: PushNotifier, tokens: TokenCheck | None = None,
                  vapid_key: str | None = None) -> JMAPServices:
    """``deliverer`` is the one SMTP submission commits through: EmailSubmission sends
    with it, so a message sent over JMAP is checked, signed, stored and queued exactly as
    one sent over SMTP. ``web_push`` is the sender of PushSubscriptions (webpush.py),
    which serve.py starts and stops with the server. ``tokens`` checks API tokens: a
    ``mail:`` token then stands for its account in ``Authorization: Bearer``. ``vapid_key``
    is the application server key pushes are signed with (RFC 9749), announced in the
    session."""
    limits = Limits.from_settings(settings.jmap, settings.http)
    services = MailServices(store, limits, max_message_size=settings.limits.max_message_size)
    methods = Methods()
    emails = mail.register(methods, services)
    identities = IdentityMethods(services, deliverer.router)
    identities.register(methods)
    SubmissionMethods(services, identities, emails, deliverer, SubmissionSettings(
        hostname=settings.hostname, max_recipients=settings.smtp.max_recipients,
    )).register(methods)
    QuotaMethods(services).register(methods)
    BlobMethods(services).register(methods)
    PushSubscriptionMethods(
        services, SubscriptionPolicy.from_settings(settings.jmap), web_push
    ).register(methods)
    VacationMethods(services).register(methods)
    account_capability = mail.account_capability(services)
    blob_capability = blob_account_capability(services)
    # RFC 8621 §1.3.2: no delayed sending, no SMTP extensions in envelope parameters.
    submission_capability = {"maxDelayedSend": 0, "submissionExtensions": {}}

    def capabilities(user: UserRecord) -> tuple[Capabilities, Capabilities]:
        # RFC 8621 §1.3.3: the vacationresponse capability is an empty object in both.
        server: dict[str, dict[str, Any]] = {
            mail.MAIL: {}, SUBMISSION: {}, QUOTA: {}, BLOB: {}, VACATION: {}}
        if vapid_key is not None:
            server[WEBPUSH_VAPID] = {"applicationServerKey": vapid_key}  # RFC 9749 §3
        return (server,
                {mail.MAIL: account_capability, SUBMISSION: submission_capability,
                 QUOTA: {}, BLOB: blob_capability, VACATION: {}})

    async def bearer(token: str, client: str) -> UserRecord | None:
        assert tokens is not None
        actor = await tokens.authenticate_token(token, client)
        address = actor.mail_account if actor is not None else None
        user = await store.find_user(address) if address is not None else None
        return user if user is not None and not user.disabled else None

    async def others(user: UserRecord) -> list[OtherAccount]:
        """RFC 8620 §1.6.2: every owner who shares a mailbox with the user is an account
        of its session, with the mail capability only (decision 0028); read-only when no
        grant lets the user change anything."""
        own = user if isinstance(user, User) else await store.find_user(user.address)
        if own is None:
            return []
        found: list[OtherAccount] = []
        for owner_id, shared in sorted(shared_by_owner(await store.shared_with(own.id)).items()):
            granted = "".join(s.rights for s in shared)
            found.append(OtherAccount(
                account_id=f"A{owner_id}", name=shared[0].owner,
                read_only=not any(r in granted for r in WRITE_RIGHTS),
                capabilities={mail.MAIL: {**account_capability,
                                          "mayCreateTopLevelMailbox": False}},
            ))
        return found

    async def state(user: UserRecord) -> str:
        return ""  # the session changes only with the server's configuration

    return JMAPServices(
        authenticator=authenticator,
        methods=methods,
        blobs=AccountBlobs(store),
        account_id_of=account_id_of,
        capabilities=capabilities,
        state=state,
        limits=limits,
        allow_plaintext=settings.auth.allow_plaintext,
        push=StorePush(store),
        bearer=bearer if tokens is not None else None,
        others=others,
    )
