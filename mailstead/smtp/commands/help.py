"""HELP (RFC 5321 §4.1.1.8): the commands we take; any argument gets the same answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp.codes import Reply
from mailstead.smtp.states import Connected, MailFrom, RcptTo, Ready

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

# EXPN is left out: it is always refused (see vrfy).
HELP = Reply(214, "2.0.0", (
    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
    "See RFC 5321",
))


async def handle(
    session: Session, state: Connected | Ready | MailFrom | RcptTo, args: None
) -> None:
    session.reply(HELP)
