"""The pure parts of JMAP push (http/jmap/push.py): which types an event changes, the
event source's parameters, the event format, and the coalescing of a burst."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from mailstead.auth.authenticator import UserRecord
from mailstead.http.jmap import push
from mailstead.http.jmap.push import (
    ChangeFeed,
    StateWatch,
    changed_types,
    parse_types,
    ping_interval,
    server_sent_event,
)
from mailstead.store.changes import ChangeBus
from mailstead.store.models import ChangeEvent, ChangeKind


def test_message_events_change_emails_threads_and_mailboxes() -> None:
    assert changed_types(ChangeEvent(1, 1, ChangeKind.EXISTS)) == {"Email", "Thread", "Mailbox"}
    assert changed_types(ChangeEvent(1, 1, ChangeKind.EXPUNGE)) == {"Email", "Thread", "Mailbox"}
    assert changed_types(ChangeEvent(1, 1, ChangeKind.FLAGS)) == {"Email", "Mailbox"}
    assert changed_types(ChangeEvent(1, 1, ChangeKind.MAILBOX_RENAMED)) == {"Mailbox"}
    assert changed_types(ChangeEvent(1, 0, ChangeKind.SERVER_METADATA)) == frozenset()


def test_types_and_ping() -> None:
    assert parse_types("*") == {"Mailbox", "Email", "Thread"}
    assert parse_types("Email, Mailbox") == {"Email", "Mailbox"}
    assert parse_types("") == frozenset()
    assert ping_interval(0) == 0
    assert ping_interval(1) == push.MIN_PING_SECONDS
    assert ping_interval(60) == 60
    assert ping_interval(10**6) == push.MAX_PING_SECONDS


@given(st.dictionaries(st.text(), st.text()), st.text(alphabet="0123456789", max_size=20))
def test_an_event_is_one_data_line(data: dict[str, str], event_id: str) -> None:
    raw = server_sent_event("state", data, event_id or None).decode()
    assert raw.endswith("\n\n")
    lines = raw[:-2].split("\n")
    assert lines[0] == "event: state"
    data_lines = [line for line in lines if line.startswith("data: ")]
    assert len(data_lines) == 1  # JSON escapes every newline in the data
    assert json.loads(data_lines[0][len("data: ") :]) == data


class _Source:
    """The account's state is the count of events published: a stand-in mod-sequence."""

    def __init__(self, bus: ChangeBus) -> None:
        self.bus = bus
        self.modseq = 0
        self.reads = 0

    async def subscribe(self, user: UserRecord) -> ChangeFeed:
        return self.bus.subscribe(7)  # the one account of these tests

    async def state(self, user: UserRecord) -> str:
        self.reads += 1
        return str(self.modseq)

    def publish(self, *events: ChangeEvent) -> None:
        self.modseq += len(events)
        self.bus.publish(events)


@dataclass(frozen=True)
class _Record:
    address: str = "a@example.org"
    password_hash: str = ""
    disabled: bool = False
    scram_sha256: str | None = None


def _user() -> UserRecord:
    return _Record()


async def test_a_burst_is_one_change_with_the_latest_state() -> None:
    source = _Source(ChangeBus())
    user = _user()
    watch = StateWatch(await source.subscribe(user), source, user, {"Email", "Mailbox"})
    source.publish(ChangeEvent(7, 1, ChangeKind.EXISTS))
    assert await watch.next(5) == {"Email": "1", "Mailbox": "1"}
    # Within the coalescing window: these three are told once, at the state after them.
    for _ in range(3):
        source.publish(ChangeEvent(7, 1, ChangeKind.FLAGS))
        await asyncio.sleep(0)
    assert await watch.next(5) == {"Email": "4", "Mailbox": "4"}
    assert source.reads == 2
    watch.close()


async def test_unwanted_types_and_other_accounts_stay_quiet() -> None:
    source = _Source(ChangeBus())
    user = _user()
    watch = StateWatch(await source.subscribe(user), source, user, {"Thread"})
    source.publish(ChangeEvent(7, 1, ChangeKind.FLAGS))  # no Thread change
    source.publish(ChangeEvent(8, 1, ChangeKind.EXISTS))  # another account
    assert await watch.next(0.3) is None
    source.publish(ChangeEvent(7, 1, ChangeKind.EXPUNGE))
    assert await watch.next(5) == {"Thread": "3"}
    watch.close()
    assert not source.bus._subscribers  # closing the watch let go of the subscription
