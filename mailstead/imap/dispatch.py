"""What the command table says about each command, and how a spec runs its handler.

One :class:`CommandSpec` holds everything the session knows about a command: its grammar
(which also fixes the type of its argument record), its handler, the states it may run in,
when pending EXPUNGEs may go out around it, which fields of its record are mailbox names
to map to the store's hierarchy separator, and the capability that announces it. The
table itself is :data:`mailstead.imap.commands.COMMANDS`; everything else (the parser's
grammar lookup, the state check, the expunge points, the name mapping, the advertised
capabilities) is derived from it.

Handlers come in three shapes, by what the state gives them, and a spec is built with the
constructor of its shape:

- :func:`plain`: ``handler(session, command)`` — any state, or not authenticated;
- :func:`for_user`: ``handler(session, command, user)`` — authenticated or selected;
- :func:`for_selected`: ``handler(session, command, selected)`` — a mailbox is selected.

The constructors are generic in the argument record, so the type checker proves that a
handler takes the record its grammar returns, and the handler never asserts that a user
or a mailbox is there: the dispatcher checked the state before it ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from mailstead.imap.parse.commands import Command, Grammar
from mailstead.imap.replies import Reply
from mailstead.imap.states import (
    ANY,
    AUTHENTICATED,
    SELECTED,
    Authenticated,
    Selected,
    StateKind,
)
from mailstead.store.models import User

if TYPE_CHECKING:
    from mailstead.imap.session import Session

A = TypeVar("A")


class Expunge(Enum):
    """When the pending EXPUNGEs of the selected mailbox may be sent around a command
    (RFC 9051 §7.5.1). Other pending updates (EXISTS, FLAGS) go out before and after
    every command, except where the mailbox is being left."""

    AFTER = "after"
    """Not before the command (its sequence numbers are the ones the client knew), after it:
    the default."""
    BEFORE = "before"
    """Before and after: a command that names no messages (NOOP, CHECK) is a poll, which
    reports expunges first and later flag changes with the new numbers."""
    HELD = "held"
    """Neither before nor after: FETCH, STORE and SEARCH by sequence number must not see an
    EXPUNGE (their UID forms may)."""
    DROPPED = "dropped"
    """The command leaves the mailbox (CLOSE, UNSELECT, SELECT, EXAMINE): what is pending
    is dropped, nothing is sent first. The client is done with that mailbox, and an
    untagged FETCH or EXPUNGE just before a new SELECT's responses could be read as the
    new mailbox's (Dovecot and James send none either); RFC 9051 §7 allows, never
    requires, such updates."""


@dataclass(frozen=True, slots=True)
class MailboxFields:
    """Fields of a command's record that hold mailbox names (mapped from the client's
    hierarchy separator to the store's) and LIST reference/patterns (mapped keeping their
    wildcards). A field holds a ``str`` or a tuple of them."""

    names: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.names or self.patterns)


NO_MAILBOX = MailboxFields()
Run = Callable[["Session", Command[Any]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Everything about one command; built with :func:`plain`, :func:`for_user` or
    :func:`for_selected`, listed once in the table."""

    name: str
    grammar: Grammar[Any]
    handler: Callable[..., Awaitable[Reply]]
    run: Run  # hands the handler what its state gives it
    states: frozenset[StateKind]
    expunge: Expunge = Expunge.AFTER
    mailbox: MailboxFields = NO_MAILBOX
    capability: str | None = None  # the capability that announces the command


class WrongState(Exception):
    """A spec ran in a state its table entry does not allow: a bug in the dispatcher."""


def plain(
    name: str,
    grammar: Grammar[A],
    handler: Callable[[Session, Command[A]], Awaitable[Reply]],
    *,
    states: frozenset[StateKind] = ANY,
    expunge: Expunge = Expunge.AFTER,
    mailbox: MailboxFields = NO_MAILBOX,
    capability: str | None = None,
) -> CommandSpec:
    """A command whose handler needs no user or mailbox (any state, or before login)."""
    return CommandSpec(name, grammar, handler, handler, states, expunge, mailbox, capability)


def for_user(
    name: str,
    grammar: Grammar[A],
    handler: Callable[[Session, Command[A], User], Awaitable[Reply]],
    *,
    states: frozenset[StateKind] = AUTHENTICATED,
    expunge: Expunge = Expunge.AFTER,
    mailbox: MailboxFields = NO_MAILBOX,
    capability: str | None = None,
) -> CommandSpec:
    """A command of the authenticated state (also valid while a mailbox is selected); the
    handler gets the logged-in user."""

    async def run(session: Session, command: Command[Any]) -> Reply:
        state = session.state
        if not isinstance(state, Authenticated | Selected):
            raise WrongState(name)
        return await handler(session, command, state.user)

    return CommandSpec(name, grammar, handler, run, states, expunge, mailbox, capability)


def for_selected(
    name: str,
    grammar: Grammar[A],
    handler: Callable[[Session, Command[A], Selected], Awaitable[Reply]],
    *,
    expunge: Expunge = Expunge.AFTER,
    mailbox: MailboxFields = NO_MAILBOX,
    capability: str | None = None,
) -> CommandSpec:
    """A command of the selected state; the handler gets the selection (user, the view of
    the mailbox, the change subscription)."""

    async def run(session: Session, command: Command[Any]) -> Reply:
        state = session.state
        if not isinstance(state, Selected):
            raise WrongState(name)
        return await handler(session, command, state)

    return CommandSpec(name, grammar, handler, run, SELECTED, expunge, mailbox, capability)


def table(*specs: CommandSpec) -> dict[str, CommandSpec]:
    """The specs by command name; a name listed twice is a mistake caught at import."""
    out: dict[str, CommandSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"command {spec.name} is listed twice")
        out[spec.name] = spec
    return out
