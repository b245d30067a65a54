"""In-process change bus: the store publishes after commit, sessions subscribe per account.

Events are never dropped (a dropped EXPUNGE would desynchronise an IMAP session's sequence
numbers); a slow consumer only costs memory for its own backlog, and a session closes its
subscription on logout.

A subscription is deliberately small (tens of thousands of IDLE sessions each hold one): a
deque, at most one waiting future, and an optional *notifier*. The notifier is a plain
function called on the loop thread once per published batch that reached the subscription,
so a session in IDLE can push untagged responses straight away without a task, a future or
a wake-up per event.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from mailstead.store.models import ChangeEvent

log = logging.getLogger("mailstead.store")


class Subscription:
    """Events for one account, in commit order."""

    __slots__ = ("_bus", "_events", "_notifier", "_waiter", "user_id")

    def __init__(self, bus: ChangeBus, user_id: int) -> None:
        self._bus = bus
        self.user_id = user_id
        self._events: deque[ChangeEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._notifier: Callable[[], None] | None = None

    def _put(self, event: ChangeEvent) -> None:
        self._events.append(event)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._notifier is not None:
            try:
                self._notifier()
            except Exception:  # a session's bug must not stop delivery to the others
                log.exception("change notifier for user #%d failed", self.user_id)

    def set_notifier(self, notifier: Callable[[], None] | None) -> None:
        """Call ``notifier()`` after each published batch with events for this account
        (``None`` stops it). It runs on the loop thread and must not block."""
        self._notifier = notifier

    async def get(self) -> ChangeEvent:
        """The next event, waiting for one if none is pending."""
        while not self._events:
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    def drain(self) -> list[ChangeEvent]:
        """Everything that arrived so far, without waiting."""
        events = list(self._events)
        self._events.clear()
        return events

    def backlog(self) -> int:
        """How many events wait to be drained (a consumer that bounds its backlog asks)."""
        return len(self._events)

    def close(self) -> None:
        self._notifier = None
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
        touched: dict[Subscription, None] = {}
        for event in events:
            for sub in tuple(self._subscribers.get(event.user_id, ())):
                sub._put(event)
                touched[sub] = None
        for sub in touched:
            sub._wake()

    def _remove(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.user_id]
