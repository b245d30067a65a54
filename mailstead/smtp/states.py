"""Where an SMTP conversation is, and what each state knows (RFC 5321 §4.1.4 command order).

A state carries its data, as Stalwart's ``State::Selected { data, mailbox }`` does: the
transaction states hold the envelope and the :class:`Delivery` that MAIL started, BDAT's
state holds the chunks received so far, and every state after HELO/EHLO holds what the
client said of itself and who it authenticated as. So "RCPT without a transaction" cannot
be written, and a handler receives the state the command table allowed, never ``None``.

States are values, replaced on every transition rather than changed in place, except the
chunks of :class:`Chunking` (a client may send thousands of chunks; copying the list each
time would make that quadratic). The transitions:

- any state but :class:`Chunking` -> :class:`Ready` on HELO/EHLO (the login is kept);
- :class:`Ready` -> :class:`Ready` with a user on AUTH;
- :class:`Ready` -> :class:`MailFrom` on MAIL, -> :class:`RcptTo` on the first good RCPT,
  -> :class:`Chunking` on a BDAT that is not LAST;
- back to :class:`Ready` (the same client) on RSET, QUIT, the end of DATA or BDAT LAST,
  and on any failure that ends the transaction;
- back to :class:`Connected` on STARTTLS (RFC 3207 §4.2), which forgets HELO and AUTH.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mailstead.delivery.deliver import Delivery, Envelope
from mailstead.store.models import User


@dataclass(frozen=True, slots=True)
class Client:
    """What the client said of itself (RFC 5321 §4.1.1.1) and, after AUTH (RFC 4954), who
    it is. Forgotten at STARTTLS (RFC 3207 §4.2); HELO/EHLO again keeps the login."""

    helo: str
    esmtp: bool
    user: User | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    """One mail transaction (RFC 5321 §3.3): what MAIL declared and the delivery it started."""

    envelope: Envelope
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class Connected:
    """Greeted by us; no HELO/EHLO yet (again after STARTTLS)."""

    name: ClassVar[str] = "connected"


@dataclass(frozen=True, slots=True)
class Ready:
    """HELO/EHLO done, no mail transaction."""

    name: ClassVar[str] = "ready"
    client: Client


@dataclass(frozen=True, slots=True)
class MailFrom:
    """MAIL FROM accepted, no recipient yet."""

    name: ClassVar[str] = "mail"
    client: Client
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class RcptTo:
    """At least one RCPT TO accepted."""

    name: ClassVar[str] = "rcpt"
    client: Client
    transaction: Transaction


@dataclass(slots=True)
class Chunking:
    """Inside a BDAT chunk sequence (RFC 3030 §2): the chunks kept so far, and how many
    octets have arrived in all (counted on past the size limit, when nothing is kept)."""

    name: ClassVar[str] = "bdat"
    client: Client
    transaction: Transaction
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


State = Connected | Ready | MailFrom | RcptTo | Chunking
InTransaction = MailFrom | RcptTo | Chunking

ANY: frozenset[type[State]] = frozenset({Connected, Ready, MailFrom, RcptTo, Chunking})

__all__ = [
    "ANY",
    "Chunking",
    "Client",
    "Connected",
    "InTransaction",
    "MailFrom",
    "RcptTo",
    "Ready",
    "State",
    "Transaction",
]
