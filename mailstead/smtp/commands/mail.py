"""MAIL FROM (RFC 5321 §4.1.1.2): who may start a transaction, and starting it.

The argument (the reverse-path and SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH) is read by
:func:`mailstead.smtp.grammar.parse_mail`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.delivery.deliver import Envelope
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError
from mailstead.smtp.grammar import MailArgs
from mailstead.smtp.states import MailFrom, Ready

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


def guard(session: Session, state: Ready) -> None:
    """RFC 4954 §6 / RFC 3207 §4: submission needs a login, and a login needs TLS. Asked
    before the argument is read, so an anonymous client learns nothing else first."""
    if session.config.submission and state.client.user is None:
        if session.offers_starttls and not session.offers_auth:
            raise SMTPError(codes.TLS_REQUIRED)
        raise SMTPError(codes.AUTH_REQUIRED)


async def handle(session: Session, state: Ready, args: MailArgs) -> None:
    user = state.client.user
    # Authenticated senders may only use their own addresses (no spoofing by users), unless
    # the admin allowed the account any; the header From: is checked by the same rule once
    # the message is in (mailstead.delivery.authorship).
    if user is not None and not await session.deliverer.router.may_send_as(user.id,
                                                                          args.sender):
        raise SMTPError(
            Reply(553, "5.7.1", "Sender address not owned by the authenticated user"),
            log=f"{user.address} tried MAIL FROM:<{args.sender or ''}>",
        )

    envelope = Envelope(args.sender, args.body, args.smtputf8, args.ret, args.envid, args.size)
    delivery = session.deliverer.start(
        envelope, session.trace(state.client), relay_allowed=user is not None,
        sender_id=user.id if user is not None else None,
    )
    session.state = MailFrom(state.client, envelope, delivery)
    session.reply(codes.SENDER_OK)
