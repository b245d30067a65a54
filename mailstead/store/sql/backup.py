"""A consistent copy of a running SQLite store, and putting one back.

The database is copied with SQLite's online backup API in one step, a snapshot of one
moment; the body files after it. Bodies are immutable and named by their hash, and a body
file is removed only an hour (``store.gc_grace_seconds``) after nothing references it, so
the snapshot finds its bodies in the files copied right after. A body that a concurrent
expunge and collection removed in between is named in the report (its message was
deleted anyway, after the snapshot).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from mailstead.store.blobs import BlobFiles, holds_bodies
from mailstead.store.models import BackupReport
from mailstead.store.sql import messages, queue

DATABASE = "mailstead.db"
BODIES = "blobs"


def backup(db_path: Path, blobs: BlobFiles, target: Path) -> BackupReport:
    """Copy the store into ``target`` (made if missing; it must hold no store yet)."""
    target.mkdir(parents=True, exist_ok=True)
    copy = target / DATABASE
    if copy.exists():
        raise FileExistsError(f"{copy} exists: back up into a new directory")
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        destination = sqlite3.connect(copy)
        try:
            source.backup(destination)  # every page in one step: one consistent moment
        finally:
            destination.close()
    finally:
        source.close()
    copied = 0
    for bucket in sorted(blobs.root.iterdir()):
        if len(bucket.name) != 2 or not bucket.is_dir():
            continue  # tmp/ holds bodies being written, never referenced yet
        into = target / BODIES / bucket.name
        into.mkdir(parents=True, exist_ok=True)
        for body in bucket.iterdir():
            try:
                shutil.copyfile(body, into / body.name)
            except FileNotFoundError:
                continue  # collected meanwhile: unreferenced, or see ``missing``
            copied += 1
    missing = _missing_bodies(copy, target / BODIES)
    os.sync()  # the copy is on disk before the command says it is done
    return BackupReport(copy.stat().st_size, copied, tuple(missing))


def _missing_bodies(database: Path, bodies: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        needed = [row[0] for row in conn.execute(
            "SELECT id FROM blobs b WHERE data IS NULL"
            f" AND ({messages.MESSAGE_REFERENCE} OR {queue.QUEUE_REFERENCE})")]
    finally:
        conn.close()
    return [body for body in needed if not (bodies / body[:2] / body).is_file()]


def restore(source: Path, data_dir: Path) -> int:
    """Put the store of a backup into ``data_dir``, which must hold none. Returns the body
    files copied."""
    database = source / DATABASE
    if not database.is_file():
        raise FileNotFoundError(f"{source} holds no mailstead backup ({DATABASE} is missing)")
    target = data_dir / DATABASE
    if target.exists() or holds_bodies(data_dir / BODIES):
        raise FileExistsError(f"{data_dir} already holds a mailstore: restore into an "
                              "empty data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    if (source / BODIES).is_dir():
        for bucket in sorted((source / BODIES).iterdir()):
            into = data_dir / BODIES / bucket.name
            into.mkdir(parents=True, exist_ok=True)
            for body in bucket.iterdir():
                shutil.copyfile(body, into / body.name)
                copied += 1
    # The database last: a store with its database and without its bodies would be
    # refused at start, never taken for complete.
    shutil.copyfile(database, target)
    os.sync()
    return copied
