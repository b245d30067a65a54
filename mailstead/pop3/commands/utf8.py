"""UTF8 (RFC 6856 §2): the client may send UTF-8 user names and passwords."""

from __future__ import annotations

from mailstead.pop3 import protocol as wire
from mailstead.pop3.session import Session
from mailstead.pop3.states import Authorization


async def utf8(s: Session, state: Authorization, _: None) -> None:
    """RFC 6856 §2: enter UTF-8 mode before login. Messages are sent as stored."""
    s.utf8 = True
    s.send(wire.ok("UTF8 enabled"))
