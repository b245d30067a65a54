"""In-process change bus: the store publishes after commit, sessions subscribe per account.

A subscriber gets an unbounded-by-count but coalescing-safe queue: events are never dropped
(a dropped EXPUNGE would desynchronise an IMAP session's sequence numbers). Slow consumers
only cost memory for their own backlog, and a session closes its subscription on logout.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable

from mailstead.store.models import ChangeEvent


class Subscription:
    """Events for one account, in commit order."""

    def __init__(self, bus: ChangeBus, user_id: int) -> None:
        self._bus = bus
        self.user_id = user_id
        self._queue: asyncio.Queue[ChangeEvent] = asyncio.Queue()

    def _put(self, event: ChangeEvent) -> None:
        self._queue.put_nowait(event)

    async def get(self) -> ChangeEvent:
        return await self._queue.get()

    def drain(self) -> list[ChangeEvent]:
        """Everything that arrived so far, without waiting."""
        events: list[ChangeEvent] = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeBus:
    """Fan-out of committed changes to the subscribers of each account."""

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = defaultdict(set)

    def subscribe(self, user_id: int) -> Subscription:
        sub = Subscription(self, user_id)
        self._subscribers[user_id].add(sub)
        return sub

    def publish(self, events: Iterable[ChangeEvent]) -> None:
        """Call on the event loop thread, after the write committed."""
        for event in events:
            for sub in tuple(self._subscribers.get(event.user_id, ())):
                sub._put(event)

    def subscriber_count(self, user_id: int) -> int:
        return len(self._subscribers.get(user_id, ()))

    def _remove(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.user_id]
