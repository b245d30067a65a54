"""STAT, LIST (RFC 1939 §5) and UIDL (RFC 1939 §7): what the maildrop holds."""

from __future__ import annotations

from mailstead.pop3 import protocol as wire
from mailstead.pop3.commands.arguments import MessageNumber
from mailstead.pop3.session import Session
from mailstead.pop3.states import Transaction


async def stat(s: Session, txn: Transaction, _: None) -> None:
    """RFC 1939 §5 STAT: count and octets of messages not marked deleted."""
    count, octets = txn.maildrop.stat()
    s.send(wire.ok(f"{count} {octets}"))


async def list_(s: Session, txn: Transaction, args: MessageNumber | None) -> None:
    """RFC 1939 §5 LIST [msg]: exact sizes (stored messages are canonical CRLF)."""
    if args is not None:
        message = txn.message(args.number)
        s.send(wire.ok(f"{message.number} {message.size}"))
        return
    count, octets = txn.maildrop.stat()
    lines = [f"{m.number} {m.size}".encode() for m in txn.maildrop.live()]
    s.send(wire.multiline(wire.ok(f"{count} messages ({octets} octets)"), lines))


async def uidl(s: Session, txn: Transaction, args: MessageNumber | None) -> None:
    """RFC 1939 §7 UIDL [msg]."""
    if args is not None:
        message = txn.message(args.number)
        s.send(wire.ok(f"{message.number} {message.uidl}"))
        return
    lines = [f"{m.number} {m.uidl}".encode() for m in txn.maildrop.live()]
    s.send(wire.multiline(wire.ok("unique-id listing follows"), lines))
