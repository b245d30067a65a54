"""STLS (RFC 2595 §4): upgrade the connection to TLS before login."""

from __future__ import annotations

from mailstead.pop3 import protocol as wire
from mailstead.pop3.errors import POP3Error
from mailstead.pop3.session import Session
from mailstead.pop3.states import Authorization


async def stls(s: Session, state: Authorization, _: None) -> None:
    """RFC 2595 §4. Served only while :attr:`Session.can_stls` (the dispatcher refuses it
    otherwise: once only, before login, on a plaintext STLS listener). Pipelined plaintext
    after STLS is discarded by the stream, and the session starts over as after the
    greeting."""
    tls = s.tls
    if tls is None:  # can_stls has checked; this tells the type checker
        raise POP3Error("STLS not available")
    s.send(wire.ok("begin TLS negotiation"))
    await s.stream.start_tls(tls.server_context)
    s.state = Authorization()
    s.utf8 = False
