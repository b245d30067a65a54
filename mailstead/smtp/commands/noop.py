"""NOOP (RFC 5321 §4.1.1.9): changes nothing; clients use it to keep a connection alive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp import codes
from mailstead.smtp.states import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def handle(session: Session, state: State, args: None) -> None:
    session.reply(codes.OK)
