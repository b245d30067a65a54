"""What the SQLite backend does beyond the contract: where it keeps bodies, how it commits,
and how it reads rows that older versions wrote."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailstead.core.errors import NotFound
from mailstead.store.models import SortKeyField
from mailstead.store.sql.bodies import DATABASE_BODY_LIMIT
from mailstead.store.sql.opening import DatabaseRefused
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


async def _one_body_file(data_dir: Path) -> str:
    """A store in ``data_dir`` holding one message whose body is a file; its blob id."""
    store = SQLiteStore(data_dir)
    async with store:
        await store.add_domain("example.org")
        user = await store.add_user("ann@example.org", "x")
        box = await store.get_mailbox(user.id, "INBOX")
        await store.append(box.id, message(1, size=DATABASE_BODY_LIMIT + 1))
        [meta] = await store.list_messages(box.id)
    assert store.blobs.exists(meta.blob_id)
    return meta.blob_id


def _lose_database(data_dir: Path) -> None:
    """What a failed copy or a full disk leaves: a 0-byte database and no WAL."""
    (data_dir / "mailstead.db").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (data_dir / f"mailstead.db{suffix}").unlink(missing_ok=True)


async def test_an_empty_database_beside_bodies_is_refused_and_nothing_is_deleted(
        tmp_path: Path) -> None:
    """A 0-byte mailstead.db was taken for a fresh install: a new postmaster, then the
    hourly collection deleted every body file (116 of 116)."""
    data_dir = tmp_path / "data"
    blob_id = await _one_body_file(data_dir)
    _lose_database(data_dir)
    store = SQLiteStore(data_dir)
    with pytest.raises(DatabaseRefused, match=r"holds message bodies.*Restore it from a backup"):
        await store.open()
    await store.close()
    assert store.blobs.exists(blob_id)
    assert (data_dir / "mailstead.db").stat().st_size == 0  # nothing written either


async def test_collection_never_removes_files_older_than_its_database(
        tmp_path: Path) -> None:
    """Bodies beside a database that never knew them (moved aside and back, a replaced
    database) are not crash leftovers; only files written since the database took charge
    can be."""
    data_dir = tmp_path / "data"
    blob_id = await _one_body_file(data_dir)
    path = SQLiteStore(data_dir).blobs.path_for(blob_id)
    aside = tmp_path / "aside"
    aside.write_bytes(path.read_bytes())
    _lose_database(data_dir)
    path.unlink()
    store = SQLiteStore(data_dir)
    async with store:  # a fresh database: no body beside it now
        aside.replace(path)  # back beside a database that never knew it
        old = time.time() - 7200
        os.utime(path, (old, old))
        crash_leftover, _ = store.blobs.write(b"written, then a crash before the COMMIT")
        assert await store.collect_garbage(grace_seconds=0) == 1
        assert store.blobs.exists(blob_id) and not store.blobs.exists(crash_leftover)


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "mailstead.db").write_bytes(b"this is a text file, not SQLite " * 200)
    store = SQLiteStore(data_dir)
    with pytest.raises(DatabaseRefused, match="can't be read as a database"):
        await store.open()
    await store.close()


async def test_a_damaged_database_is_refused_at_open(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = SQLiteStore(data_dir)
    async with store:
        await store.add_domain("example.org")
        user = await store.add_user("ann@example.org", "x")
        box = await store.get_mailbox(user.id, "INBOX")
        for n in range(300):
            await store.append(box.id, message(n, size=2000))
    with contextlib.closing(sqlite3.connect(data_dir / "mailstead.db")) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    with open(data_dir / "mailstead.db", "r+b") as db:  # scribble over a page in the middle
        db.seek(page_size * (pages // 2))
        db.write(b"\xa5" * page_size)
    again = SQLiteStore(data_dir)
    with pytest.raises(DatabaseRefused, match=r"damaged|can't be read"):
        await again.open()
    await again.close()


async def test_sort_keys_go_with_their_body(store: SQLiteStore, user_id: int) -> None:
    """The keys row is removed with the body's row (ON DELETE CASCADE), so no key outlives
    the body it was made of."""
    box = await inbox_id(store, user_id)
    await store.append(box, message(1), flags=["\\Deleted"])
    kept = await store.append(box, message(2))

    def count() -> int:
        with contextlib.closing(sqlite3.connect(store.db_path)) as conn:
            return int(conn.execute("SELECT count(*) FROM sort_keys").fetchone()[0])

    assert count() == 2
    await store.expunge(box)
    assert count() == 2  # the body stays until it is collected
    assert await store.collect_garbage(grace_seconds=0) == 1
    assert count() == 1
    assert list(await store.sort_keys(box, frozenset(SortKeyField), 1)) == [kept.uid]
