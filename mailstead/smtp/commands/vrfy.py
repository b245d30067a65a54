"""VRFY and EXPN (RFC 5321 §3.5): questions about addresses, answered without answering.

Who has an account, and who is on a list or behind an alias, is not for strangers to
learn one guess at a time, so both commands give the same reply whatever they are asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp.codes import Reply
from mailstead.smtp.grammar import VrfyArgs
from mailstead.smtp.states import Connected, MailFrom, RcptTo, Ready

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

CANNOT_VRFY = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
NO_EXPN = Reply(502, "5.5.1", "EXPN is not available")


async def handle_vrfy(
    session: Session, state: Connected | Ready | MailFrom | RcptTo, args: VrfyArgs
) -> None:
    """RFC 5321 §3.5.3: 252 says "we will try" and reveals nothing about who exists."""
    session.reply(CANNOT_VRFY)


async def handle_expn(
    session: Session, state: Connected | Ready | MailFrom | RcptTo, args: None
) -> None:
    """RFC 5321 §3.5.2 lets a server refuse EXPN; lists and aliases stay private."""
    session.reply(NO_EXPN)
