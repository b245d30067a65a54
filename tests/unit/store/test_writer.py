"""The group-commit writer: results and events only after the commit, and a failed commit
fails every write of its batch."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailstead.core.errors import NotFound, StorageUnavailable
from mailstead.core.types import UID
from mailstead.store.models import ChangeEvent, ChangeKind
from mailstead.store.sql.connections import connect
from mailstead.store.sql.writer import GroupCommitWriter, WriteFn, WriteOutcome


def setup(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS notes (n INTEGER PRIMARY KEY)")
    return conn


def committed(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT n FROM notes ORDER BY n")]


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, published: list[list[ChangeEvent]]
) -> AsyncIterator[GroupCommitWriter]:
    writer = GroupCommitWriter(lambda: setup(tmp_path / "db"), published.append, tmp_path)
    await asyncio.to_thread(writer.start)
    try:
        yield writer
    finally:
        await asyncio.to_thread(writer.stop)


async def test_results_and_events_come_after_the_commit(tmp_path: Path) -> None:
    published: list[list[ChangeEvent]] = []
    seen_at_publish: list[list[int]] = []

    def publish(events: list[ChangeEvent]) -> None:
        seen_at_publish.append(committed(tmp_path / "db"))
        published.append(events)

    def insert(n: int) -> WriteFn[int]:
        def write(conn: sqlite3.Connection) -> WriteOutcome[int]:
            conn.execute("INSERT INTO notes (n) VALUES (?)", (n,))
            return WriteOutcome(n * 10, [ChangeEvent(1, 1, ChangeKind.EXISTS, (UID(n),), n)])

        return write

    writer = GroupCommitWriter(lambda: setup(tmp_path / "db"), publish, tmp_path)
    await asyncio.to_thread(writer.start)
    try:
        results = await asyncio.gather(*(writer.submit(insert(n)) for n in range(1, 6)))
    finally:
        await asyncio.to_thread(writer.stop)
    assert results == [10, 20, 30, 40, 50]
    assert [e.uids for batch in published for e in batch] == [(UID(n),) for n in range(1, 6)]
    for batch, visible in zip(published, seen_at_publish, strict=True):
        assert {e.modseq for e in batch} <= set(visible)  # committed before it was published


async def test_a_failed_write_rolls_back_alone(tmp_path: Path) -> None:
    def refuse(conn: sqlite3.Connection) -> WriteOutcome[None]:
        conn.execute("INSERT INTO notes (n) VALUES (99)")
        raise NotFound("no such thing")

    def insert(conn: sqlite3.Connection) -> WriteOutcome[None]:
        conn.execute("INSERT INTO notes (n) VALUES (1)")
        return WriteOutcome(None)

    published: list[list[ChangeEvent]] = []
    async with running(tmp_path, published) as writer:
        outcomes = await asyncio.gather(
            writer.submit(insert), writer.submit(refuse), return_exceptions=True
        )
    assert outcomes[0] is None and isinstance(outcomes[1], NotFound)
    assert committed(tmp_path / "db") == [1]


async def test_a_failed_commit_fails_every_write_and_publishes_nothing(tmp_path: Path) -> None:
    """A body file that cannot be flushed must not leave rows pointing at it."""

    def insert(conn: sqlite3.Connection) -> WriteOutcome[None]:
        conn.execute("INSERT INTO notes (n) VALUES (1)")
        return WriteOutcome(None, [ChangeEvent(1, 1, ChangeKind.EXISTS, (UID(1),), 1)])

    published: list[list[ChangeEvent]] = []
    missing = {tmp_path / "no-such-body"}
    async with running(tmp_path, published) as writer:
        with pytest.raises(StorageUnavailable):
            await writer.submit(insert, missing)
        assert await writer.submit(lambda conn: WriteOutcome(2)) == 2  # the writer goes on
    assert published == []
    assert committed(tmp_path / "db") == []
