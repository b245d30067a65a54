"""Content-addressed message bodies on disk: ``blobs/ab/<sha256>``.

Only large bodies are files (small ones live in the database, docs/decisions/0002). They
live in 256 bucket directories made once when the store is created, so storing a body never
creates a directory. A body is written to a temporary file and renamed into place, so a
concurrent reader never sees a partial body under its final name. It is not durable yet:
:meth:`BlobFiles.write` returns the paths that still need flushing (the file and its
bucket), and the group-commit writer makes a whole batch durable at once with
:func:`flush_paths`, just before it commits the rows that reference those bodies.

On Linux one ``syncfs(2)`` flushes a batch: file data and directory entries of every body
in it, in one call instead of an fsync per file and per directory. Elsewhere each path is
fsynced.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mailstead.core.errors import InvalidName, NotFound

_BLOB_ID = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger("mailstead.store")


def _load_syncfs() -> Callable[[int], int] | None:
    """syncfs(2) from the C library, where there is one (Linux)."""
    if not hasattr(os, "O_DIRECTORY"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


_syncfs = _load_syncfs()


def holds_bodies(root: Path) -> bool:
    """Whether the body directory ``root`` holds at least one message body (stops at the
    first: it may hold millions)."""
    if not root.is_dir():
        return False
    return any(
        len(bucket.name) == 2 and bucket.is_dir()
        and any(_BLOB_ID.match(blob.name) for blob in bucket.iterdir())
        for bucket in root.iterdir()
    )


def blob_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a directory."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush_paths(paths: set[Path], root: Path) -> None:
    """Make the written files and changed directory entries in ``paths`` durable.

    One path is cheaper to fsync than a whole file system; from two on, syncfs wins.
    """
    if not paths:
        return
    if _syncfs is not None and len(paths) > 1:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _syncfs(fd) == 0:
                return
            log.warning("syncfs failed (errno %d); falling back to fsync", ctypes.get_errno())
        finally:
            os.close(fd)
    for path in sorted(paths, key=lambda p: (p.is_dir(), len(p.parts))):
        fsync_path(path)


class BlobFiles:
    """The blob directory. Thread-safe: every method works on whole files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def setup(self) -> None:
        """Create the bucket directories once (durably), so no write ever makes one."""
        created = not (self.root / "ff").is_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        for bucket in range(256):
            (self.root / f"{bucket:02x}").mkdir(exist_ok=True)
        if created:
            fsync_path(self.root)
            fsync_path(self.root.parent)

    def path_for(self, blob_id: str) -> Path:
        # The id is always our own hex digest; checking it keeps any other string from
        # ever becoming a path.
        if not _BLOB_ID.match(blob_id):
            raise InvalidName(f"not a blob id: {blob_id!r}")
        return self.root / blob_id[:2] / blob_id

    def write(self, data: bytes) -> tuple[str, set[Path]]:
        """Store ``data``; returns (id, paths to flush with :func:`flush_paths` before the
        body may be referenced). A body that already exists needs no flushing.

        If the body already exists its mtime is refreshed, which protects it from a garbage
        collection running concurrently (collection only removes old, unreferenced files).
        """
        blob_id = blob_id_for(data)
        final = self.path_for(blob_id)
        dirty: set[Path] = set()
        if final.exists():
            os.utime(final)
            return blob_id, dirty
        fd, tmp_name = _mkstemp(self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp_name, final)
        except BaseException:
            _unlink_quietly(Path(tmp_name))
            raise
        dirty.update((final, final.parent))
        return blob_id, dirty

    def write_pieces(self, pieces: Iterable[bytes]) -> tuple[str, set[Path]]:
        """:meth:`write` for a body that arrives in pieces (a spooled message): hashed as
        it is written, so it is never whole in memory."""
        digest = hashlib.sha256()
        fd, tmp_name = _mkstemp(self.tmp)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for piece in pieces:
                    digest.update(piece)
                    out.write(piece)
            blob_id = digest.hexdigest()
            final = self.path_for(blob_id)
            if final.exists():
                os.utime(final)
                _unlink_quietly(tmp)
                return blob_id, set()
            os.replace(tmp, final)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return blob_id, {final, final.parent}

    def exists(self, blob_id: str) -> bool:
        return self.path_for(blob_id).exists()

    def read(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        try:
            with open(self.path_for(blob_id), "rb") as src:
                if start:
                    src.seek(start)
                return src.read() if end is None else src.read(max(0, end - start))
        except FileNotFoundError:
            raise NotFound(f"message body {blob_id} is missing") from None

    def written_at(self, blob_id: str) -> float:
        """When the body was last written or re-used (Unix seconds); -inf if it does not
        exist."""
        try:
            return self.path_for(blob_id).stat().st_mtime
        except FileNotFoundError:
            return float("-inf")

    def age(self, blob_id: str) -> float:
        """Seconds since the body was last written or re-used; inf if it does not exist."""
        return time.time() - self.written_at(blob_id)

    def delete(self, blob_id: str) -> None:
        _unlink_quietly(self.path_for(blob_id))

    def iter_ids(self) -> Iterator[str]:
        """Every body on disk (used to find files no metadata knows, left by a crash)."""
        for bucket in self.root.iterdir():
            if len(bucket.name) != 2 or not bucket.is_dir():
                continue
            for blob in bucket.iterdir():
                if _BLOB_ID.match(blob.name):
                    yield blob.name

    def clean_tmp(self, older_than: float) -> int:
        """Remove temporary files abandoned by a crash mid-write."""
        removed = 0
        now = time.time()
        for leftover in self.tmp.iterdir():
            try:
                if now - leftover.stat().st_mtime >= older_than:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _mkstemp(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=directory, prefix="blob-")


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
