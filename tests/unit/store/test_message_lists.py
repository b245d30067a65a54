"""The SQLite store's in-memory message lists (message_lists.py): that the fast paths are
taken, and the bound on what they keep.

Each test watches the statements its connection runs: a list read afresh selects every
message row of the mailbox; one caught up selects only the rows above its mod-sequence; one
served from memory selects no message row at all.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from mailstead.core.types import UID, FlagMode
from mailstead.store.sql.message_lists import MessageLists
from mailstead.store.sql.sqlite import SQLiteStore
from tests.store_contract.conftest import fake_parse, message


class Watched:
    """A read connection to the store's database that remembers the statements it ran."""

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        self.statements: list[str] = []
        self.conn.set_trace_callback(self.statements.append)

    def message_reads(self) -> tuple[int, int]:
        """(fresh reads, catch-ups) since the last call."""
        reads = [s for s in self.statements if "FROM messages" in s]
        self.statements.clear()
        caught_up = sum("modseq >" in s for s in reads)
        return len(reads) - caught_up, caught_up


@contextlib.contextmanager
def watched(db_path: Path) -> Iterator[Watched]:
    reader = Watched(db_path)
    try:
        yield reader
    finally:
        reader.conn.close()


async def test_least_recently_listed_mailboxes_are_dropped_first(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "data", parse=fake_parse) as store:
        await store.add_domain("example.org")
        user = await store.add_user("alice@example.org", "hash")
        boxes = {}
        for name, count in (("A", 3), ("B", 2), ("C", 2), ("Big", 6)):
            boxes[name] = (await store.create_mailbox(user.id, name)).id
            for n in range(count):
                await store.append(boxes[name], message(n), [])

    lists = MessageLists(max_rows=5)
    with watched(tmp_path / "data" / "mailstead.db") as reader:
        conn = reader.conn
        assert len(lists.read(conn, boxes["A"])) == 3
        assert len(lists.read(conn, boxes["B"])) == 2
        assert reader.message_reads() == (2, 0)
        assert len(lists.read(conn, boxes["A"])) == 3  # from memory; now the most recent
        assert reader.message_reads() == (0, 0)
        for _ in range(2):  # over the bound: read, never kept
            assert len(lists.read(conn, boxes["Big"])) == 6
            assert reader.message_reads() == (1, 0)
        # C needs room: B (2 rows), listed longest ago, goes, not A (3): 3 + 2 rows stay.
        assert len(lists.read(conn, boxes["C"])) == 2
        assert len(lists.read(conn, boxes["A"])) == 3
        assert reader.message_reads() == (1, 0)
        assert [int(m.uid) for m in lists.read(conn, boxes["B"])] == [1, 2]
        assert reader.message_reads() == (1, 0)
        assert not conn.in_transaction  # each read ends its snapshot
        assert lists.read(conn, 9999) == []  # no such mailbox


async def test_a_changed_mailbox_is_caught_up_not_read_afresh(tmp_path: Path) -> None:
    lists = MessageLists()
    async with SQLiteStore(tmp_path / "data", parse=fake_parse) as store:
        await store.add_domain("example.org")
        user = await store.add_user("alice@example.org", "hash")
        box = (await store.get_mailbox(user.id, "INBOX")).id
        for n in range(3):
            await store.append(box, message(n), [])
        with watched(store.db_path) as reader:
            assert len(lists.read(reader.conn, box)) == 3
            assert reader.message_reads() == (1, 0)
            await store.append(box, message(3), [])
            await store.store_flags(box, [UID(1)], FlagMode.ADD, ["\\Seen"])
            await store.expunge(box, None)  # nothing is \Deleted: no change
            caught_up = lists.read(reader.conn, box)
            assert reader.message_reads() == (0, 1)
            assert caught_up == MessageLists().read(reader.conn, box)
            assert [(int(m.uid), m.flags) for m in caught_up] == [
                (1, {"\\Seen"}), (2, set()), (3, set()), (4, set())]
