"""Which command is allowed in which state (RFC 9051 §3, §6), checked once before dispatch.

State names follow ``imaplib.Commands``: NONAUTH, AUTH, SELECTED, LOGOUT.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    NONAUTH = "NONAUTH"
    AUTH = "AUTH"
    SELECTED = "SELECTED"
    LOGOUT = "LOGOUT"


_ANY = frozenset({State.NONAUTH, State.AUTH, State.SELECTED})
_NONAUTH = frozenset({State.NONAUTH})
_AUTHED = frozenset({State.AUTH, State.SELECTED})
_SELECTED = frozenset({State.SELECTED})

ALLOWED: dict[str, frozenset[State]] = {
    # RFC 9051 §6.1 any state; RFC 2971 ID
    "CAPABILITY": _ANY,
    "NOOP": _ANY,
    "LOGOUT": _ANY,
    "ID": _ANY,
    # §6.2 not authenticated
    "STARTTLS": _NONAUTH,
    "AUTHENTICATE": _NONAUTH,
    "LOGIN": _NONAUTH,
    # §6.3 authenticated (also valid when a mailbox is selected); RFC 5161 §3.1 ENABLE is
    # only valid before a mailbox is selected.
    "ENABLE": frozenset({State.AUTH}),
    "SELECT": _AUTHED,
    "EXAMINE": _AUTHED,
    "CREATE": _AUTHED,
    "DELETE": _AUTHED,
    "RENAME": _AUTHED,
    "SUBSCRIBE": _AUTHED,
    "UNSUBSCRIBE": _AUTHED,
    "LIST": _AUTHED,
    "LSUB": _AUTHED,
    "NAMESPACE": _AUTHED,
    "STATUS": _AUTHED,
    "APPEND": _AUTHED,
    "IDLE": _AUTHED,
    # RFC 9208 §4.1: QUOTA commands, authenticated or selected
    "GETQUOTA": _AUTHED,
    "GETQUOTAROOT": _AUTHED,
    "SETQUOTA": _AUTHED,
    # §6.4 selected
    "CHECK": _SELECTED,
    "CLOSE": _SELECTED,
    "UNSELECT": _SELECTED,
    "EXPUNGE": _SELECTED,
    "SEARCH": _SELECTED,
    "FETCH": _SELECTED,
    "STORE": _SELECTED,
    "COPY": _SELECTED,
    "MOVE": _SELECTED,
    "UID SEARCH": _SELECTED,
    "UID FETCH": _SELECTED,
    "UID STORE": _SELECTED,
    "UID COPY": _SELECTED,
    "UID MOVE": _SELECTED,
    "UID EXPUNGE": _SELECTED,
}

# RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH (the UID forms may).
NO_EXPUNGE_DURING = frozenset({"FETCH", "STORE", "SEARCH"})

# Commands that name no messages: pending EXPUNGEs may go out before they run, so a poll
# (NOOP, CHECK) reports expunges first and later flag changes with the new numbers. Any
# command with a sequence set must resolve it against the numbers the client knew.
EXPUNGE_BEFORE = frozenset({"NOOP", "CHECK"})

# Commands that leave the selected mailbox: updates still pending for it are dropped rather
# than sent first. The client is done with that mailbox, and an untagged FETCH or EXPUNGE
# just before the new SELECT's responses could be read as the new mailbox's (Dovecot and
# James send none either). RFC 9051 §7 allows, never requires, such updates.
LEAVES_MAILBOX = frozenset({"CLOSE", "UNSELECT", "SELECT", "EXAMINE"})
