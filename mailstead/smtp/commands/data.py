"""DATA (RFC 5321 §4.1.1.4) and the end of a message, shared with BDAT LAST."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.delivery.router import DeliveryError
from mailstead.net.stream import LineTooLong
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.protocol import Command, DataDecoder
from mailstead.smtp.session import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

BARE_LF = Reply(550, "5.5.2", "Bare <LF> line endings are not accepted")


async def handle(session: Session, command: Command) -> None:
    if command.argument:
        raise error(501, "5.5.4", "DATA takes no arguments")
    if session.state is State.MAIL:
        # RFC 2920 §3.1 / RFC 5321 §3.3: every RCPT failed; the client waits for this reply.
        session.reset_transaction()
        raise SMTPError(codes.NO_VALID_RECIPIENTS)
    session.reply(codes.START_DATA)
    await session.flush()
    config = session.config
    decoder = DataDecoder(config.max_message_size, config.reject_bare_lf)
    readline = session.stream.readline
    feed = decoder.feed
    try:
        while not feed(await readline(config.max_line_length, config.idle_timeout)):
            pass
    except LineTooLong:
        # We cannot tell how the dropped line ended, so we cannot find the end of the data
        # safely (SMTP smuggling): refuse the message and end the session.
        session.reset_transaction()
        raise SMTPError(codes.LINE_TOO_LONG, close=True, log="over-long line in DATA") from None
    if decoder.oversized:
        session.reset_transaction()
        raise SMTPError(codes.SIZE_EXCEEDED, log=f"message of {decoder.size} bytes")
    if decoder.bare_lf and config.reject_bare_lf:
        session.reset_transaction()
        raise SMTPError(BARE_LF, log="bare LF in DATA (possible SMTP smuggling)")
    await complete(session, decoder.message())


async def complete(session: Session, data: bytes) -> None:
    """Commit the message and answer: 250 only once it is durable for every recipient."""
    delivery = session.delivery
    assert delivery is not None
    session.reset_transaction()
    try:
        await delivery.commit(data)
    except DeliveryError as exc:
        raise SMTPError(Reply(exc.code, exc.enhanced, exc.text),
                        log=f"message refused: {exc}") from None
    session.log.info(
        "accepted message of %d bytes from <%s> for %d recipient(s)",
        len(data), delivery.envelope.mail_from or "", delivery.recipient_count,
    )
    session.reply(codes.QUEUED)
