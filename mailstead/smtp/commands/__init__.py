"""The SMTP command table: one :class:`CommandSpec` per verb holds all the session knows of it.

Found through this explicit table, never by name lookup. For each command the session
(:meth:`Session._dispatch`), in this order:

1. checks the state against ``states`` (RFC 5321 §4.1.4 ordering, RFC 3030 §2 for BDAT);
   otherwise runs ``refuse`` if there is one (BDAT consumes its chunk) and answers
   ``503 5.5.1 <out_of_sequence>``;
2. runs ``guard``, if any: may this client use the command here at all (MAIL and AUTH
   on submission, RFC 4954), asked before the argument is read;
3. parses the argument with ``grammar`` into the typed ``record``;
4. calls ``handler`` with the state, typed as the states allowed, and the record.

Adding a command is one entry here, one grammar in :mod:`mailstead.smtp.grammar` and one
handler module; ``tests/smtp/test_smtp_commands.py`` checks that every entry is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mailstead.smtp import grammar
from mailstead.smtp.commands import (
    auth,
    bdat,
    data,
    ehlo,
    help,
    mail,
    noop,
    quit,
    rcpt,
    rset,
    starttls,
    vrfy,
)
from mailstead.smtp.grammar import Context
from mailstead.smtp.states import (
    ANY,
    Chunking,
    Connected,
    MailFrom,
    RcptTo,
    Ready,
    State,
)

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

S = TypeVar("S", bound=State)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class CommandSpec(Generic[S, R]):
    """One command: how its argument reads, what runs it, and when it may be used. Built
    with :func:`spec`."""

    grammar: Callable[[bytes, Context], R]
    record: type[R]  # what ``grammar`` returns and ``handler`` takes (NoneType: no argument)
    handler: Callable[[Session, S, R], Awaitable[None]]
    states: frozenset[type[S]]
    out_of_sequence: str  # the text of the 503 in any other state
    guard: Callable[[Session, S], None] | None  # raises SMTPError to refuse the command
    refuse: Callable[[Session, State, R], Awaitable[None]] | None  # runs before the 503


def spec(
    grammar: Callable[[bytes, Context], R],
    record: type[R],
    handler: Callable[[Session, S, R], Awaitable[None]],
    states: frozenset[type[S]],
    out_of_sequence: str = "Bad sequence of commands",
    *,
    guard: Callable[[Session, S], None] | None = None,
    refuse: Callable[[Session, State, R], Awaitable[None]] | None = None,
) -> CommandSpec[Any, Any]:
    """A table entry. Its type parameters are solved here, from the arguments alone, so mypy
    checks that grammar, record, handler, guard and states agree before the table erases
    them (in the table's own context they would all be solved as Any)."""
    return CommandSpec(grammar, record, handler, states, out_of_sequence, guard, refuse)


NoRecord = type(None)
READY: frozenset[type[Ready]] = frozenset({Ready})
TRANSACTION: frozenset[type[MailFrom | RcptTo]] = frozenset({MailFrom, RcptTo})
RECIPIENTS: frozenset[type[RcptTo | Chunking]] = frozenset({RcptTo, Chunking})
# Inside a BDAT sequence only BDAT, RSET, NOOP and QUIT are taken (DATA there is 503 by
# RFC 3030 §2; the others would interleave with a message half sent).
OUTSIDE_BDAT: frozenset[type[Connected | Ready | MailFrom | RcptTo]] = frozenset(
    {Connected, Ready, MailFrom, RcptTo}
)

COMMANDS: dict[str, CommandSpec[Any, Any]] = {
    "EHLO": spec(grammar.parse_helo, grammar.HeloArgs, ehlo.handle_ehlo, OUTSIDE_BDAT),
    "HELO": spec(grammar.parse_helo, grammar.HeloArgs, ehlo.handle_helo, OUTSIDE_BDAT),
    "STARTTLS": spec(
        grammar.parse_starttls, NoRecord, starttls.handle, READY,
        "STARTTLS must follow EHLO, outside a mail transaction",
    ),
    "AUTH": spec(
        grammar.parse_auth, grammar.AuthArgs, auth.handle, READY,
        "AUTH must follow EHLO, outside a mail transaction",
        guard=auth.guard,
    ),
    "MAIL": spec(
        grammar.parse_mail, grammar.MailArgs, mail.handle, READY,
        "Send EHLO first, or RSET to end the current transaction",
        guard=mail.guard,
    ),
    "RCPT": spec(
        grammar.parse_rcpt, grammar.RcptArgs, rcpt.handle, TRANSACTION,
        "Need MAIL before RCPT",
    ),
    "DATA": spec(
        grammar.parse_data, NoRecord, data.handle, TRANSACTION,
        "Need MAIL and RCPT before DATA",
    ),
    "BDAT": spec(
        grammar.parse_bdat, grammar.BdatArgs, bdat.handle, RECIPIENTS,
        "Need MAIL and RCPT before BDAT",
        refuse=bdat.refuse,
    ),
    "RSET": spec(grammar.parse_rset, NoRecord, rset.handle, ANY),
    "NOOP": spec(grammar.ignore_argument, NoRecord, noop.handle, ANY),
    "QUIT": spec(grammar.ignore_argument, NoRecord, quit.handle, ANY),
    "VRFY": spec(grammar.parse_vrfy, grammar.VrfyArgs, vrfy.handle_vrfy, OUTSIDE_BDAT),
    "EXPN": spec(grammar.ignore_argument, NoRecord, vrfy.handle_expn, OUTSIDE_BDAT),
    "HELP": spec(grammar.ignore_argument, NoRecord, help.handle, OUTSIDE_BDAT),
}

__all__ = ["COMMANDS", "CommandSpec", "spec"]
