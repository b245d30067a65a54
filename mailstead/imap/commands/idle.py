"""IDLE (RFC 9051 §6.3.13, RFC 2177): push EXISTS/EXPUNGE/FETCH as they commit.

While idling, the only thing the session awaits is the client's ``DONE`` line. Changes are
pushed by the subscription's notifier, called on the loop thread right after each commit
(store/changes.py): no task, future or wake-up per event, which is what lets one new message
reach ten thousand idle sessions quickly. Expunges may be sent during IDLE (a command is in
progress). The auto-logout timer restarts with every IDLE (RFC 9051 §5.4 note: clients
re-IDLE within 29 minutes)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from mailstead.imap.parse.commands import Command
from mailstead.imap.replies import Reply, bad, done

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def idle(session: Session, cmd: Command[None]) -> Reply:
    if session.notify is not None:
        return await _idle_notifying(session)
    session.send(b"+ idling\r\n")
    await session.refresh_live()
    session.flush(allow_expunge=True)
    await session.stream.drain()
    line_task = asyncio.ensure_future(session.read_line())
    failure: list[BaseException] = []
    selected = session.selection
    sub = selected.subscription if selected is not None else None
    # Live results (RFC 5267 §4.3.2: ADDTO/REMOVEFROM "when the client is using the IDLE
    # facility") need the changed messages read before the flush: the notifier wakes one
    # task that does both, instead of flushing where it is called.
    wake = asyncio.Event()
    updater: asyncio.Task[None] | None = None

    def fail(exc: BaseException) -> None:
        failure.append(exc)
        line_task.cancel()

    async def update_live() -> None:
        while True:
            await wake.wait()
            wake.clear()
            try:
                await session.refresh_live()
                session.flush(allow_expunge=True)
            except Exception as exc:  # e.g. Disconnect, or the store failing
                fail(exc)
                return

    def push() -> None:
        if selected is not None and selected.live:
            wake.set()
            return
        try:
            session.flush(allow_expunge=True)
        except BaseException as exc:  # e.g. Disconnect: the selected mailbox was deleted
            fail(exc)

    if sub is not None:
        if selected is not None and selected.live:
            updater = asyncio.ensure_future(update_live())
        sub.set_notifier(push)
    try:
        try:
            line = await line_task  # IdleTimeout / ConnectionClosed propagate to the session
        except asyncio.CancelledError:
            if failure:
                raise failure[0] from None
            raise
    finally:
        if sub is not None:
            sub.set_notifier(None)
        for task in (line_task, updater):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    if line.strip().upper() != b"DONE":
        raise bad("Expected DONE to end IDLE")
    return done("IDLE terminated")


async def _idle_notifying(session: Session) -> Reply:
    """IDLE after NOTIFY SET: exactly the events NOTIFY asked for (RFC 5465 §4), pushed by
    the session's NOTIFY pump, expunges included even with ``selected-delayed`` (IDLE is a
    command during which they may be sent)."""
    session.send(b"+ idling\r\n")
    await session.deliver_notifications(allow_expunge=True, pushing=True)
    await session.stream.drain()
    session.listen(allow_expunge=True)
    try:
        line = await session.read_line()
    finally:
        await session.quiet()
    if line.strip().upper() != b"DONE":
        raise bad("Expected DONE to end IDLE")
    return done("IDLE terminated")
