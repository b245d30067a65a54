"""RSET, NOOP, QUIT, VRFY, EXPN and HELP (RFC 5321 §4.1.1.5-4.1.1.10)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, error
from mailstead.smtp.protocol import Command

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def handle_rset(session: Session, command: Command) -> None:
    """RFC 5321 §4.1.1.5: abort the transaction; the HELO/EHLO state stays."""
    if command.argument:
        raise error(501, "5.5.4", "RSET takes no arguments")
    session.reset_transaction()
    session.reply(codes.OK)


async def handle_noop(session: Session, command: Command) -> None:
    """RFC 5321 §4.1.1.9: any argument is ignored."""
    session.reply(codes.OK)


async def handle_quit(session: Session, command: Command) -> None:
    """RFC 5321 §4.1.1.10: reply 221 and close; an open transaction is abandoned."""
    session.reset_transaction()
    session.reply(Reply(221, "2.0.0", f"{session.config.hostname} closing connection"))
    session.closing = True


async def handle_vrfy(session: Session, command: Command) -> None:
    """RFC 5321 §3.5.3: 252 says "we will try" and reveals nothing about who exists."""
    if not command.argument:
        raise error(501, "5.5.4", "Syntax: VRFY address")
    session.reply(
        Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
    )


async def handle_expn(session: Session, command: Command) -> None:
    """RFC 5321 §3.5.2 lets a server refuse EXPN; lists and aliases stay private."""
    session.reply(Reply(502, "5.5.1", "EXPN is not available"))


async def handle_help(session: Session, command: Command) -> None:
    session.reply(Reply(214, "2.0.0", (
        "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
        "See RFC 5321",
    )))
