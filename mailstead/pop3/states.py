"""The three POP3 session states (RFC 1939 §3), each carrying the data valid in it.

A state is a value, not a flag beside loose attributes: TRANSACTION holds the locked
maildrop and the account's policy, so "in TRANSACTION without a maildrop" cannot be
written and no handler has to check for it. The session replaces its state whole
(:attr:`mailstead.pop3.session.Session.state`); handlers receive the state they are
allowed in from the dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstead.core.types import Pop3Policy
from mailstead.pop3.errors import POP3Error
from mailstead.pop3.maildrop import Maildrop, MaildropMessage


@dataclass(frozen=True, slots=True)
class Authorization:
    """RFC 1939 §4: before login. ``pending_user`` is the name a USER command gave, kept
    for the PASS that must follow it directly (RFC 1939 §7); any other command drops it."""

    pending_user: str | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    """RFC 1939 §5: logged in, with the maildrop locked and snapshotted, and the policy
    QUIT will commit the deletion marks under."""

    user_id: int
    maildrop: Maildrop
    policy: Pop3Policy

    def message(self, number: int) -> MaildropMessage:
        """The message with this number; -ERR if there is none or it is marked deleted
        (RFC 1939 §5: "may not refer to a message marked as deleted")."""
        found = self.maildrop.get(number)
        if found is None:
            if self.maildrop.is_deleted(number):
                raise POP3Error(f"message {number} already deleted")
            raise POP3Error("no such message")
        return found


@dataclass(frozen=True, slots=True)
class Update:
    """RFC 1939 §6: QUIT is committing the marks; the maildrop is still locked until the
    session ends."""

    user_id: int


State = Authorization | Transaction | Update

#: The states a command may be allowed in, as a spec's ``states`` names them.
AUTHORIZATION: tuple[type[Authorization], ...] = (Authorization,)
TRANSACTION: tuple[type[Transaction], ...] = (Transaction,)
EITHER: tuple[type[Authorization | Transaction], ...] = (Authorization, Transaction)
