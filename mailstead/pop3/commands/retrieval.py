"""RETR (RFC 1939 §5) and TOP (RFC 1939 §7): a message streamed from the store."""

from __future__ import annotations

from mailstead.core.errors import NotFound, StoreError
from mailstead.pop3 import protocol as wire
from mailstead.pop3.commands.arguments import MessageNumber, TopArguments
from mailstead.pop3.errors import CloseSession, POP3Error
from mailstead.pop3.maildrop import CHUNK_SIZE, MaildropMessage
from mailstead.pop3.protocol import DotStuffer, LineLimiter
from mailstead.pop3.session import Session
from mailstead.pop3.states import Transaction


async def retr(s: Session, txn: Transaction, args: MessageNumber) -> None:
    """RFC 1939 §5 RETR msg, streamed from the store."""
    message = txn.message(args.number)
    await send_message(s, txn, message, wire.ok(f"{message.size} octets"))


async def top(s: Session, txn: Transaction, args: TopArguments) -> None:
    """RFC 1939 §7 TOP msg n: the header, the blank line, and n lines of the body."""
    message = txn.message(args.number)
    await send_message(s, txn, message, wire.ok("top of message follows"), args.lines)


async def send_message(
    s: Session,
    txn: Transaction,
    message: MaildropMessage,
    first: bytes,
    top_lines: int | None = None,
) -> None:
    """Stream a message (all of it, or its header and ``top_lines`` body lines), dot-stuffed
    (RFC 1939 §3), in bounded chunks: a message is never held whole."""
    maildrop = txn.maildrop
    # (start, end, line limit) ranges of the stored bytes to send, in order.
    ranges: list[tuple[int, int, LineLimiter | None]]
    if top_lines is None:
        ranges = [(0, message.size, None)]
    else:
        header_end = min(await maildrop.header_end(message), message.size)
        ranges = [(0, header_end, None)]
        if top_lines > 0:
            ranges.append((header_end, message.size, LineLimiter(top_lines)))
    ranges = [r for r in ranges if r[1] > r[0]]
    # Read the first piece before answering +OK, so a body that has gone (expunged and
    # collected since login) is still an in-band -ERR.
    head = b""
    if ranges:
        try:
            head = await maildrop.store.read_blob(
                message.blob_id, ranges[0][0], min(ranges[0][1], ranges[0][0] + CHUNK_SIZE)
            )
        except NotFound:
            raise POP3Error("message is no longer available") from None
        if not head:
            raise POP3Error("message is no longer available")
    s.begin_multiline(first)
    stuffer = DotStuffer()
    try:
        for index, (start, stop, limiter) in enumerate(ranges):
            if index == 0:
                start += len(head)
                s.send(stuffer.feed(limiter.feed(head) if limiter else head))
                if limiter is not None and limiter.done:
                    continue
            chunks = maildrop.read_chunks(message, start, stop)
            try:
                async for chunk in chunks:
                    s.send(stuffer.feed(limiter.feed(chunk) if limiter else chunk))
                    await s.stream.drain()
                    if limiter is not None and limiter.done:
                        break
            finally:
                await chunks.aclose()
    except (StoreError, OSError) as exc:
        # The +OK is out; nothing in-band can say this failed. Close instead.
        s.log.error("message %s failed mid-response: %s", message.uid, exc)
        raise CloseSession("store failure during a multi-line response") from exc
    s.end_multiline(stuffer.finish())
