"""HELO and EHLO (RFC 5321 §4.1.1.1) and the extensions EHLO advertises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp.codes import Reply
from mailstead.smtp.grammar import HeloArgs
from mailstead.smtp.states import Client, Connected, MailFrom, RcptTo, Ready

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
        mechanisms = session.authenticator.mechanisms(session.stream.channel_bindings)
        caps.append("AUTH " + " ".join(mechanisms))  # RFC 4954
    caps.append("HELP")
    return caps


def _greet(
    session: Session, state: Connected | Ready | MailFrom | RcptTo, args: HeloArgs, esmtp: bool
) -> None:
    """RFC 5321 §4.1.4: HELO/EHLO may come again at any time and resets the transaction.
    A login survives it (only STARTTLS forgets one, RFC 3207 §4.2)."""
    user = None if isinstance(state, Connected) else state.client.user
    session.state = Ready(Client(args.domain, esmtp, user))


async def handle_ehlo(
    session: Session, state: Connected | Ready | MailFrom | RcptTo, args: HeloArgs
) -> None:
    _greet(session, state, args, esmtp=True)
    hostname = session.config.hostname
    # RFC 2034 §4 exempts the EHLO reply from enhanced codes: its first line is the domain.
    session.reply(Reply(250, "", (f"{hostname} Hello {args.domain}", *capabilities(session))))


async def handle_helo(
    session: Session, state: Connected | Ready | MailFrom | RcptTo, args: HeloArgs
) -> None:
    _greet(session, state, args, esmtp=False)
    session.reply(Reply(250, "", session.config.hostname))
