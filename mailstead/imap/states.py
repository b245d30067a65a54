"""The session's state, as values that carry what the state needs (RFC 9051 §3).

Not authenticated, authenticated as a user, selected (a user, a mailbox view and the
subscription to the account's changes), logged out. Because the data travels with the
state, "selected without a mailbox" or "authenticated without a user" cannot be written,
and no handler needs to assert that a user or a view is there: the dispatcher checks the
state once, from the command table, and hands the handler what it needs.

The kinds follow ``imaplib.Commands``: NONAUTH, AUTH, SELECTED, LOGOUT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

from mailstead.imap.live import LiveResults
from mailstead.imap.selected import SelectedMailbox
from mailstead.store.changes import Subscription
from mailstead.store.models import User


class StateKind(Enum):
    NONAUTH = "NONAUTH"
    AUTH = "AUTH"
    SELECTED = "SELECTED"
    LOGOUT = "LOGOUT"


@dataclass(frozen=True, slots=True)
class NotAuthenticated:
    """Before LOGIN or AUTHENTICATE (RFC 9051 §3.1)."""

    kind: ClassVar[StateKind] = StateKind.NONAUTH


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Logged in, no mailbox selected (RFC 9051 §3.2)."""

    user: User
    kind: ClassVar[StateKind] = StateKind.AUTH


@dataclass(frozen=True, slots=True)
class Selected:
    """A mailbox is selected (RFC 9051 §3.3). The subscription to the account's changes
    exists exactly as long as this state: it is opened before the mailbox is read, so no
    change slips between the read and the first update, and closed when the mailbox is
    left. So do the live results of SEARCH and SORT ``RETURN (UPDATE)`` (RFC 5267 §4.3:
    they end when the mailbox is no longer selected)."""

    user: User
    view: SelectedMailbox
    subscription: Subscription
    live: LiveResults = field(default_factory=LiveResults)
    kind: ClassVar[StateKind] = StateKind.SELECTED


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """After LOGOUT (RFC 9051 §3.4): the connection closes."""

    kind: ClassVar[StateKind] = StateKind.LOGOUT


SessionState = NotAuthenticated | Authenticated | Selected | LoggedOut

# Where each command may run (RFC 9051 §6): the command table uses these sets.
ANY = frozenset({StateKind.NONAUTH, StateKind.AUTH, StateKind.SELECTED})
NOT_AUTHENTICATED = frozenset({StateKind.NONAUTH})
AUTHENTICATED = frozenset({StateKind.AUTH, StateKind.SELECTED})
ONLY_AUTHENTICATED = frozenset({StateKind.AUTH})  # RFC 5161 §3.1 ENABLE: before SELECT
SELECTED = frozenset({StateKind.SELECTED})
