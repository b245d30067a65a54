"""What the mail methods call: the store pieces and the limits, and the account of a call:
the caller's own, or another user's whose owner shares mailboxes with it (RFC 8620
§1.6.2, decision 0028), seen through the rights the owner granted (RFC 4314)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mailstead.core.rights import RIGHTS, overlay
from mailstead.core.types import UID
from mailstead.http.jmap.dispatch import CallContext
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.standard import Limits
from mailstead.store.interfaces import (
    Accounts,
    Emails,
    Identities,
    MailboxAcls,
    Mailboxes,
    Messages,
    PushSubscriptions,
    Submissions,
    Uploads,
    Vacations,
)
from mailstead.store.models import EmailRecord, SharedMailbox, User

#: RFC 8621 §1.1: the capability of the Mailbox, Thread and Email methods.
MAIL = "urn:ietf:params:jmap:mail"


#: An account's JMAP id: ``A`` and its number in the store (http/jmap/server.py).
_ACCOUNT_ID = re.compile(r"A([0-9]{1,18})")
#: The rights that let a grantee change anything in a mailbox: without one in any shared
#: mailbox, the account is read-only (RFC 8620 §2 ``isReadOnly``).
WRITE_RIGHTS = "swipkxte"


class MailStore(Accounts, Mailboxes, Messages, Emails, Uploads, Identities, Submissions,
                PushSubscriptions, Vacations, MailboxAcls, Protocol):
    """The store as the mail methods see it."""


@dataclass(frozen=True, slots=True)
class MailAccount:
    """The account a call is for, as the caller may see it. ``owner`` holds the mail;
    ``viewer`` is the caller. On its own account ``rights`` is None: every mailbox, every
    right. On a shared one it is the rights on each mailbox shared with the caller (RFC
    4314, the same grants IMAP applies): only those mailboxes exist for the call, and an
    email only through its copies in mailboxes the caller may read ("r")."""

    owner: User
    viewer: User
    rights: Mapping[int, str] | None = None
    #: The caller's own \Seen in each readable shared mailbox (decision 0028): what its
    #: ``$seen`` is there, in place of the owner's.
    seen: Mapping[int, frozenset[UID]] = field(default_factory=dict)

    @property
    def own(self) -> bool:
        return self.rights is None

    def rights_on(self, mailbox_id: int) -> str:
        """The caller's rights on a mailbox of the account ("" on one not shared)."""
        if self.rights is None:
            return RIGHTS
        return self.rights.get(mailbox_id, "")

    def may(self, mailbox_id: int, needed: str) -> bool:
        """Whether every right in ``needed`` is granted on the mailbox."""
        rights = self.rights_on(mailbox_id)
        return all(r in rights for r in needed)

    def shows_mailbox(self, mailbox_id: int) -> bool:
        """RFC 4314 §4: a mailbox the caller may neither look up nor read does not exist."""
        return self.rights is None or self.may(mailbox_id, "l") or self.may(mailbox_id, "r")

    def view(self, record: EmailRecord) -> EmailRecord | None:
        """The email as the caller sees it: its copies in mailboxes it may read; None when
        there is none (the email does not exist for the caller)."""
        if self.rights is None:
            return record
        copies = tuple(
            replace(c, flags=overlay(c.flags, c.uid in self.seen.get(c.mailbox_id, ())))
            for c in record.copies if self.may(c.mailbox_id, "r"))
        return replace(record, copies=copies) if copies else None

    def views(self, records: Iterable[EmailRecord]) -> list[EmailRecord]:
        """The records the caller sees, as :meth:`view` shows each, in their order."""
        if self.rights is None:
            return list(records)
        seen = (self.view(r) for r in records)
        return [r for r in seen if r is not None]


def shared_by_owner(shared: Iterable[SharedMailbox]) -> dict[int, list[SharedMailbox]]:
    """The mailboxes shared with a user, by the owner's account id."""
    owners: dict[int, list[SharedMailbox]] = {}
    for item in shared:
        owners.setdefault(item.mailbox.user_id, []).append(item)
    return owners


@dataclass(frozen=True, slots=True)
class MailServices:
    store: MailStore
    limits: Limits
    max_message_size: int = 50 * 1024**2  # the largest message Email/import and set store

    async def user(self, context: CallContext) -> User:
        """The caller's account as the store has it (the authenticator's record is the
        store's, unless a test or a future directory hands another kind)."""
        if isinstance(context.user, User):
            return context.user
        found = await self.store.find_user(context.user.address)
        if found is None:
            raise MethodError("accountNotFound", "the account no longer exists")
        return found

    async def account(self, context: CallContext, account_id: Any) -> MailAccount:
        """The account the call names (its ``accountId``, checked by dispatch to be one of
        the session's): the caller's own, or another's seen through the grants it holds
        now (re-read for every call, so a revoke applies from the next one)."""
        viewer = await self.user(context)
        if account_id is None or account_id == context.account_id:
            return MailAccount(viewer, viewer)
        found = await account_of(self.store, viewer, account_id)
        if found is None or found.own:
            raise MethodError("accountNotFound", "no such account for these credentials")
        return found


async def account_of(store: MailStore, viewer: User, account_id: Any) -> MailAccount | None:
    """The account ``account_id`` names as ``viewer`` may see it: its own, or another's
    that shares mailboxes with it (with the grants and the viewer's own \\Seen as they
    are now); None for any other id."""
    match = _ACCOUNT_ID.fullmatch(account_id) if isinstance(account_id, str) else None
    if match is None:
        return None
    owner_id = int(match.group(1))
    if owner_id == viewer.id:
        return MailAccount(viewer, viewer)
    shared = shared_by_owner(await store.shared_with(viewer.id)).get(owner_id)
    if not shared:
        return None
    owner = await store.get_user(owner_id)
    seen = {s.mailbox.id: frozenset(await store.private_seen(s.mailbox.id, viewer.id))
            for s in shared if "r" in s.rights}
    return MailAccount(owner, viewer, {s.mailbox.id: s.rights for s in shared}, seen)


def response_base(args_account: str, **members: Any) -> dict[str, Any]:
    return {"accountId": args_account, **members}
