"""HELO and EHLO (RFC 5321 §4.1.1.1) and the extensions EHLO advertises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp.codes import Reply, error
from mailstead.smtp.protocol import Command
from mailstead.smtp.session import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


def capabilities(session: Session) -> list[str]:
    """EHLO keywords, in the order clients usually look for them."""
    size = session.config.max_message_size
    caps = [
        "PIPELINING",  # RFC 2920
        f"SIZE {size}" if size else "SIZE",  # RFC 1870 §4
        "8BITMIME",  # RFC 6152
        "SMTPUTF8",  # RFC 6531
        "ENHANCEDSTATUSCODES",  # RFC 2034
        "CHUNKING",  # RFC 3030
        "DSN",  # RFC 3461
    ]
    if session.offers_starttls:
        caps.append("STARTTLS")  # RFC 3207
    if session.offers_auth:
        caps.append("AUTH PLAIN LOGIN")  # RFC 4954
    caps.append("HELP")
    return caps


def _greeting_name(command: Command) -> str:
    # RFC 5321 §4.1.1.1: the argument is a domain or address literal. We do not judge it
    # (many clients send junk); it is only recorded in the Received: header.
    name = command.argument.decode("utf-8", "replace").strip()
    if not name:
        raise error(501, "5.5.4", "Syntax: EHLO hostname")
    return name.split(" ", 1)[0][:255]


async def handle_ehlo(session: Session, command: Command) -> None:
    """RFC 5321 §4.1.4: EHLO may come again at any time and resets the transaction."""
    session.helo = _greeting_name(command)
    session.esmtp = True
    session.reset_transaction()
    session.state = State.READY
    hostname = session.config.hostname
    # RFC 2034 §4 exempts the EHLO reply from enhanced codes: its first line is the domain.
    session.reply(Reply(250, "", (f"{hostname} Hello {session.helo}", *capabilities(session))))


async def handle_helo(session: Session, command: Command) -> None:
    session.helo = _greeting_name(command)
    session.esmtp = False
    session.reset_transaction()
    session.state = State.READY
    session.reply(Reply(250, "", session.config.hostname))
