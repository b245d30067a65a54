"""Keeping the SQLite store tidy and checking it: garbage collection of bodies, integrity.

A body is collectable once no message and no queued message points to it. Candidates are
found on the read side; the decision and the unlink happen in the writer thread, serialised
with every append, so a body an append is about to reference is either kept or written
again by that append (``bodies.place`` notices the missing file).
"""

from __future__ import annotations

import sqlite3

from mailstead.store.blobs import BlobFiles
from mailstead.store.sql import messages, queue, textindex
from mailstead.store.sql.connections import Connections
from mailstead.store.sql.writer import WriteOutcome


def _unreferenced(conn: sqlite3.Connection) -> tuple[list[str], set[str], float]:
    """(bodies in the database that nothing references, every body the database knows,
    since when it knows every body file written beside it)."""
    unreferenced = [r[0] for r in conn.execute(
        "SELECT id FROM blobs b"
        f" WHERE NOT {messages.MESSAGE_REFERENCE} AND NOT {queue.QUEUE_REFERENCE}"
    ).fetchall()]
    known = {r[0] for r in conn.execute("SELECT id FROM blobs").fetchall()}
    row = conn.execute("SELECT value FROM meta WHERE key = 'bodies_known_since'").fetchone()
    return unreferenced, known, float(row[0]) if row is not None else float("inf")


def _remove(
    conn: sqlite3.Connection, blobs: BlobFiles, candidates: list[str], grace_seconds: float
) -> WriteOutcome[int]:
    """In the writer: remove the candidates still unreferenced, a file only once it is older
    than the grace period (a body in the database has no file an append could race with)."""
    doomed = 0
    for blob_id in candidates:
        used = messages.is_blob_referenced(conn, blob_id) or queue.is_blob_queued(conn, blob_id)
        if used or blobs.age(blob_id) < grace_seconds:
            continue
        conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
        textindex.remove(conn, blob_id)  # normally gone with its last message already
        # Unlinked now, in the writer thread, so an append later in this batch that
        # carries the same content writes the file again. If the COMMIT fails, the row
        # stays without a file; nothing references it, and the next append of that
        # content rewrites the file.
        blobs.delete(blob_id)
        doomed += 1
    return WriteOutcome(doomed)


async def collect_garbage(db: Connections, blobs: BlobFiles, grace_seconds: float) -> int:
    """Remove unreferenced bodies: database rows at once, files once older than the grace
    period, and files no row knows (left by a crash before their COMMIT). Returns how many.

    A file no row knows is a crash leftover only if it was written while this database
    was in charge: one older than ``bodies_known_since`` belongs to another database (a
    restored or replaced one) and is never removed.
    """
    unreferenced, known, since = await db.read(_unreferenced)
    orphans = await db.in_io(lambda: [b for b in blobs.iter_ids()
                                      if b not in known and blobs.written_at(b) >= since])
    candidates = unreferenced + orphans
    await db.in_io(lambda: blobs.clean_tmp(grace_seconds))
    if not candidates:
        return 0
    return await db.write(lambda conn: _remove(conn, blobs, candidates, grace_seconds))


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """SQLite's own checks, and that every account's ``used_bytes`` is the sum of its
    messages' sizes. Empty when healthy."""
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    problems = [p for p in problems if p != "ok"]
    problems += [f"foreign key: {r}" for r in conn.execute("PRAGMA foreign_key_check")]
    for user_id, used, actual in conn.execute(
        "SELECT u.id, u.used_bytes, (SELECT coalesce(sum(m.size), 0) FROM messages m"
        " JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = u.id) FROM users u"
    ).fetchall():
        if used != actual:
            problems.append(f"user #{user_id}: used_bytes {used} != actual {actual}")
    return problems


def _file_bodies(conn: sqlite3.Connection) -> list[str]:
    """Bodies kept as files (not in the database), referenced by a message or the queue."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM blobs b WHERE data IS NULL"
        f" AND ({messages.MESSAGE_REFERENCE} OR {queue.QUEUE_REFERENCE})"
    ).fetchall()]


async def check(db: Connections, blobs: BlobFiles) -> list[str]:
    """The full check behind ``mailstead check``: :func:`integrity_problems`, and every
    body file that a message or a queued message needs is there."""
    problems = await db.read(integrity_problems)
    needed = await db.read(_file_bodies)
    missing = await db.in_io(lambda: [b for b in needed if not blobs.exists(b)])
    problems += [f"message body {blob_id} is missing from {blobs.root}" for blob_id in missing]
    return problems
