"""Blobs an account uploaded for a later call (JMAP upload, RFC 8620 §6.1).

Kept in the database beside the account (a few megabytes each, bounded by the upload
limit), not among the message bodies: an upload is the account's private draft material
until a call turns it into a message, and it expires by age (:func:`expire`), where bodies
go when no message holds them.
"""

from __future__ import annotations

import hashlib
import sqlite3

from mailstead.store.sql.rows import now_text


def put(conn: sqlite3.Connection, user_id: int, data: bytes, media_type: str) -> str:
    """Keep ``data`` for the account; its id is its SHA-256 (the same octets again keep
    the row and renew it)."""
    blob_id = hashlib.sha256(data).hexdigest()
    conn.execute(
        "INSERT INTO uploads (user_id, blob_id, type, size, created, data)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, blob_id)"
        " DO UPDATE SET created = excluded.created, type = excluded.type",
        (user_id, blob_id, media_type, len(data), now_text(), data),
    )
    return blob_id


def get(conn: sqlite3.Connection, user_id: int, blob_id: str) -> tuple[bytes, str] | None:
    row = conn.execute(
        "SELECT data, type FROM uploads WHERE user_id = ? AND blob_id = ?", (user_id, blob_id)
    ).fetchone()
    return (bytes(row[0]), str(row[1])) if row is not None else None


def expire(conn: sqlite3.Connection, before: str) -> int:
    """Remove uploads made before ``before`` (an internal date text); how many went."""
    return conn.execute("DELETE FROM uploads WHERE created < ?", (before,)).rowcount
