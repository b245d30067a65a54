"""The SQLite store's connections and the threads that use them.

Every statement runs off the event loop. Writes go to the one writer thread of
:class:`~mailstead.store.sql.writer.GroupCommitWriter`, which commits them in groups; reads
run on a small pool of threads, each with its own read connection, which WAL lets run beside
the writer; file work (large bodies, parsing large messages) runs on a pool of its own so it
never holds up a read. The modules beside this one are functions of a connection; this one
hands them to the right thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mailstead.core.errors import StoreError
from mailstead.store import audit
from mailstead.store.sql import admin_records
from mailstead.store.sql.opening import (
    DatabaseRefused,
    check_before_opening,
    check_before_use,
)
from mailstead.store.sql.schema import migrate
from mailstead.store.sql.writer import GroupCommitWriter, Publish, WriteFn, WriteOutcome

T = TypeVar("T")

#: Host parameters per statement when a list of ids is sent as ``IN (...)``: well below
#: SQLite's limit on host parameters, and large enough that few statements are needed.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in batches that fit one statement's host parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def placeholders(count: int) -> str:
    """``?,?,?`` for an ``IN (...)`` list of ``count`` values."""
    return ",".join("?" * count)


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made (the driver types it optional because a
    statement that inserted nothing has none)."""
    if cur.lastrowid is None:
        raise StoreError("the row was not inserted")
    return cur.lastrowid


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, durable commits."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: every COMMIT fsyncs the WAL, so a returned write survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


#: How long a read on the event loop's own connection may wait for a lock before it is
#: handed to a reader thread instead (see ``Connections.read_small``).
INLINE_BUSY_MS = 5
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class Connections:
    """The writer, the reader pool and the I/O pool of one open store."""

    def __init__(
        self, db_path: Path, blob_root: Path, publish: Publish, *, read_threads: int = 4
    ) -> None:
        self._db_path = db_path
        self._blob_root = blob_root
        self._publish = publish
        self._read_threads = read_threads
        self._writer: GroupCommitWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._io: ThreadPoolExecutor | None = None
        #: Large bodies read whole at once (to parse them, bodies.stage): each may be
        #: limits.max_message_size, so only a few at a time.
        self.whole_reads = asyncio.Semaphore(2)
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()

    def _connect_writer(self) -> sqlite3.Connection:
        """The writer's connection checks the files (opening.py) and brings the schema up
        to date before anything else runs."""
        check_before_opening(self._db_path, self._blob_root)
        try:
            conn = connect(self._db_path)
        except sqlite3.DatabaseError as exc:  # journal_mode on a file that is no database
            raise DatabaseRefused(
                f"{self._db_path} can't be read as a database ({exc}); restore it from a backup"
            ) from None
        try:
            check_before_use(conn, self._db_path, self._blob_root)
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def open(self) -> None:
        self._writer = GroupCommitWriter(self._connect_writer, self._publish, self._blob_root)
        await asyncio.to_thread(self._writer.start)
        self._readers = ThreadPoolExecutor(self._read_threads, thread_name_prefix="store-read")
        self._io = ThreadPoolExecutor(8, thread_name_prefix="store-io")

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        for pool in (self._readers, self._io):
            if pool is not None:
                pool.shutdown(wait=True)
        self._readers = self._io = None
        with self._read_lock:
            for conn in self._read_connections:
                conn.close()
            self._read_connections.clear()

    def _reader(self, name: str = "conn", busy_ms: int | None = None) -> sqlite3.Connection:
        """This thread's own read connection ``name``, opened on its first read (and closed
        with the store); ``busy_ms`` shortens how long it waits for a lock."""
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            conn = connect(self._db_path)
            if busy_ms is not None:
                conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            setattr(self._local, name, conn)
            with self._read_lock:
                self._read_connections.append(conn)
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader thread's connection."""
        if self._readers is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

    async def read_small(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read that is small by construction (rows by key, a bounded number of
        them) at once, on the calling event loop's own connection.

        Handing a read to a reader thread and back costs the event loop more than such a
        read itself: a future, a cross-thread wake-up and two GIL hand-overs, against
        some tens of microseconds of SQLite (decision 0030). Readers never wait for the
        writer in WAL mode; the one case that can make a read wait (SQLITE_BUSY while
        another connection recovers the WAL) must not hold the loop, so this connection
        gives up after a few milliseconds and the read goes to a reader thread instead.
        Anything that may scan or return much (a whole mailbox, a search) uses
        :meth:`read`."""
        if self._readers is None:
            raise StoreError("store is not open")
        conn = self._reader("inline", INLINE_BUSY_MS)
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in _BUSY:  # extended codes: BUSY_RECOVERY ...
                raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return await self.read(fn)

    async def write(self, fn: WriteFn[T], *, sync_dirs: set[Path] | None = None) -> T:
        """Run ``fn`` in the writer's next group commit; returns once it is durable.
        ``sync_dirs``: body files (and their directories) to flush before the COMMIT."""
        if self._writer is None:
            raise StoreError("store is not open")
        scope = audit.pending()
        if scope is None:
            return await self._writer.submit(fn, sync_dirs)
        entry = scope.entry

        def with_record(conn: sqlite3.Connection) -> WriteOutcome[T]:
            outcome = fn(conn)  # an exception leaves no record: the change did not happen
            admin_records.insert_audit(conn, entry)
            return outcome

        result = await self._writer.submit(with_record, sync_dirs)
        scope.recorded = True
        return result

    async def in_io(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (file work, parsing) on the I/O pool, apart from the readers."""
        if self._io is None:
            raise StoreError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._io, fn)

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches committed, writes committed): writes/batches is the group-commit factor."""
        if self._writer is None:
            return (0, 0)
        return (self._writer.batches, self._writer.writes)
