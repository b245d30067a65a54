"""NOOP (RFC 1939 §5)."""

from __future__ import annotations

from mailstead.pop3 import protocol as wire
from mailstead.pop3.session import Session
from mailstead.pop3.states import Transaction


async def noop(s: Session, txn: Transaction, _: None) -> None:
    """RFC 1939 §5: only in TRANSACTION; a client keeping the connection alive."""
    s.send(wire.ok())
