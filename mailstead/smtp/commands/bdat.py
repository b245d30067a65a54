"""BDAT (RFC 3030 CHUNKING): length-delimited message chunks, pipelined freely.

The chunk is consumed before anything else is decided, even when the command is refused,
so the byte stream stays in step with the client (RFC 3030 §2). After a failed chunk the
transaction is gone and further BDATs are refused until a new MAIL FROM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.spool import Spool
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError
from mailstead.smtp.commands.data import complete
from mailstead.smtp.grammar import BdatArgs
from mailstead.smtp.states import Chunking, MailFrom, RcptTo, State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def _consume(
    session: Session, size: int, received: int, deadline: float, spool: Spool | None,
) -> int:
    """Read ``size`` bytes, ``received`` having come in earlier chunks, by ``deadline``
    (the whole message's, see ``limits.transfer_timeout_seconds``); write them to ``spool``
    while the message stays under the size limit and the budgets hold it. Returns the new
    total."""
    limit = session.config.max_message_size
    total = received
    keep = spool is not None and not spool.refused
    stream = session.stream
    async for piece in stream.iter_exactly(size, session.config.idle_timeout, until=deadline):
        total += len(piece)
        if keep and spool is not None:
            if limit and total > limit:
                keep = False
                spool.close()  # nothing more is kept: budgets back, file gone
            elif not await spool.write(piece):
                keep = False
    return total


async def handle(session: Session, state: RcptTo | Chunking, args: BdatArgs) -> None:
    if isinstance(state, Chunking):
        received, deadline, spool = state.size, state.deadline, state.spool
    else:
        received, spool = 0, session.spools.spool(session.client_key)
        deadline = session.loop_time() + session.config.transfer_timeout
    try:
        total = await _consume(session, args.size, received, deadline, spool)
        limit = session.config.max_message_size
        if limit and total > limit:
            session.reset_transaction()
            raise SMTPError(codes.SIZE_EXCEEDED, log=f"BDAT message over {limit} bytes")
        if spool.refused:
            session.reset_transaction()
            raise SMTPError(codes.TOO_BUSY, log="budget for message data spent")
        if args.last:
            message = await spool.finish()
    except BaseException:
        spool.close()
        raise
    if args.last:
        if isinstance(state, Chunking):
            # The commit closes the spool once stored, not the reset complete() makes:
            # the state keeps an empty one for the reset, counted against nobody.
            state.spool = session.spools.spool()
        await complete(session, state.delivery, message, spool)
        return
    if isinstance(state, Chunking):
        state.size = total
    else:
        session.state = Chunking(state.client, state.envelope, state.delivery, spool, total,
                                 deadline)
    session.reply(Reply(250, "2.0.0", f"{args.size} octets received"))


async def refuse(session: Session, state: State, args: BdatArgs) -> None:
    """BDAT out of sequence: swallow its chunk before the 503 says why."""
    await _consume(session, args.size, 0,
                   deadline=session.loop_time() + session.config.transfer_timeout, spool=None)
    if isinstance(state, MailFrom):
        # Every RCPT failed (RFC 3030 §2 pipelines BDAT right behind them).
        session.reset_transaction()
        raise SMTPError(codes.NO_VALID_RECIPIENTS)
