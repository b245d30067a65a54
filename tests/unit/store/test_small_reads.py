"""Reads on the event loop's own connection (``Connections.read_small``, decision 0030):
which reads take it, that they give the same answers, and that a locked database sends
them to a reader thread instead of holding the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from mailstead.core.types import FlagMode
from mailstead.store.sql import connections
from mailstead.store.sql.message_lists import MessageLists
from mailstead.store.sql.sqlite import SQLiteStore
from tests.store_contract.conftest import fake_parse, message


async def test_mailbox_rows_bodies_and_current_lists_are_read_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_read = connections.Connections.read

    async def counting_read(self: connections.Connections, fn):  # type: ignore[no-untyped-def]
        threads.append("reader")
        return await real_read(self, fn)

    monkeypatch.setattr(connections.Connections, "read", counting_read)
    async with SQLiteStore(tmp_path / "data", parse=fake_parse) as store:
        await store.add_domain("example.org")
        user = await store.add_user("alice@example.org", "hash")
        inbox = await store.get_mailbox(user.id, "INBOX")
        for n in range(3):
            await store.append(inbox.id, message(n), [])
        threads.clear()

        assert (await store.get_mailbox(user.id, "INBOX")).message_count == 3
        assert (await store.get_mailbox_by_id(inbox.id)).name == "INBOX"
        first = await store.list_messages(inbox.id)  # not kept yet: a reader thread
        assert threads == ["reader"]
        again = await store.list_messages(inbox.id)  # unchanged: from memory, on the loop
        assert again == first
        blob = await store.read_blob(first[0].blob_id)
        assert blob == message(0)
        structures = await store.get_structures([m.blob_id for m in first])
        assert set(structures) == {m.blob_id for m in first}
        assert threads == ["reader"]

        # A change makes the kept list stale: the next listing catches up on a thread and
        # sees it.
        await store.store_flags(inbox.id, [first[0].uid], FlagMode.ADD, ["\\Seen"])
        changed = await store.list_messages(inbox.id)
        assert threads == ["reader", "reader"]
        assert "\\Seen" in changed[0].flags


def test_a_kept_list_is_current_only_while_the_mailbox_is_unchanged(tmp_path: Path) -> None:
    async def fill() -> tuple[int, int]:
        async with SQLiteStore(tmp_path / "data", parse=fake_parse) as store:
            await store.add_domain("example.org")
            user = await store.add_user("alice@example.org", "hash")
            inbox = await store.get_mailbox(user.id, "INBOX")
            await store.append(inbox.id, message(1), [])
            return inbox.id, user.id

    box_id, _ = asyncio.run(fill())
    conn = sqlite3.connect(tmp_path / "data" / "mailstead.db", isolation_level=None)
    lists = MessageLists()
    assert lists.read_current(conn, box_id) is None  # never listed
    listed = lists.read(conn, box_id)
    assert lists.read_current(conn, box_id) == listed
    conn.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?", (box_id,))
    assert lists.read_current(conn, box_id) is None  # changed since: read() catches up
    conn.close()


async def test_a_busy_database_sends_the_read_to_a_reader_thread(tmp_path: Path) -> None:
    """SQLITE_BUSY on the loop's connection (a WAL recovery in another connection, say)
    hands the read to a reader thread, which may wait; other errors are the caller's."""
    async with SQLiteStore(tmp_path / "data", parse=fake_parse) as store:
        ran_on: list[str] = []

        def busy_once(conn: sqlite3.Connection) -> int:
            ran_on.append(threading.current_thread().name)
            if len(ran_on) == 1:
                exc = sqlite3.OperationalError("database is locked")
                exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
                raise exc
            return int(conn.execute("SELECT 42").fetchone()[0])

        assert await store._db.read_small(busy_once) == 42
        assert ran_on[0] == threading.current_thread().name  # first on the loop
        assert ran_on[1].startswith("store-read")  # then on a reader thread

        def broken(conn: sqlite3.Connection) -> int:
            conn.execute("SELECT * FROM no_such_table")
            return 0

        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await store._db.read_small(broken)
