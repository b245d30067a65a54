"""BDAT (RFC 3030 CHUNKING): length-delimited message chunks, pipelined freely.

The chunk is consumed before anything else is decided, even when the command is refused,
so the byte stream stays in step with the client (RFC 3030 §2). After a failed chunk the
transaction is gone and further BDATs are refused until a new MAIL FROM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError
from mailstead.smtp.commands.data import complete, transfer_deadline
from mailstead.smtp.grammar import BdatArgs
from mailstead.smtp.states import Chunking, MailFrom, RcptTo, State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


async def _consume(
    session: Session, size: int, received: int, keep: bool, deadline: float
) -> tuple[list[bytes], int]:
    """Read ``size`` bytes, ``received`` having come in earlier chunks, by ``deadline``
    (the whole message's, see ``limits.transfer_timeout_seconds``); keep them only while
    the message stays under the size limit. Returns (kept parts, new total)."""
    limit = session.config.max_message_size
    parts: list[bytes] = []
    total = received
    async with transfer_deadline(deadline):
        async for piece in session.stream.iter_exactly(size, session.config.idle_timeout):
            total += len(piece)
            if keep and (not limit or total <= limit):
                parts.append(piece)
            else:
                keep = False
                parts.clear()
    return (parts if keep else []), total


async def handle(session: Session, state: RcptTo | Chunking, args: BdatArgs) -> None:
    received = state.size if isinstance(state, Chunking) else 0
    deadline = (state.deadline if isinstance(state, Chunking)
                else session.loop_time() + session.config.transfer_timeout)
    parts, total = await _consume(session, args.size, received, keep=True, deadline=deadline)
    limit = session.config.max_message_size
    if limit and total > limit:
        session.reset_transaction()
        raise SMTPError(codes.SIZE_EXCEEDED, log=f"BDAT message over {limit} bytes")
    if isinstance(state, Chunking):
        state.parts.extend(parts)
        state.size = total
        parts = state.parts
    if args.last:
        await complete(session, state.delivery, b"".join(parts))
        return
    if not isinstance(state, Chunking):
        session.state = Chunking(state.client, state.envelope, state.delivery, parts, total,
                                 deadline)
    session.reply(Reply(250, "2.0.0", f"{args.size} octets received"))


async def refuse(session: Session, state: State, args: BdatArgs) -> None:
    """BDAT out of sequence: swallow its chunk before the 503 says why."""
    await _consume(session, args.size, 0, keep=False,
                   deadline=session.loop_time() + session.config.transfer_timeout)
    if isinstance(state, MailFrom):
        # Every RCPT failed (RFC 3030 §2 pipelines BDAT right behind them).
        session.reset_transaction()
        raise SMTPError(codes.NO_VALID_RECIPIENTS)
