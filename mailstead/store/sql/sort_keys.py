"""The sort keys of each body (``sort_keys`` table; decision 0031) in the SQLite store.

One row per body, beside its ``blobs`` row and removed with it (ON DELETE CASCADE), so
every message that holds the body (delivered to many, COPY, MOVE) shares it and EXPUNGE
has nothing to keep in step. Rows are written in the transaction that places the body
(:func:`place`) and, for bodies stored before the table existed, by :func:`put` when a
SORT or THREAD first derived them. The store does not interpret the values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from mailstead.core.types import UID
from mailstead.store.models import SortKeyField, SortKeys
from mailstead.store.sql.connections import chunks, placeholders

#: The columns each field group reads, in :class:`SortKeys` order.
_COLUMNS: dict[SortKeyField, tuple[str, ...]] = {
    SortKeyField.SENT: ("sent",),
    SortKeyField.FROM: ("from_key",),
    SortKeyField.TO: ("to_key",),
    SortKeyField.CC: ("cc_key",),
    SortKeyField.SUBJECT: ("subject", "reply"),
    SortKeyField.REFERENCES: ("message_id", "refs"),
}
_INSERT = (
    "INSERT OR REPLACE INTO sort_keys (blob_id, version, sent, from_key, to_key, cc_key,"
    " subject, reply, message_id, refs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(blob_id: str, keys: SortKeys) -> tuple[Any, ...]:
    # Message IDs hold no white space (RFC 5322 msg-id), so a space separates them.
    return (
        blob_id,
        keys.version,
        keys.sent,
        keys.from_key,
        keys.to_key,
        keys.cc_key,
        keys.subject,
        int(keys.reply),
        keys.message_id,
        " ".join(keys.references),
    )


def place(conn: sqlite3.Connection, blob_id: str, keys: SortKeys) -> None:
    """In the writer's transaction that places the body: its keys, made when it was
    parsed. Keys already there are replaced (they may be of an older version)."""
    conn.execute(_INSERT, _row(blob_id, keys))


def put(conn: sqlite3.Connection, keys: Mapping[str, SortKeys]) -> None:
    """Keys derived later, for the bodies that still exist (one may have been collected
    since it was read: its keys would have no body to go with)."""
    for blob_id, one in keys.items():
        if conn.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone():
            conn.execute(_INSERT, _row(blob_id, one))


def read(
    conn: sqlite3.Connection,
    mailbox_id: int,
    fields: frozenset[SortKeyField],
    version: int,
    uids: Sequence[UID] | None = None,
) -> dict[UID, SortKeys]:
    """The keys of the mailbox's messages (of ``uids`` when given) whose body has keys of
    ``version``; only the columns of ``fields`` are read, the others are empty. One query
    for a whole mailbox: a SORT of 100,000 messages converts 100,000 rows, so each
    conversion is a tuple built in one call."""
    wanted = [f for f in SortKeyField if f in fields]
    columns = [c for f in wanted for c in _COLUMNS[f]]
    sql = (
        "SELECT m.uid"
        + "".join(", k." + c for c in columns)
        + " FROM messages m JOIN sort_keys k ON k.blob_id = m.blob_id"
        " WHERE m.mailbox_id = ? AND k.version = ?"
    )
    if uids is None:
        rows = conn.execute(sql, (mailbox_id, version)).fetchall()
    else:
        rows = []
        for chunk in chunks(uids):
            rows += conn.execute(
                sql + f" AND m.uid IN ({placeholders(len(chunk))})",
                (mailbox_id, version, *chunk),
            ).fetchall()
    sent = SortKeyField.SENT in fields
    subject = SortKeyField.SUBJECT in fields
    refs = SortKeyField.REFERENCES in fields
    at = 1
    at_sent = at_from = at_to = at_cc = at_subject = at_refs = 0
    if sent:
        at_sent, at = at, at + 1
    if SortKeyField.FROM in fields:
        at_from, at = at, at + 1
    if SortKeyField.TO in fields:
        at_to, at = at, at + 1
    if SortKeyField.CC in fields:
        at_cc, at = at, at + 1
    if subject:
        at_subject, at = at, at + 2
    if refs:
        at_refs, at = at, at + 2
    out: dict[UID, SortKeys] = {}
    new = SortKeys
    for r in rows:
        out[r[0]] = new(
            version,
            r[at_sent] if sent else None,
            r[at_from] if at_from else "",
            r[at_to] if at_to else "",
            r[at_cc] if at_cc else "",
            r[at_subject] if subject else "",
            bool(r[at_subject + 1]) if subject else False,
            r[at_refs] if refs else None,
            tuple(r[at_refs + 1].split()) if refs else (),
        )
    return out
