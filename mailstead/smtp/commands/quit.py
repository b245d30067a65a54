"""QUIT (RFC 5321 §4.1.1.10): reply 221 and close; an open transaction is abandoned."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp.codes import Reply
from mailstead.smtp.states import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def handle(session: Session, state: State, args: None) -> None:
    session.reset_transaction()
    session.reply(Reply(221, "2.0.0", f"{session.config.hostname} closing connection"))
    session.closing = True
