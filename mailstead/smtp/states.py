"""Where an SMTP conversation is, and what each state knows (RFC 5321 §4.1.4 command order).

A state carries its data, as Stalwart's ``State::Selected { data, mailbox }`` does: the
transaction states hold the envelope and the :class:`Delivery` that MAIL started, BDAT's
state holds the chunks received so far, and every state after HELO/EHLO holds what the
client said of itself and who it authenticated as. So "RCPT without a transaction" cannot
be written, and a handler receives the state the command table allowed, never ``None``.

States are values, replaced on every transition rather than changed in place (named tuples:
immutable, and one is made for nearly every command on the receive path, where a frozen
dataclass would cost several times as much), except :class:`Chunking`, which grows with
each chunk (a client may send thousands; copying the list each time would make that
quadratic). Tell states apart by type (``isinstance``, ``match``), never by truth or
equality: :class:`Connected` is an empty tuple, and tuples compare by value. The
transitions:

- any state but :class:`Chunking` -> :class:`Ready` on HELO/EHLO (the login is kept);
- :class:`Ready` -> :class:`Ready` with a user on AUTH;
- :class:`Ready` -> :class:`MailFrom` on MAIL, -> :class:`RcptTo` on the first good RCPT,
  -> :class:`Chunking` on a BDAT that is not LAST;
- back to :class:`Ready` (the same client) on RSET, QUIT, the end of DATA or BDAT LAST,
  and on any failure that ends the transaction;
- back to :class:`Connected` on STARTTLS (RFC 3207 §4.2), which forgets HELO and AUTH.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from mailstead.core.spool import Spool
from mailstead.delivery.deliver import Delivery, Envelope
from mailstead.store.models import User


@dataclass(frozen=True, slots=True)
class Client:
    """What the client said of itself (RFC 5321 §4.1.1.1) and, after AUTH (RFC 4954), who
    it is. Forgotten at STARTTLS (RFC 3207 §4.2); HELO/EHLO again keeps the login."""

    helo: str
    esmtp: bool
    user: User | None = None


class Connected(NamedTuple):
    """Greeted by us; no HELO/EHLO yet (again after STARTTLS)."""


class Ready(NamedTuple):
    """HELO/EHLO done, no mail transaction."""

    client: Client


class MailFrom(NamedTuple):
    """MAIL FROM accepted, no recipient yet: the transaction (RFC 5321 §3.3) has begun."""

    client: Client
    envelope: Envelope  # what MAIL declared
    delivery: Delivery  # the delivery transaction MAIL started


class RcptTo(NamedTuple):
    """At least one RCPT TO accepted."""

    client: Client
    envelope: Envelope
    delivery: Delivery


@dataclass(slots=True)
class Chunking:
    """Inside a BDAT chunk sequence (RFC 3030 §2): the chunks kept so far (in memory, or
    spooled to a file once large), how many octets have arrived in all (counted on past
    the size limit, when nothing is kept), and when (event-loop time) the whole message
    must have arrived."""

    client: Client
    envelope: Envelope
    delivery: Delivery
    spool: Spool  # closed (budgets back, file gone) by reset_transaction
    size: int = 0
    deadline: float = float("inf")


State = Connected | Ready | MailFrom | RcptTo | Chunking

ANY: frozenset[type[State]] = frozenset({Connected, Ready, MailFrom, RcptTo, Chunking})

__all__ = [
    "ANY",
    "Chunking",
    "Client",
    "Connected",
    "MailFrom",
    "RcptTo",
    "Ready",
    "State",
]
