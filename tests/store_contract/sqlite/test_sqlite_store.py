"""What the SQLite backend does beyond the contract: where it keeps bodies, how it commits,
and how it reads rows that older versions wrote."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailstead.core.errors import NotFound
from mailstead.store.sql.bodies import DATABASE_BODY_LIMIT
from mailstead.store.sql.sqlite import SQLiteStore
from tests.store_contract.conftest import message


async def inbox_id(store: SQLiteStore, user_id: int) -> int:
    return (await store.get_mailbox(user_id, "INBOX")).id


def execute(store: SQLiteStore, sql: str) -> None:
    """Change rows behind the store's back, as an older version would have written them."""
    with contextlib.closing(sqlite3.connect(store.db_path)) as conn, conn:
        conn.execute(sql)


async def test_small_bodies_live_in_the_database_large_ones_in_files(
    store: SQLiteStore, user_id: int
) -> None:
    """Decision 0002: a small body becomes durable with its rows' WAL fsync, no file."""
    box = await inbox_id(store, user_id)
    small, large = message(1), message(2, size=DATABASE_BODY_LIMIT + 1)
    await store.append(box, small)
    await store.append(box, large)
    small_id, large_id = [m.blob_id for m in await store.list_messages(box)]
    assert not store.blobs.exists(small_id)
    assert store.blobs.read(large_id) == large
    with contextlib.closing(sqlite3.connect(store.db_path)) as conn:
        stored = dict(conn.execute("SELECT id, data IS NOT NULL FROM blobs").fetchall())
    assert stored == {small_id: 1, large_id: 0}


async def test_concurrent_appends_share_commits(store: SQLiteStore, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    await asyncio.gather(*(store.append(box, message(n)) for n in range(200)))
    batches, writes = store.commit_stats
    assert batches < writes  # several appends shared a commit


async def test_bodies_in_the_database_go_at_once_files_after_the_grace_period(
    store: SQLiteStore, user_id: int
) -> None:
    """A file is kept for the grace period because an append may be about to reuse it; a
    body in the database has no file to race with."""
    box = await inbox_id(store, user_id)
    small = await store.append(box, message(1), flags=["\\Deleted"])
    large = await store.append(box, message(2, size=300 * 1024), flags=["\\Deleted"])
    metas = {m.uid: m for m in await store.list_messages(box)}
    await store.expunge(box)
    assert await store.collect_garbage(grace_seconds=3600) == 1
    with pytest.raises(NotFound):
        await store.read_blob(metas[small.uid].blob_id)
    assert await store.read_blob(metas[large.uid].blob_id, 0, 9) == b"Subject: "
    assert await store.collect_garbage(grace_seconds=0) == 1
    assert not store.blobs.exists(metas[large.uid].blob_id)


async def test_orphan_body_files_are_collected(store: SQLiteStore, user_id: int) -> None:
    orphan_id, _ = store.blobs.write(b"left behind by a crash before commit")
    assert await store.collect_garbage(grace_seconds=0) == 1
    assert not store.blobs.exists(orphan_id)


async def test_rows_stored_with_a_zone_read_as_the_same_instant_in_utc(
    store: SQLiteStore, user_id: int
) -> None:
    """Internal dates written before they were kept in UTC still carry APPEND's zone."""
    box = await inbox_id(store, user_id)
    when = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    await store.append(box, message(1), internaldate=when)
    execute(store, "UPDATE messages SET internaldate = '1996-07-17T02:44:25-07:00'")
    [old] = await store.list_messages(box, [(1, 1)])
    assert old.internaldate == when and old.internaldate.tzinfo is UTC


async def test_rows_without_a_save_date_report_their_internal_date(
    store: SQLiteStore, user_id: int
) -> None:
    """Messages stored before save dates were kept (schema 6) read as their internal date."""
    box = await inbox_id(store, user_id)
    old = datetime(2010, 1, 1, 12, 0, tzinfo=UTC)
    result = await store.append(box, message(1), internaldate=old)
    execute(store, "UPDATE messages SET savedate = NULL")
    assert (await store.save_dates(box))[result.uid] == old


async def test_a_recreated_mailbox_takes_the_deleted_ones_id(
    store: SQLiteStore, user_id: int
) -> None:
    """SQLite reuses the highest rowid once it is deleted, so the contract test of a
    recreated mailbox's listing really meets a cached list under the same id."""
    box = await store.create_mailbox(user_id, "Projects")
    await store.delete_mailbox(user_id, "Projects")
    assert (await store.create_mailbox(user_id, "Projects")).id == box.id
