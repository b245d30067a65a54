"""BDAT (RFC 3030 CHUNKING): length-delimited message chunks, pipelined freely.

The chunk is consumed before anything else is decided, even when the command is refused,
so the byte stream stays in step with the client (RFC 3030 §2). After a failed chunk the
transaction is gone and further BDATs are refused until a new MAIL FROM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.commands.data import complete
from mailstead.smtp.protocol import BdatCommand, Command, ProtocolError, parse_bdat
from mailstead.smtp.session import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session


def _parse(command: Command) -> BdatCommand:
    try:
        return parse_bdat(command.text())
    except ProtocolError:
        # Without a size we cannot find the next command: end the session.
        raise SMTPError(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"), close=True) from None


async def _consume(session: Session, size: int, keep: bool) -> tuple[list[bytes], int]:
    """Read ``size`` bytes; keep them only while the message stays under the size limit."""
    limit = session.config.max_message_size
    parts: list[bytes] = []
    total = session.bdat_size
    async for piece in session.stream.iter_exactly(size, session.config.idle_timeout):
        total += len(piece)
        if keep and (not limit or total <= limit):
            parts.append(piece)
        else:
            keep = False
            parts.clear()
    return (parts if keep else []), total


async def handle(session: Session, command: Command) -> None:
    bdat = _parse(command)
    parts, total = await _consume(session, bdat.size, keep=True)
    limit = session.config.max_message_size
    if limit and total > limit:
        session.reset_transaction()
        raise SMTPError(codes.SIZE_EXCEEDED, log=f"BDAT message over {limit} bytes")
    session.bdat_parts.extend(parts)
    session.bdat_size = total
    if not bdat.last:
        session.state = State.BDAT
        session.reply(Reply(250, "2.0.0", f"{bdat.size} octets received"))
        return
    data = b"".join(session.bdat_parts)
    await complete(session, data)


async def refuse(session: Session, command: Command) -> None:
    """BDAT out of sequence: swallow its chunk, then say why."""
    bdat = _parse(command)
    await _consume(session, bdat.size, keep=False)
    if session.state is State.MAIL:
        session.reset_transaction()
        raise SMTPError(codes.NO_VALID_RECIPIENTS)
    raise error(503, "5.5.1", "Need MAIL and RCPT before BDAT")
