"""The bound on the SQLite store's in-memory message lists (message_lists.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailstead.store.sql.message_lists import MessageLists
from mailstead.store.sql.sqlite import SQLiteStore
from tests.store_contract.conftest import fake_parse, message


async def test_least_recently_listed_mailboxes_are_dropped_first(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "data", parse=fake_parse)
    await store.open()
    try:
        await store.add_domain("example.org")
        user = await store.add_user("alice@example.org", "hash")
        boxes = {}
        for name, count in (("A", 3), ("B", 2), ("C", 2), ("Big", 6)):
            boxes[name] = (await store.create_mailbox(user.id, name)).id
            for n in range(count):
                await store.append(boxes[name], message(n), [])
    finally:
        await store.close()

    lists = MessageLists(max_rows=5)
    conn = sqlite3.connect(tmp_path / "data" / "mailstead.db", isolation_level=None)
    try:
        assert len(lists.read(conn, boxes["A"])) == 3
        assert len(lists.read(conn, boxes["B"])) == 2
        assert lists.cached_rows == 5
        assert len(lists.read(conn, boxes["A"])) == 3  # A is now the most recent
        assert len(lists.read(conn, boxes["Big"])) == 6  # over the bound: read, not kept
        assert lists.cached_rows == 5
        # C needs room: B (2 rows), listed longest ago, goes, not A (3): 3 + 2 rows stay.
        assert len(lists.read(conn, boxes["C"])) == 2
        assert lists.cached_rows == 5
        assert not conn.in_transaction  # each read ends its snapshot
        assert [int(m.uid) for m in lists.read(conn, boxes["B"])] == [1, 2]
        assert lists.read(conn, 9999) == []  # no such mailbox
    finally:
        conn.close()
