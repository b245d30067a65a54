"""The administrative operations: one method per thing an admin can do.

``mailstead domain add`` and ``POST /api/v1/domains`` both end in :meth:`Admin.add_domain`:
the scope check, the audit record and the store call happen here once. Each change is made
inside :func:`~mailstead.store.audit.audited`, so its audit record commits with it. Methods
return the store's records; the front ends shape them (a table, JSON).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from mailstead.admin import tokens
from mailstead.admin.actors import ADMIN, MAIL_PREFIX, Actor, domain_of, parse_scope
from mailstead.admin.dns import DomainRecords, expected_records
from mailstead.admin.dnscheck import DNSLookup, DomainCheck, check_domain
from mailstead.admin.importer import ImportReport, import_path
from mailstead.auth.passwords import NewPassword, PasswordPolicy, generate_password, new_password
from mailstead.config.schema import Settings
from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.rights import apply_change
from mailstead.core.types import Pop3Policy, SendAs
from mailstead.delivery.dkim import DKIMKey, generate_key, load_keys
from mailstead.delivery.dns import HOST_NAME, to_ascii
from mailstead.store.audit import AuditEntry, DetailValue, audited
from mailstead.store.interfaces import Store
from mailstead.store.models import (
    AclEntry,
    Alias,
    ApiToken,
    AuditRecord,
    Domain,
    Group,
    IndexReport,
    Mailbox,
    QueuedMessage,
    User,
)

log = logging.getLogger("mailstead.admin")

T = TypeVar("T")

#: A token's last use is written at most this often (seconds): a busy client would
#: otherwise turn every read into a write.
TOKEN_TOUCH_INTERVAL = 60.0
#: Most audit records one request returns.
MAX_AUDIT_PAGE = 1000
#: The header fields ``queue show`` reports.
QUEUE_HEADER_FIELDS = ("From", "To", "Subject", "Message-ID", "Date")

#: Refuses a password a person chose (password, address) with a reason: the password
#: rules of auth/password_rules.py, bound to the configuration by the composition root.
PasswordCheck = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class QueuedDetail:
    """A queued message with the header fields an operator recognises it by."""

    message: QueuedMessage
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class SetupResult:
    """What ``setup`` did for a domain; ``password`` is the new postmaster's, shown once."""

    domain: str
    domain_created: bool
    postmaster: str
    password: str | None  # None: the postmaster existed already, its password unchanged
    dkim_key: DKIMKey
    dkim_created: bool


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``text`` is the only copy of its secret."""

    token: ApiToken
    text: str


class Admin:
    """The operations over one store, for one configuration."""

    def __init__(self, store: Store, settings: Settings, policy: PasswordPolicy,
                 check_password: PasswordCheck) -> None:
        self.store = store
        self.settings = settings
        self._policy = policy
        self._check_password = check_password
        self._scram_iterations = settings.auth.scram_iterations if settings.auth.scram else None
        self._touched: dict[int, float] = {}

    # -- helpers -------------------------------------------------------------------------------

    async def _audited(self, actor: Actor, action: str, target: str,
                       change: Callable[[], Awaitable[T]],
                       **detail: DetailValue) -> T:
        entry = AuditEntry(actor=actor.name, source=actor.source, action=action,
                           target=target, detail=detail)
        with audited(entry) as scope:
            result = await change()
        if not scope.recorded:  # the change wrote nothing itself (a file): record it alone
            await self.store.record_audit(entry)
        log.info("admin: %s by %s from %s: %s", action, actor.name, actor.source, target)
        return result

    async def _hash(self, address: str, password: str) -> NewPassword:
        """The argon2id hash of a password being set and, when SCRAM is on, its SCRAM keys
        (decision 0026): both from the one moment the password is known."""
        self._check_password(password, address)
        return await asyncio.to_thread(new_password, password, self._policy, self._scram_iterations)

    async def require_domain(self, address: str) -> None:
        """NotFound, with the command that fixes it, unless the address's domain is here."""
        domain = domain_of(address)
        if not domain or not await self.store.has_domain(domain):
            raise NotFound(f"domain {domain or '?'} does not exist "
                           f"(add it first: mailstead domain add {domain or 'DOMAIN'})")

    async def get_user(self, actor: Actor, address: str) -> User:
        actor.require_address(address, "reading an account")
        user = await self.store.find_user(address)
        if user is None or user.address.lower() != address.strip().lower():
            # find_user also matches user+tag@: an admin names the account itself
            raise NotFound(f"user {address} does not exist")
        return user

    def _scoped_domain(self, actor: Actor, domain: str | None, what: str) -> str | None:
        """The domain a listing covers: the caller's own for a domain-scoped token."""
        actor.require_manager(what)
        if domain is not None:
            actor.require_domain(domain, what)
            return domain
        return actor.domain

    # -- domains -------------------------------------------------------------------------------

    async def add_domain(self, actor: Actor, name: str) -> Domain:
        actor.require_admin("adding a domain")
        return await self._audited(actor, "domain.add", name.strip().lower(),
                                   lambda: self.store.add_domain(name))

    async def list_domains(self, actor: Actor) -> list[Domain]:
        actor.require_manager("listing domains")
        domains = await self.store.list_domains()
        return [d for d in domains if actor.may_manage(d.name)]

    async def remove_domain(self, actor: Actor, name: str) -> None:
        actor.require_admin("removing a domain")
        await self._audited(actor, "domain.remove", name.strip().lower(),
                            lambda: self.store.remove_domain(name))

    # -- users ---------------------------------------------------------------------------------

    async def add_user(self, actor: Actor, address: str, password: str, *,
                       quota_bytes: int = 0) -> User:
        actor.require_address(address, "adding an account")
        await self.require_domain(address)
        secret = await self._hash(address, password)
        return await self._audited(
            actor, "user.add", address,
            lambda: self.store.add_user(address, secret.hash, quota_bytes=quota_bytes,
                                        scram=secret.scram),
            quota_bytes=quota_bytes)

    async def list_users(self, actor: Actor, domain: str | None = None) -> list[User]:
        return await self.store.list_users(self._scoped_domain(actor, domain, "listing users"))

    async def set_password(self, actor: Actor, address: str, password: str) -> None:
        user = await self.get_user(actor, address)
        secret = await self._hash(user.address, password)
        await self._audited(actor, "user.passwd", user.address,
                            lambda: self.store.set_password(user.address, secret.hash,
                                                            scram=secret.scram))

    async def change_own_password(self, address: str, source: str, password: str) -> None:
        """The account holder sets a new password (the caller checked the current one)."""
        actor = Actor(name=f"user {address}", source=source,
                      scope=f"domain:{domain_of(address)}")
        secret = await self._hash(address, password)
        await self._audited(actor, "user.passwd", address,
                            lambda: self.store.set_password(address, secret.hash,
                                                            scram=secret.scram))

    async def set_disabled(self, actor: Actor, address: str, disabled: bool) -> None:
        user = await self.get_user(actor, address)
        await self._audited(actor, "user.disable" if disabled else "user.enable",
                            user.address,
                            lambda: self.store.set_disabled(user.address, disabled))

    async def remove_user(self, actor: Actor, address: str) -> None:
        user = await self.get_user(actor, address)
        await self._audited(actor, "user.remove", user.address,
                            lambda: self.store.remove_user(user.address))

    async def set_quota(self, actor: Actor, address: str, quota_bytes: int) -> None:
        user = await self.get_user(actor, address)
        await self._audited(actor, "user.quota", user.address,
                            lambda: self.store.set_quota(user.address, quota_bytes),
                            quota_bytes=quota_bytes)

    async def set_pop3_policy(self, actor: Actor, address: str, policy: Pop3Policy) -> None:
        user = await self.get_user(actor, address)
        await self._audited(actor, "user.pop3-policy", user.address,
                            lambda: self.store.set_pop3_policy(user.address, policy),
                            policy=policy.value)

    async def set_plus_folders(self, actor: Actor, address: str, enabled: bool) -> None:
        user = await self.get_user(actor, address)
        await self._audited(actor, "user.plus-folders", user.address,
                            lambda: self.store.set_plus_folders(user.address, enabled),
                            enabled=enabled)

    async def set_send_as(self, actor: Actor, address: str, send_as: SendAs) -> None:
        user = await self.get_user(actor, address)
        await self._audited(actor, "user.send-as", user.address,
                            lambda: self.store.set_send_as(user.address, send_as),
                            send_as=send_as.value)

    # -- aliases and groups --------------------------------------------------------------------

    async def add_alias(self, actor: Actor, source: str, targets: Sequence[str]) -> Alias:
        actor.require_address(source, "adding an alias")
        return await self._audited(actor, "alias.add", source,
                                   lambda: self.store.add_alias(source, list(targets)),
                                   targets=list(targets))

    async def list_aliases(self, actor: Actor, domain: str | None = None) -> list[Alias]:
        return await self.store.list_aliases(
            self._scoped_domain(actor, domain, "listing aliases"))

    async def remove_alias(self, actor: Actor, source: str, target: str | None = None) -> None:
        actor.require_address(source, "removing an alias")
        await self._audited(actor, "alias.remove", source,
                            lambda: self.store.remove_alias(source, target), only=target)

    async def add_group(self, actor: Actor, address: str, members: Sequence[str]) -> Group:
        actor.require_address(address, "adding a group")
        return await self._audited(actor, "group.add", address,
                                   lambda: self.store.add_group(address, list(members)),
                                   members=list(members))

    async def list_groups(self, actor: Actor, domain: str | None = None) -> list[Group]:
        return await self.store.list_groups(self._scoped_domain(actor, domain, "listing groups"))

    async def get_group(self, actor: Actor, address: str) -> Group:
        actor.require_address(address, "reading a group")
        group = await self.store.find_group(address)
        if group is None:
            raise NotFound(f"group {address} does not exist")
        return group

    async def remove_group(self, actor: Actor, address: str) -> None:
        actor.require_address(address, "removing a group")
        await self._audited(actor, "group.remove", address,
                            lambda: self.store.remove_group(address))

    async def add_group_member(self, actor: Actor, address: str, member: str) -> Group:
        actor.require_address(address, "changing a group")
        return await self._audited(actor, "group.member.add", address,
                                   lambda: self.store.add_group_member(address, member),
                                   member=member)

    async def remove_group_member(self, actor: Actor, address: str, member: str) -> Group:
        actor.require_address(address, "changing a group")
        return await self._audited(actor, "group.member.remove", address,
                                   lambda: self.store.remove_group_member(address, member),
                                   member=member)

    # -- mailboxes and messages ----------------------------------------------------------------

    async def list_mailboxes(self, actor: Actor, address: str) -> list[Mailbox]:
        user = await self.get_user(actor, address)
        return await self.store.list_mailboxes(user.id)

    # -- sharing (RFC 4314 access control lists, decision 0028) -------------------------------

    async def _shared_mailbox(self, actor: Actor, owner: str,
                              mailbox: str) -> tuple[User, Mailbox]:
        user = await self.get_user(actor, owner)
        actor.require_address(owner, "sharing an account's mailboxes")
        return user, await self.store.get_mailbox(user.id, mailbox)

    async def share_grant(self, actor: Actor, owner: str, mailbox: str, grantee: str,
                          rights: str) -> str:
        """Give ``grantee`` (an address or ``anyone``) rights on the owner's mailbox:
        ``lrs`` replaces its grant, ``+w`` adds, ``-w`` removes (as IMAP SETACL). The
        owner's domain is the scope; the grantee may be in any domain. Returns the
        rights the grantee has now."""
        user, box = await self._shared_mailbox(actor, owner, mailbox)
        current = next((e.rights for e in await self.store.get_acl(box.id)
                        if e.identifier.lower() == grantee.strip().lower()), "")
        new = apply_change(current, rights)
        await self._audited(actor, "share.grant", user.address,
                            lambda: self.store.set_acl(box.id, grantee.strip(), new),
                            mailbox=mailbox, grantee=grantee.strip(), rights=new)
        return new

    async def share_revoke(self, actor: Actor, owner: str, mailbox: str,
                           grantee: str) -> None:
        user, box = await self._shared_mailbox(actor, owner, mailbox)
        await self._audited(actor, "share.revoke", user.address,
                            lambda: self.store.set_acl(box.id, grantee.strip(), ""),
                            mailbox=mailbox, grantee=grantee.strip())

    async def share_list(self, actor: Actor, owner: str) -> list[tuple[str, AclEntry]]:
        """Every grant on the owner's mailboxes, by mailbox name."""
        user = await self.get_user(actor, owner)
        grants: list[tuple[str, AclEntry]] = []
        for box in await self.store.list_mailboxes(user.id):
            grants.extend((box.name, entry) for entry in await self.store.get_acl(box.id))
        return grants

    async def import_messages(self, actor: Actor, address: str, path: Path,
                              folder: str | None) -> list[ImportReport]:
        """An mbox file or a Maildir at ``path`` (on this machine) into the account."""
        user = await self.get_user(actor, address)
        spool = self.settings.data_dir / "spool"
        reports: list[ImportReport] = []

        async def run() -> None:
            reports.extend(await import_path(
                self.store, user.address, path, folder,
                max_size=self.settings.limits.max_message_size, spool=spool))

        await self._audited(actor, "message.import", user.address, run, folder=folder)
        return reports

    async def integrity_check(self, actor: Actor) -> list[str]:
        actor.require_admin("checking the mailstore")
        return await self.store.integrity_check()

    async def rebuild_index(self, actor: Actor, address: str | None) -> IndexReport:
        """Write the SEARCH full-text index of one account (or, for an administrator, of
        every account) again from the stored messages (decision 0027)."""
        if address is None:
            actor.require_admin("rebuilding every account's search index")
            user_id, target = None, "*"
        else:
            user = await self.get_user(actor, address)
            user_id, target = user.id, user.address
        return await self._audited(
            actor, "index.rebuild", target, lambda: self.store.rebuild_index(user_id)
        )

    # -- the outbound queue --------------------------------------------------------------------

    async def queue_list(self, actor: Actor) -> list[QueuedMessage]:
        actor.require_admin("reading the queue")
        return await self.store.queued_messages()

    async def queue_show(self, actor: Actor, queue_id: int) -> QueuedDetail:
        actor.require_admin("reading the queue")
        message = await self.store.get_queued(queue_id)
        head = await self.store.read_blob(message.blob_id, 0, 64 * 1024)
        parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head)
        headers: dict[str, str] = {}
        for name in QUEUE_HEADER_FIELDS:
            value = parsed.get(name)
            if value is not None:
                headers[name] = " ".join(str(value).split())
        return QueuedDetail(message, headers)

    async def queue_retry(self, actor: Actor, queue_id: int | None) -> int:
        actor.require_admin("steering the queue")
        return await self._audited(
            actor, "queue.retry", "all" if queue_id is None else str(queue_id),
            lambda: self.store.retry_queue(queue_id, datetime.now(UTC)))

    async def queue_delete(self, actor: Actor, queue_id: int) -> None:
        actor.require_admin("steering the queue")
        await self._audited(actor, "queue.delete", str(queue_id),
                            lambda: self.store.remove_queued(queue_id))

    async def queue_hold(self, actor: Actor, queue_id: int, held: bool) -> None:
        actor.require_admin("steering the queue")
        await self._audited(actor, "queue.hold" if held else "queue.release", str(queue_id),
                            lambda: self.store.set_queue_held(queue_id, held))

    # -- DKIM ----------------------------------------------------------------------------------

    async def dkim_keygen(self, actor: Actor, domain: str, selector: str = "mail",
                          algorithm: str = "rsa2048") -> DKIMKey:
        actor.require_domain(domain, "making a DKIM key")
        if not await self.store.has_domain(domain):
            raise NotFound(f"domain {domain} does not exist")
        data_dir = self.settings.data_dir
        return await self._audited(
            actor, "dkim.keygen", domain.strip().lower(),
            lambda: asyncio.to_thread(generate_key, data_dir, domain, selector, algorithm),
            selector=selector, algorithm=algorithm)

    async def dkim_list(self, actor: Actor) -> list[DKIMKey]:
        actor.require_manager("listing DKIM keys")
        keys = await asyncio.to_thread(load_keys, self.settings.data_dir)
        return [key for domain, found in sorted(keys.items()) if actor.may_manage(domain)
                for key in found]

    # -- DNS -----------------------------------------------------------------------------------

    async def dns_records(self, actor: Actor, name: str) -> DomainRecords:
        """Every record a hosted domain needs (admin/dns.py), for its current DKIM keys."""
        try:
            domain = to_ascii(name.strip())
        except ValueError:
            domain = ""
        if not HOST_NAME.match(domain):
            raise InvalidName(f"not a domain name: {name[:100]!r}")
        actor.require_domain(domain, "reading DNS records")
        if not await self.store.has_domain(domain):
            raise NotFound(f"no mail domain {domain} here "
                           f"(add it: mailstead domain add {domain})")
        keys = (await asyncio.to_thread(load_keys, self.settings.data_dir)).get(domain, [])
        return expected_records(domain, self.settings, keys)

    async def dns_check(self, actor: Actor, name: str,
                        lookup: DNSLookup | None = None) -> DomainCheck:
        """What the DNS publishes for the domain, record by record (admin/dnscheck.py)."""
        records = await self.dns_records(actor, name)
        resolver = lookup if lookup is not None else DNSLookup.from_settings(self.settings)
        return await check_domain(records, self.settings, resolver)

    # -- the quickstart ------------------------------------------------------------------------

    async def setup(self, actor: Actor, domain: str) -> SetupResult:
        """Make a domain ready to use: the domain, postmaster@ with a new password, a DKIM
        key. Whatever exists already is kept, so running it twice is harmless."""
        actor.require_admin("setting up a domain")
        name = domain.strip().lower().rstrip(".")
        created = not await self.store.has_domain(name)
        if created:
            await self.add_domain(actor, name)
        postmaster = f"postmaster@{name}"
        password: str | None = None
        if await self.store.find_user(postmaster) is None:
            password = generate_password()
            await self.add_user(actor, postmaster, password)
        keys = (await asyncio.to_thread(load_keys, self.settings.data_dir)).get(name, [])
        if keys:
            key, dkim_created = keys[0], False
        else:
            key, dkim_created = await self.dkim_keygen(actor, name), True
        return SetupResult(domain=name, domain_created=created, postmaster=postmaster,
                           password=password, dkim_key=key, dkim_created=dkim_created)

    # -- API tokens and the audit log ----------------------------------------------------------

    async def create_token(self, actor: Actor, name: str, scope: str) -> NewToken:
        actor.require_admin("creating a token")
        label = " ".join(name.split())
        if not label or len(label) > 100:
            raise InvalidName("a token needs a name of 1 to 100 characters (what uses it)")
        scope = parse_scope(scope)
        if scope.startswith("domain:") and not await self.store.has_domain(scope[7:]):
            raise NotFound(f"domain {scope[7:]} does not exist")
        if scope.startswith(MAIL_PREFIX):
            owner = await self.store.find_user(scope[len(MAIL_PREFIX):])
            if owner is None:
                raise NotFound(f"account {scope[len(MAIL_PREFIX):]} does not exist")
            scope = MAIL_PREFIX + owner.address.lower()  # the account, not an alias of it
        secret = tokens.new_secret()
        token = await self._audited(
            actor, "token.create", label,
            lambda: self.store.add_token(label, scope, tokens.secret_hash(secret), actor.name),
            scope=scope)
        return NewToken(token, tokens.token_text(token.id, secret))

    async def list_tokens(self, actor: Actor) -> list[ApiToken]:
        actor.require_admin("listing tokens")
        return await self.store.list_tokens()

    async def revoke_token(self, actor: Actor, token_id: int) -> None:
        actor.require_admin("revoking a token")
        await self._audited(actor, "token.revoke", str(token_id),
                            lambda: self.store.revoke_token(token_id))

    async def authenticate_token(self, text: str, source: str) -> Actor | None:
        """The actor a bearer token stands for, or None (unknown, wrong or revoked)."""
        presented = tokens.parse_token(text)
        if presented is None:
            return None
        token = await self.store.find_token(presented.token_id)
        if token is None or not tokens.matches(token, presented):
            return None
        now = time.monotonic()
        if now - self._touched.get(token.id, -TOKEN_TOUCH_INTERVAL) >= TOKEN_TOUCH_INTERVAL:
            self._touched[token.id] = now
            await self.store.touch_token(token.id, datetime.now(UTC), source)
        return Actor(name=f"token {token.id} ({token.name})", source=source, scope=token.scope)

    async def audit_log(self, actor: Actor, *, limit: int = 100, before: int | None = None,
                        target: str | None = None) -> list[AuditRecord]:
        """Newest first. A domain-scoped token reads the records of its domain only."""
        if not 1 <= limit <= MAX_AUDIT_PAGE:
            raise InvalidName(f"limit must be 1 to {MAX_AUDIT_PAGE}")
        if actor.scope != ADMIN:
            scoped = actor.domain
            if scoped is None:
                actor.require_admin("reading the audit log")
            elif target is None:
                target = scoped
            else:
                actor.require_address(target if "@" in target else "@" + target,
                                      "reading the audit log")
        return await self.store.audit_log(limit, before, target)

