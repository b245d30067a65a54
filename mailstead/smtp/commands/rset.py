"""RSET (RFC 5321 §4.1.1.5): abort the mail transaction; what HELO/EHLO said stays."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp import codes
from mailstead.smtp.states import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def handle(session: Session, state: State, args: None) -> None:
    session.reset_transaction()
    session.reply(codes.OK)
