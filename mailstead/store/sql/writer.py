"""One writer thread that commits in groups: many writes, one fsync.

Callers on the event loop submit a *write* (a function of the connection). The thread takes
every write waiting in its queue, runs each inside its own SAVEPOINT (so one failing write
rolls back alone), flushes the message bodies the batch needs, and commits the whole batch
with one COMMIT (one WAL fsync with ``synchronous=FULL``). Only then are the callers' futures
resolved and their change events published, on the loop thread, in commit order. The event
loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from mailstead.core import metrics
from mailstead.core.errors import StorageFull, StorageUnavailable, StoreError
from mailstead.store.blobs import flush_paths
from mailstead.store.models import ChangeEvent

log = logging.getLogger("mailstead.store")

MAX_BATCH = 512

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteOutcome(Generic[T]):
    """What a write hands back: the caller's result, and the change events to publish
    once the write has committed (never before: a session must not see a change that a
    crash could still undo)."""

    result: T
    events: list[ChangeEvent] = field(default_factory=list)


#: A write: runs in the writer thread, inside the batch's transaction.
WriteFn = Callable[[sqlite3.Connection], WriteOutcome[T]]
Publish = Callable[[list[ChangeEvent]], None]


def without_events(fn: Callable[[sqlite3.Connection], T]) -> WriteFn[T]:
    """A write of something no session watches (accounts, aliases, the outbound queue)."""
    return lambda conn: WriteOutcome(fn(conn))


@dataclass(slots=True, eq=False)
class _Job(Generic[T]):
    """One submitted write on its way from the loop to the writer thread and back."""

    fn: WriteFn[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    sync_dirs: set[Path]
    outcome: WriteOutcome[T] | BaseException | None = None

    def run(self, conn: sqlite3.Connection) -> None:
        """In the writer thread; an exception is the caller's to handle (see _commit_batch)."""
        self.outcome = self.fn(conn)

    def fail(self, error: BaseException) -> None:
        self.outcome = error

    def settle(self, publish: Publish) -> None:
        """On the loop thread, after the commit: publish the events, then wake the caller."""
        outcome = self.outcome
        if isinstance(outcome, WriteOutcome):
            if outcome.events:
                publish(outcome.events)
            if not self.future.done():
                self.future.set_result(outcome.result)
        elif outcome is not None and not self.future.done():
            self.future.set_exception(outcome)


class _AnyJob(Protocol):
    """A job whatever its result type: all the writer thread needs to know of it."""

    loop: asyncio.AbstractEventLoop
    sync_dirs: set[Path]

    def run(self, conn: sqlite3.Connection) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def settle(self, publish: Publish) -> None: ...


def is_full(exc: BaseException) -> bool:
    """A full disk or file-system quota, as the OS (``ENOSPC``, ``EDQUOT``) or SQLite
    (``SQLITE_FULL``) reports it."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_FULL,)


def _storage_error(exc: BaseException) -> StorageUnavailable:
    """What a caller is told when the disk or the database failed under its write."""
    return StorageFull("storage is full") if is_full(exc) else StorageUnavailable(
        "storage unavailable")


class GroupCommitWriter:
    """Owns the only writing connection to the database."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        publish: Publish,
        blob_root: Path,
    ) -> None:
        self._connect = connect
        self._blob_root = blob_root
        self._publish = publish
        #: Submitted jobs; ``None`` asks the thread to stop once the jobs before it are done.
        self._queue: queue.SimpleQueue[_AnyJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailstead-writer", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    async def submit(self, fn: WriteFn[T], sync_dirs: set[Path] | None = None) -> T:
        """Run ``fn`` in the next batch; returns its result once the batch is durable.
        ``sync_dirs``: body files (and their directories) to flush before the COMMIT."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop, sync_dirs or set()))
        return await future

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # surfaced to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch: list[_AnyJob] = [first]
                stop_after = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop_after = True
                        break
                    batch.append(item)
                self._commit_batch(conn, batch)
                if stop_after:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_AnyJob]) -> None:
        """One transaction for the batch; whatever goes wrong, every job gets an answer and
        the writer thread lives on (once a full disk killed it, and every write after that
        waited forever)."""
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("cannot begin a write transaction: %s", exc)
            self._fail_all(batch, _storage_error(exc))
            return
        try:
            for job in batch:
                self._run_job(conn, job)
            # The bodies must be durable before the rows that point at them: flush the
            # whole batch's files and directory entries at once, then commit.
            flush_paths(set().union(*(job.sync_dirs for job in batch)), self._blob_root)
            conn.execute("COMMIT")
            metrics.STORE_COMMIT_SECONDS.observe(time.perf_counter() - started)
            metrics.STORE_COMMIT_WRITES.observe(len(batch))
        except BaseException as exc:
            # SQLite may have rolled the whole transaction back by itself (SQLITE_FULL,
            # SQLITE_IOERR, ...): nothing of the batch was written.
            log.error("group commit of %d writes failed: %s", len(batch), exc)
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._fail_all(batch, _storage_error(exc))
            return
        self.batches += 1
        self.writes += len(batch)
        self._settle(batch)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _AnyJob) -> None:
        """One write inside its savepoint. Its own failure fails it alone; one that took
        the transaction with it is raised, for the whole batch."""
        conn.execute("SAVEPOINT write")
        try:
            job.run(conn)
        except BaseException as exc:
            if not conn.in_transaction:
                raise
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            if is_full(exc):
                log.error("write failed, storage is full: %s", exc)
                exc = _storage_error(exc)
            elif not isinstance(exc, StoreError):
                log.exception("write failed")
            job.fail(exc)
        else:
            conn.execute("RELEASE write")

    def _fail_all(self, batch: list[_AnyJob], error: BaseException) -> None:
        for job in batch:
            job.fail(error)
        self._settle(batch)

    def _settle(self, batch: list[_AnyJob]) -> None:
        """One wake-up per event loop for the whole batch, not one per write; the jobs
        settle in commit order."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_AnyJob]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            loop.call_soon_threadsafe(self._settle_on_loop, jobs)

    def _settle_on_loop(self, jobs: list[_AnyJob]) -> None:
        for job in jobs:
            job.settle(self._publish)
