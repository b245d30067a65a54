"""BDAT (RFC 3030 CHUNKING): length-delimited message chunks, pipelined freely.

The chunk is consumed before anything else is decided, even when the command is refused,
so the byte stream stays in step with the client (RFC 3030 §2). After a failed chunk the
transaction is gone and further BDATs are refused until a new MAIL FROM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.net.budget import Reservation
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError
from mailstead.smtp.commands.data import complete
from mailstead.smtp.grammar import BdatArgs
from mailstead.smtp.states import Chunking, MailFrom, RcptTo, State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def _consume(
    session: Session, size: int, received: int, keep: bool, deadline: float,
    held: Reservation,
) -> tuple[list[bytes], int]:
    """Read ``size`` bytes, ``received`` having come in earlier chunks, by ``deadline``
    (the whole message's, see ``limits.transfer_timeout_seconds``); keep them only while
    the message stays under the size limit and ``held`` gets them from the memory budget.
    Returns (kept parts, new total)."""
    limit = session.config.max_message_size
    parts: list[bytes] = []
    total = received
    stream = session.stream
    async for piece in stream.iter_exactly(size, session.config.idle_timeout, until=deadline):
        total += len(piece)
        if keep and (not limit or total <= limit) and held.take(len(piece)):
            parts.append(piece)
        else:
            keep = False
            parts.clear()
    return (parts if keep else []), total


async def handle(session: Session, state: RcptTo | Chunking, args: BdatArgs) -> None:
    if isinstance(state, Chunking):
        received, deadline, held = state.size, state.deadline, state.held
    else:
        received, held = 0, Reservation(session.budget)
        deadline = session.loop_time() + session.config.transfer_timeout
    try:
        parts, total = await _consume(session, args.size, received, keep=True,
                                      deadline=deadline, held=held)
    except BaseException:
        held.close()
        raise
    limit = session.config.max_message_size
    if limit and total > limit:
        held.close()
        session.reset_transaction()
        raise SMTPError(codes.SIZE_EXCEEDED, log=f"BDAT message over {limit} bytes")
    if held.refused:
        held.close()
        session.reset_transaction()
        raise SMTPError(codes.TOO_BUSY, log="memory budget for message data spent")
    if isinstance(state, Chunking):
        state.parts.extend(parts)
        state.size = total
        parts = state.parts
    if args.last:
        if isinstance(state, Chunking):
            # The commit gives ``held`` back once stored, not the reset complete() makes.
            state.held = Reservation(None)
        await complete(session, state.delivery, b"".join(parts), held)
        return
    if not isinstance(state, Chunking):
        session.state = Chunking(state.client, state.envelope, state.delivery, parts, total,
                                 deadline, held)
    session.reply(Reply(250, "2.0.0", f"{args.size} octets received"))


async def refuse(session: Session, state: State, args: BdatArgs) -> None:
    """BDAT out of sequence: swallow its chunk before the 503 says why."""
    await _consume(session, args.size, 0, keep=False,
                   deadline=session.loop_time() + session.config.transfer_timeout,
                   held=Reservation(None))
    if isinstance(state, MailFrom):
        # Every RCPT failed (RFC 3030 §2 pipelines BDAT right behind them).
        session.reset_transaction()
        raise SMTPError(codes.NO_VALID_RECIPIENTS)
