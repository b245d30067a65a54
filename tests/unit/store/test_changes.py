"""The change bus: order, no loss, one notification per published batch."""

from __future__ import annotations

import asyncio

from mailstead.core.types import UID
from mailstead.store.changes import ChangeBus
from mailstead.store.models import ChangeEvent, ChangeKind


def event(user: int, uid: int) -> ChangeEvent:
    return ChangeEvent(user, 1, ChangeKind.EXISTS, (UID(uid),), uid)


async def test_get_waits_and_keeps_commit_order() -> None:
    bus = ChangeBus()
    sub = bus.subscribe(7)
    waiter = asyncio.ensure_future(sub.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    bus.publish([event(7, 1), event(7, 2), event(8, 3)])
    assert (await waiter).uids == (1,)
    assert [e.uids for e in sub.drain()] == [(2,)]
    assert sub.drain() == []


async def test_notifier_runs_once_per_batch_and_stops_on_close() -> None:
    bus = ChangeBus()
    sub = bus.subscribe(7)
    calls: list[int] = []
    sub.set_notifier(lambda: calls.append(len(sub.drain())))
    bus.publish([event(7, 1), event(7, 2)])
    bus.publish([event(8, 3)])  # another account: not this subscription's business
    assert calls == [2]
    sub.close()
    bus.publish([event(7, 4)])
    assert calls == [2]
    assert sub.drain() == []  # closed: off the bus, nothing more arrives


async def test_a_failing_notifier_does_not_stop_the_others() -> None:
    bus = ChangeBus()
    bad, good = bus.subscribe(7), bus.subscribe(7)

    def explode() -> None:
        raise RuntimeError("session bug")

    seen: list[int] = []
    bad.set_notifier(explode)
    good.set_notifier(lambda: seen.append(len(good.drain())))
    bus.publish([event(7, 1)])
    assert seen == [1]
    assert [e.uids for e in bad.drain()] == [(1,)]  # the event is kept for the next command
