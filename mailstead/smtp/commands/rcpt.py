"""RCPT TO (RFC 5321 §4.1.1.3): one recipient, checked now so the reply tells its fate.

The argument (the forward-path and the DSN parameters NOTIFY and ORCPT, RFC 3461 §4) is
read by :func:`mailstead.smtp.grammar.parse_rcpt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.delivery.router import DeliveryError
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.grammar import RcptArgs
from mailstead.smtp.states import MailFrom, RcptTo

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def handle(session: Session, state: MailFrom | RcptTo, args: RcptArgs) -> None:
    delivery = state.delivery
    if delivery.recipient_count >= session.config.max_recipients:
        # RFC 5321 §4.5.3.1.8: 452 lets the client send the rest in another transaction.
        raise error(452, "4.5.3", "Too many recipients")
    try:
        await delivery.add_rcpt(args.recipient, args.notify, args.orcpt)
    except DeliveryError as exc:
        raise SMTPError(Reply(exc.code, exc.enhanced, exc.text),
                        log=f"RCPT <{args.recipient}> refused: {exc}") from None
    if isinstance(state, MailFrom):
        session.state = RcptTo(state.client, state.envelope, state.delivery)
    session.reply(codes.RECIPIENT_OK)
