"""Message bodies and their parsed structures in the SQLite store.

A body is stored once, under the SHA-256 of its bytes, however many messages and queued
messages point to it. Bodies up to ``DATABASE_BODY_LIMIT`` live in their ``blobs`` row
(docs/decisions/0002) and become durable with the same WAL fsync as the rows that reference
them; larger ones are files (:mod:`mailstead.store.blobs`) flushed before that COMMIT. The
structure the MIME parser made of the body is kept in the same row, so FETCH and POP3 TOP
never parse a stored message again.

A body is *staged* before its write (hashed, parsed, a large one written to its file) so the
writer thread, whose SQL is the serial part of every delivery, only has to *place* it: make
its row exist in the same transaction as the rows that point to it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from mailstead.core.errors import NotFound, StorageFull, StorageUnavailable, StoreError
from mailstead.core.message_data import MessageData
from mailstead.store.blobs import BlobFiles, blob_id_for
from mailstead.store.interfaces import SortKeysMaker, StructureParser, TextIndexer
from mailstead.store.models import IndexedText, SortKeys
from mailstead.store.sql import sort_keys, textindex
from mailstead.store.sql.connections import Connections, chunks, placeholders
from mailstead.store.sql.writer import WriteOutcome, is_full

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: Bodies up to this size are kept in the database (docs/decisions/0002); larger ones in
#: files under blobs/.
DATABASE_BODY_LIMIT = 256 * 1024
#: Bodies up to this size are parsed on the event loop (about 0.1 ms for 4 KiB), larger ones
#: on the I/O pool: either way not in the writer thread, whose SQL is the serial part of
#: every delivery.
INLINE_PARSE_LIMIT = 32 * 1024
#: Staging again after a collection removed the body file in between (see BodyVanished)
#: succeeds at once unless collections keep racing; give up after this many attempts.
_ATTEMPTS = 3

#: A write given the blob ids of its bodies, in the order the bodies were passed.
BodiesWrite = Callable[[sqlite3.Connection, list[str]], WriteOutcome[T]]


@dataclass(frozen=True, slots=True)
class Staged:
    """A body on its way into a write."""

    blob_id: str
    dirty: set[Path]  # files to flush before the COMMIT (large bodies)
    structure: bytes | None  # the parsed MIME structure
    small: bytes | None  # the body itself when it goes into the database
    text: IndexedText | None = None  # what the full-text index keeps of it
    keys: SortKeys | None = None  # what SORT and THREAD compare, made from the structure


class BodyVanished(Exception):
    """The body file was collected between staging and the write: stage it again."""


async def stage(
    db: Connections, blobs: BlobFiles, parse: StructureParser | None,
    message: bytes | MessageData,
    indexer: TextIndexer | None = None,
    keys: SortKeysMaker | None = None,
) -> Staged:
    """Get a body ready for a write: a small one is hashed and parsed here (the writer
    stores it in the database); a large one is written to a file and parsed on the I/O
    pool. Nothing but SQL is left for the writer thread.

    A spooled message (:mod:`mailstead.core.spool`) is copied into its body file in
    pieces, hashed on the way; only the parse reads it whole, a few at a time
    (``Connections.whole_reads``).
    """
    if isinstance(message, MessageData):
        if not message.in_memory and len(message) > DATABASE_BODY_LIMIT:
            return await _stage_spooled(db, blobs, parse, message, indexer, keys)
        data = message.read() if message.in_memory else await db.in_io(message.read)
    else:
        data = message
    if len(data) <= DATABASE_BODY_LIMIT:
        if parse is None:
            return Staged(blob_id_for(data), set(), None, data)
        if len(data) <= INLINE_PARSE_LIMIT:
            structure, text, made = _parse(parse, indexer, keys, data)
        else:
            structure, text, made = await db.in_io(partial(_parse, parse, indexer, keys, data))
        return Staged(blob_id_for(data), set(), structure, data, text, made)

    def to_file() -> Staged:
        try:
            blob_id, dirty = blobs.write(data)
        except OSError as exc:
            if is_full(exc):
                raise StorageFull("storage is full") from exc
            raise StorageUnavailable(f"cannot write a message body: {exc}") from exc
        if parse is None:
            return Staged(blob_id, dirty, None, None)
        structure, text, made = _parse(parse, indexer, keys, data)
        return Staged(blob_id, dirty, structure, None, text, made)

    return await db.in_io(to_file)


def _parse(
    parse: StructureParser, indexer: TextIndexer | None, keys: SortKeysMaker | None,
    data: bytes,
) -> tuple[bytes, IndexedText | None, SortKeys | None]:
    """The structure, and what is made from it while the body is at hand, in one step so
    that all of it runs wherever the parse runs (the loop for a small body, the I/O pool
    for a large one): the full-text index row and the sort keys. A body the indexer fails
    on is still stored; it gets no index row, so searches scan it."""
    structure = parse(data)
    made = keys(structure) if keys is not None else None
    if indexer is None:
        return structure, None, made
    try:
        return structure, indexer(data, structure), made
    except Exception:  # the message matters more than its index row
        _log.warning("could not index a message body for SEARCH", exc_info=True)
        return structure, None, made


async def _stage_spooled(
    db: Connections,
    blobs: BlobFiles,
    parse: StructureParser | None,
    message: MessageData,
    indexer: TextIndexer | None,
    keys: SortKeysMaker | None,
) -> Staged:
    def to_file() -> tuple[str, set[Path]]:
        try:
            return blobs.write_pieces(message.pieces())
        except OSError as exc:
            if is_full(exc):
                raise StorageFull("storage is full") from exc
            raise StorageUnavailable(f"cannot write a message body: {exc}") from exc

    blob_id, dirty = await db.in_io(to_file)
    if parse is None:
        return Staged(blob_id, dirty, None, None)
    async with db.whole_reads:
        structure, text, made = await db.in_io(
            lambda: _parse(parse, indexer, keys, blobs.read(blob_id))
        )
    return Staged(blob_id, dirty, structure, None, text, made)


def place(conn: sqlite3.Connection, blobs: BlobFiles, staged: Staged, size: int) -> None:
    """In the writer's transaction: make the staged body's row exist.

    A small body goes into its ``blobs`` row; one already stored (the same message
    delivered again) is left as it is. A large body's row is added beside its file, unless
    garbage collection removed the file since it was staged: the writer thread serialises
    this with every collection, so checking here is enough (BodyVanished).

    The body's sort keys, when the staging made them, go in with it (decision 0031).
    """
    _place_body(conn, blobs, staged, size)
    if staged.keys is not None:
        sort_keys.place(conn, staged.blob_id, staged.keys)


def _place_body(conn: sqlite3.Connection, blobs: BlobFiles, staged: Staged, size: int) -> None:
    if staged.small is not None:
        conn.execute(
            "INSERT OR IGNORE INTO blobs (id, size, structure, data) VALUES (?, ?, ?, ?)",
            (staged.blob_id, size, staged.structure, staged.small),
        )
        return
    in_database = conn.execute(
        "SELECT 1 FROM blobs WHERE id = ? AND data IS NOT NULL", (staged.blob_id,)
    ).fetchone()
    if in_database:
        return
    if not blobs.exists(staged.blob_id):
        raise BodyVanished(staged.blob_id)
    conn.execute(
        "INSERT OR IGNORE INTO blobs (id, size, structure) VALUES (?, ?, ?)",
        (staged.blob_id, size, staged.structure),
    )


async def write_with_bodies(
    db: Connections,
    blobs: BlobFiles,
    parse: StructureParser | None,
    bodies: Sequence[bytes | MessageData],
    write: BodiesWrite[T],
    indexer: TextIndexer | None = None,
    keys: SortKeysMaker | None = None,
) -> T:
    """Run ``write`` with ``bodies`` stored durably first: in the same transaction for a
    small body, flushed before the COMMIT for a file. With an ``indexer``, the bodies a
    message references after ``write`` get their full-text index row in that transaction
    too, so a message and its row commit together."""
    for _attempt in range(_ATTEMPTS):
        if len(bodies) == 1:
            staged = [await stage(db, blobs, parse, bodies[0], indexer, keys)]
        else:
            staged = list(await asyncio.gather(
                *(stage(db, blobs, parse, b, indexer, keys) for b in bodies)))

        def placed(conn: sqlite3.Connection, staged: list[Staged] = staged) -> WriteOutcome[T]:
            for body, one in zip(bodies, staged, strict=True):
                place(conn, blobs, one, len(body))
            outcome = write(conn, [one.blob_id for one in staged])
            for one in staged:
                if one.text is not None:
                    textindex.add(conn, one.blob_id, one.text)
            return outcome

        try:
            return await db.write(placed, sync_dirs=set().union(*(s.dirty for s in staged)))
        except BodyVanished:
            continue
    raise StoreError("message body could not be stored")


# -- reading ----------------------------------------------------------------------------------


def structures(conn: sqlite3.Connection, blob_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored structures of these bodies; ids without one are absent."""
    found: dict[str, bytes] = {}
    wanted = list(dict.fromkeys(blob_ids))
    for chunk in chunks(wanted):
        for blob_id, structure in conn.execute(
            f"SELECT id, structure FROM blobs WHERE id IN ({placeholders(len(chunk))})"
            " AND structure IS NOT NULL",
            tuple(chunk),
        ):
            found[blob_id] = bytes(structure)
    return found


def structure(conn: sqlite3.Connection, blob_id: str) -> bytes:
    found = structures(conn, [blob_id]).get(blob_id)
    if found is None:
        raise NotFound(f"no structure stored for {blob_id}")
    return found


def _stored(conn: sqlite3.Connection, blob_ids: Sequence[str]) -> dict[str, bytes | None]:
    """The bodies kept in the database; a known body kept as a file maps to None."""
    found: dict[str, bytes | None] = {}
    for chunk in chunks(sorted(set(blob_ids))):
        for blob_id, data in conn.execute(
            f"SELECT id, data FROM blobs WHERE id IN ({placeholders(len(chunk))})",
            tuple(chunk),
        ):
            found[blob_id] = data
    return found


async def read_blob(
    db: Connections, blobs: BlobFiles, blob_id: str, start: int, end: int | None
) -> bytes:
    """The body's bytes ``[start, end)``; NotFound when there is no such body."""
    # One row by key, at most DATABASE_BODY_LIMIT long: read on the loop (no thread hop).
    stored = (await db.read_small(lambda conn: _stored(conn, [blob_id]))).get(blob_id)
    if stored is not None:
        return stored[start:end]
    return await db.in_io(partial(blobs.read, blob_id, start, end))


async def read_blobs(
    db: Connections, blobs: BlobFiles, requests: Sequence[tuple[str, int, int | None]]
) -> list[bytes | None]:
    """Many ``(blob_id, start, end)`` reads with one database round trip; None for a body
    that no longer exists."""
    found = await db.read(lambda conn: _stored(conn, [blob_id for blob_id, _, _ in requests]))
    out: list[bytes | None] = []
    for blob_id, start, end in requests:
        if blob_id not in found:
            out.append(None)
            continue
        data = found[blob_id]
        if data is not None:
            out.append(bytes(data[start:end]))
            continue
        try:  # large bodies are files: one read each on the I/O pool
            out.append(await db.in_io(partial(blobs.read, blob_id, start, end)))
        except NotFound:
            out.append(None)
    return out
