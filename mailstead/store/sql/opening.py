"""What the store checks before it trusts its files, and tells the operator in one line.

Two ways mail was lost or found late: a 0-byte ``mailstead.db`` (a failed copy, a full
disk) was taken for a fresh install beside a ``blobs/`` full of mail, and the next garbage
collection deleted every body; a damaged database was only noticed when a query hit the
damaged page. So, before the schema is touched:

- a database without a schema beside body files is refused, naming the way out (restore
  the database, or move the bodies away to start afresh);
- ``PRAGMA quick_check`` runs (a full check is ``mailstead check``); a file that is not a
  database, or fails the check, is refused with SQLite's own words.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailstead.core.errors import StoreError
from mailstead.store.blobs import holds_bodies

#: How many of quick_check's problem lines the refusal quotes.
_SHOWN_PROBLEMS = 3


class DatabaseRefused(StoreError):
    """The database can't be used as it is; nothing was changed."""


def _lost(db_path: Path, blob_root: Path) -> DatabaseRefused:
    return DatabaseRefused(
        f"{db_path} has no mailstore in it (missing, empty or new) but {blob_root} holds "
        "message bodies: the database was lost or damaged. Restore it from a backup, "
        f"or move {blob_root} away to start afresh; nothing was changed"
    )


def check_before_opening(db_path: Path, blob_root: Path) -> None:
    """Before SQLite touches ``db_path`` (opening it in WAL mode writes a header): a
    missing or 0-byte database beside body files is refused, and stays as it is."""
    missing = not db_path.exists() or db_path.stat().st_size == 0
    if missing and holds_bodies(blob_root):
        raise _lost(db_path, blob_root)


def check_before_use(conn: sqlite3.Connection, db_path: Path, blob_root: Path) -> None:
    """Raise :class:`DatabaseRefused` if ``conn`` (just opened on ``db_path``) must not be
    migrated or served."""
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and holds_bodies(blob_root):
            raise _lost(db_path, blob_root)
        problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:  # "file is not a database", I/O errors
        raise DatabaseRefused(
            f"{db_path} can't be read as a database ({exc}); restore it from a backup"
        ) from None
    if problems != ["ok"]:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = len(problems) - _SHOWN_PROBLEMS
        raise DatabaseRefused(
            f"{db_path} is damaged (quick_check: {shown}{f'; {more} more' if more > 0 else ''})."
            " Stop here: restore it from a backup, or see \"Damaged database\" in the user guide"
        )
