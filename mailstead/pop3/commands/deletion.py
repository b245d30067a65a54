"""DELE and RSET (RFC 1939 §5): deletion marks, which only QUIT commits."""

from __future__ import annotations

from mailstead.pop3 import protocol as wire
from mailstead.pop3.commands.arguments import MessageNumber
from mailstead.pop3.session import Session
from mailstead.pop3.states import Transaction


async def dele(s: Session, txn: Transaction, args: MessageNumber) -> None:
    """RFC 1939 §5 DELE msg: only marks; QUIT commits."""
    message = txn.message(args.number)
    txn.maildrop.mark_deleted(message.number)
    s.send(wire.ok(f"message {message.number} deleted"))


async def rset(s: Session, txn: Transaction, _: None) -> None:
    """RFC 1939 §5 RSET: unmark every message marked deleted."""
    txn.maildrop.reset()
    count, octets = txn.maildrop.stat()
    s.send(wire.ok(f"maildrop has {count} messages ({octets} octets)"))
