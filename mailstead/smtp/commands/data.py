"""DATA (RFC 5321 §4.1.1.4) and the end of a message, shared with BDAT LAST."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core import metrics, sanity
from mailstead.core.message_data import MessageData
from mailstead.core.spool import Spool
from mailstead.delivery.deliver import Delivery
from mailstead.delivery.router import DeliveryError
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError
from mailstead.smtp.protocol import DataDecoder, Unstuffer
from mailstead.smtp.states import MailFrom, RcptTo

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

BARE_LF = Reply(550, "5.5.2", "Bare <LF> line endings are not accepted")


async def handle(session: Session, state: MailFrom | RcptTo, args: None) -> None:
    if isinstance(state, MailFrom):
        # RFC 2920 §3.1 / RFC 5321 §3.3: every RCPT failed; the client waits for this reply.
        session.reset_transaction()
        raise SMTPError(codes.NO_VALID_RECIPIENTS)
    session.reply(codes.START_DATA)
    await session.flush()
    config = session.config
    stream = session.stream
    # Smuggling needs an unauthenticated sender whose bare LF another server reads as a line
    # end; a logged-in client (curl --upload-file of a Unix text file) gets its bare LFs
    # turned into CRLF instead of a refusal.
    reject_bare_lf = config.reject_bare_lf and state.client.user is None
    decoder = DataDecoder(config.max_message_size)
    # Kept in memory while small, in a spool file beyond limits.spool_threshold; either
    # budget spent refuses the message for now.
    spool = session.spools.spool(session.client_key)
    # The whole message by this time, however steadily it trickles (the idle timeout alone
    # let a byte every 10 s hold a session for over half an hour).
    deadline = session.loop_time() + config.transfer_timeout
    try:
        while True:
            chunk = await stream.read_some(timeout=config.idle_timeout, until=deadline)
            used = decoder.feed(chunk)
            if decoder.keeping:
                for piece in decoder.take():
                    if not await spool.write(piece):
                        decoder.discarding = True  # read on to the end, keep nothing
                        break
            if not decoder.keeping:
                spool.close()  # it keeps nothing more: budgets back, file gone
            if used >= 0:
                if used < len(chunk):
                    stream.unread(chunk[used:])  # pipelined commands after the dot
                break
        if decoder.oversized:
            session.reset_transaction()
            raise SMTPError(codes.SIZE_EXCEEDED, log=f"message of {decoder.size} bytes")
        # The whole message is here: undo the dot-stuffing, check the line ends.
        unstuffer = Unstuffer(reject_bare_lf)
        kept = not spool.refused and await spool.rewrite(unstuffer)
        if unstuffer.bare_lf and reject_bare_lf:
            session.reset_transaction()
            raise SMTPError(BARE_LF, log="bare LF in DATA (possible SMTP smuggling)")
        if not kept:
            session.reset_transaction()
            raise SMTPError(codes.TOO_BUSY, log="budget for message data spent")
        message = await spool.finish()
    except BaseException:
        spool.close()
        raise
    await complete(session, state.delivery, message, spool)


async def complete(
    session: Session, delivery: Delivery, data: MessageData, spool: Spool
) -> None:
    """End the transaction and commit the message. Its 250 is sent only once the message
    is durable for every recipient; meanwhile the session reads on (pipelining). The
    spool is closed (its budgets given back, its file removed) once the message is stored
    (or not)."""
    session.reset_transaction()
    await session.reply_when_done(_commit(session, delivery, data, spool), len(data))


async def _commit(session: Session, delivery: Delivery, data: MessageData, spool: Spool) -> Reply:
    """The reply for one message; never raises (it runs beside the session)."""
    try:
        trace_id = await delivery.commit(data)
    except DeliveryError as exc:
        session.log.info("message refused: %s", exc)
        metrics.MESSAGES_RECEIVED.labels("deferred" if exc.code < 500 else "refused").inc()
        return Reply(exc.code, exc.enhanced, exc.text)
    except Exception as exc:  # a bug: logged, never shown; under test it fails the test
        metrics.MESSAGES_RECEIVED.labels("deferred").inc()
        sanity.degrade(session.log, exc, "bug (%s) committing a message", exc_info=True)
        return codes.TEMPORARY_FAILURE
    finally:
        spool.close()
    metrics.MESSAGES_RECEIVED.labels("accepted").inc()
    session.log.info(
        "accepted message %s of %d bytes from <%s> for %d recipient(s)",
        trace_id, len(data), delivery.envelope.mail_from or "", delivery.recipient_count,
    )
    # As Postfix says it: a client's log can then be matched with the server's.
    return Reply(250, "2.0.0", f"OK: queued as {trace_id}")
