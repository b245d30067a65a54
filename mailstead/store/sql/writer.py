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
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailstead.core.errors import StorageUnavailable, StoreError
from mailstead.store.blobs import flush_paths
from mailstead.store.models import ChangeEvent

log = logging.getLogger("mailstead.store")

MAX_BATCH = 512


@dataclass
class WriteOutcome:
    """What a write hands back: its result, events to publish, and follow-up file work."""

    result: Any = None
    events: list[ChangeEvent] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    #: Body files (and directories) this write created, to flush before the COMMIT.
    flush: set[Path] = field(default_factory=set)


WriteFn = Callable[[sqlite3.Connection], WriteOutcome]


@dataclass
class _Job:
    fn: WriteFn
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    sync_dirs: set[Path]


_STOP = object()


class GroupCommitWriter:
    """Owns the only writing connection to the database."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        publish: Callable[[list[ChangeEvent]], None],
        blob_root: Path,
    ) -> None:
        self._connect = connect
        self._blob_root = blob_root
        self._publish = publish
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
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
            self._queue.put(_STOP)
            self._thread.join()

    async def submit(self, fn: WriteFn, sync_dirs: set[Path] | None = None) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
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
                if first is _STOP:
                    return
                batch: list[_Job] = [first]  # type: ignore[list-item]
                stop_after = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop_after = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                self._commit_batch(conn, batch)
                if stop_after:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[WriteOutcome | BaseException] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("cannot begin a write transaction: %s", exc)
            self._fail_all(batch, StorageUnavailable("database unavailable"))
            return
        for job in batch:
            conn.execute("SAVEPOINT write")
            try:
                outcome = job.fn(conn)
            except BaseException as exc:
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
                if not isinstance(exc, StoreError):
                    log.exception("write failed")
                outcomes.append(exc)
            else:
                conn.execute("RELEASE write")
                outcomes.append(outcome)
        try:
            # The bodies must be durable before the rows that point at them: flush the
            # whole batch's files and directory entries at once, then commit.
            dirty: set[Path] = set().union(*(job.sync_dirs for job in batch))
            for result in outcomes:
                if isinstance(result, WriteOutcome):
                    dirty |= result.flush
            flush_paths(dirty, self._blob_root)
            conn.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            log.error("group commit of %d writes failed: %s", len(batch), exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._fail_all(batch, StorageUnavailable("storage unavailable"))
            return
        self.batches += 1
        self.writes += len(batch)
        for result in outcomes:
            if isinstance(result, WriteOutcome):
                for action in result.after_commit:
                    try:
                        action()
                    except OSError as exc:
                        log.warning("post-commit file cleanup failed: %s", exc)
        # One wake-up per event loop for the whole batch, not one per write.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, WriteOutcome | BaseException]]]
        by_loop = {}
        for job, result in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job, result))
        for loop, done in by_loop.items():
            loop.call_soon_threadsafe(self._resolve, done)

    def _resolve(self, done: list[tuple[_Job, WriteOutcome | BaseException]]) -> None:
        """On the loop thread, in commit order: publish events, then wake the writers."""
        for job, outcome in done:
            if isinstance(outcome, BaseException):
                if not job.future.done():
                    job.future.set_exception(outcome)
                continue
            if outcome.events:
                self._publish(outcome.events)
            if not job.future.done():
                job.future.set_result(outcome.result)

    def _fail_all(self, batch: list[_Job], error: BaseException) -> None:
        for job in batch:
            job.loop.call_soon_threadsafe(_set_exception, job.future, error)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
