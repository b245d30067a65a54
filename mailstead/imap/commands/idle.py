"""IDLE (RFC 9051 §6.3.13, RFC 2177): push EXISTS/EXPUNGE/FETCH as they commit.

While idling the session waits on two things at once: the client's ``DONE`` line and the
change subscription. Expunges may be sent during IDLE (a command is in progress). The
auto-logout timer restarts with every IDLE (RFC 9051 §5.4 note: clients re-IDLE within 29
minutes)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from mailstead.imap.parse.commands import Command
from mailstead.imap.session import CommandError, Reply

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def idle(session: Session, cmd: Command) -> Reply:
    session.send(b"+ idling\r\n")
    session.flush(allow_expunge=True)
    await session.stream.drain()
    line_task = asyncio.ensure_future(session.read_line())
    try:
        while True:
            sub = session.subscription
            if sub is None:
                await asyncio.wait({line_task})
                break
            event_task = asyncio.ensure_future(sub.get())
            done, _ = await asyncio.wait(
                {line_task, event_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if event_task in done:
                view = session.selected
                if view is not None:
                    view.absorb([event_task.result()], session.claim_recent)
                session.flush(allow_expunge=True)
                await session.stream.drain()
            else:
                event_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await event_task
                # A get() that completed while being cancelled must not lose its event.
                if not event_task.cancelled() and event_task.exception() is None:
                    view = session.selected
                    if view is not None:
                        view.absorb([event_task.result()], session.claim_recent)
            if line_task.done():
                break
    finally:
        if not line_task.done():
            line_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await line_task
    line = line_task.result()  # IdleTimeout / ConnectionClosed propagate to the session
    if line.strip().upper() != b"DONE":
        raise CommandError("BAD", "Expected DONE to end IDLE")
    return Reply(text="IDLE terminated")
