"""What the mail methods call: the store pieces and the limits, and the caller's account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mailstead.http.jmap.dispatch import CallContext
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.standard import Limits
from mailstead.store.interfaces import (
    Accounts,
    Emails,
    Identities,
    Mailboxes,
    Messages,
    PushSubscriptions,
    Submissions,
    Uploads,
    Vacations,
)
from mailstead.store.models import User

#: RFC 8621 §1.1: the capability of the Mailbox, Thread and Email methods.
MAIL = "urn:ietf:params:jmap:mail"


class MailStore(Accounts, Mailboxes, Messages, Emails, Uploads, Identities, Submissions,
                PushSubscriptions, Vacations, Protocol):
    """The store as the mail methods see it."""


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


def response_base(args_account: str, **members: Any) -> dict[str, Any]:
    return {"accountId": args_account, **members}
