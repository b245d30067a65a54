"""STARTTLS (RFC 3207)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp.codes import Reply, error
from mailstead.smtp.states import Ready

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def handle(session: Session, state: Ready, args: None) -> None:
    if session.stream.is_tls:
        raise error(503, "5.5.1", "Already using TLS")
    if not session.offers_starttls or session.tls is None:
        raise error(502, "5.5.1", "STARTTLS not available")
    session.reply(Reply(220, "2.0.0", "Ready to start TLS"))
    await session.flush()
    # RFC 3207 §4.2: bytes the client pipelined after STARTTLS are dropped by the stream,
    # and everything learnt before the handshake (HELO, AUTH, envelope) is forgotten.
    await session.stream.start_tls(session.tls.server_context)
    session.reset_all()
