"""Metadata entries (IMAP METADATA, RFC 5464) in the SQLite store.

Functions of a connection, run by the store's writer (writes) or readers (reads). Entries
of a mailbox live in ``mailbox_metadata`` beside its row, so RENAME (which keeps the row)
carries them and DELETE (which removes it) takes them along by cascade; a DELETE that keeps
the name as \\Noselect removes them with :func:`remove_mailbox_entries`. The server entries
an account sees live in ``server_metadata``. Names and values are opaque: the IMAP front
end checks and normalises names, and limits sizes, before it calls.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from mailstead.core.errors import NotFound, TooMany
from mailstead.store.models import ChangeEvent, ChangeKind
from mailstead.store.sql.writer import WriteOutcome


def read_entries(
    conn: sqlite3.Connection, user_id: int, mailbox_id: int | None
) -> dict[str, bytes]:
    if mailbox_id is None:
        rows = conn.execute(
            "SELECT name, value FROM server_metadata WHERE user_id = ?", (user_id,)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT name, value FROM mailbox_metadata WHERE mailbox_id = ? AND user_id = ?",
            (mailbox_id, user_id),
        ).fetchall()
    return {name: bytes(value) for name, value in rows}


def count_entries(conn: sqlite3.Connection, user_id: int) -> int:
    """The account's entries, its mailboxes' and its server ones: what its limit counts."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM mailbox_metadata WHERE user_id = ?)"
        " + (SELECT count(*) FROM server_metadata WHERE user_id = ?)",
        (user_id, user_id),
    ).fetchone()
    return int(row[0])


def write_entries(
    conn: sqlite3.Connection,
    user_id: int,
    mailbox_id: int | None,
    changes: Mapping[str, bytes | None],
    max_entries: int,
) -> WriteOutcome[None]:
    """Apply ``changes`` (None removes) in the caller's transaction; TooMany, and nothing
    kept, when the account would then hold more than ``max_entries``."""
    if mailbox_id is not None:
        owner = conn.execute(
            "SELECT 1 FROM mailboxes WHERE id = ? AND user_id = ?", (mailbox_id, user_id)
        ).fetchone()
        if owner is None:
            raise NotFound(f"mailbox #{mailbox_id} does not exist")
    before = count_entries(conn, user_id)
    changed: list[str] = []
    for name, value in changes.items():
        if mailbox_id is None:
            where, key = "server_metadata WHERE user_id = ? AND name = ?", (user_id, name)
        else:
            where, key = "mailbox_metadata WHERE mailbox_id = ? AND name = ?", (mailbox_id, name)
        old = conn.execute(f"SELECT value FROM {where}", key).fetchone()
        if value is None:
            if old is not None:
                conn.execute(f"DELETE FROM {where}", key)
                changed.append(name)
            continue
        if old is not None and bytes(old[0]) == value:
            continue  # the same value again changes nothing, and tells no one
        if mailbox_id is None:
            conn.execute(
                "INSERT INTO server_metadata (user_id, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value",
                (user_id, name, value),
            )
        else:
            conn.execute(
                "INSERT INTO mailbox_metadata (mailbox_id, user_id, name, value)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (mailbox_id, name) DO UPDATE SET value = excluded.value",
                (mailbox_id, user_id, name, value),
            )
        changed.append(name)
    after = count_entries(conn, user_id)
    if after > max_entries and after > before:
        # The writer rolls this job back: none of the changes stays (RFC 5464 §4.3).
        raise TooMany(f"account #{user_id} would hold {after} metadata entries")
    if not changed:
        return WriteOutcome(None)
    kind = ChangeKind.SERVER_METADATA if mailbox_id is None else ChangeKind.MAILBOX_METADATA
    event = ChangeEvent(user_id, mailbox_id or 0, kind, entries=tuple(changed))
    return WriteOutcome(None, [event])


def remove_mailbox_entries(
    conn: sqlite3.Connection, user_id: int, mailbox_id: int
) -> list[ChangeEvent]:
    """A DELETE that keeps the name as \\Noselect still deletes the mailbox as far as its
    entries go (RFC 5464 §3.1); the event names what went."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM mailbox_metadata WHERE mailbox_id = ?", (mailbox_id,)
        ).fetchall()
    ]
    if not names:
        return []
    conn.execute("DELETE FROM mailbox_metadata WHERE mailbox_id = ?", (mailbox_id,))
    return [ChangeEvent(user_id, mailbox_id, ChangeKind.MAILBOX_METADATA, entries=tuple(names))]
