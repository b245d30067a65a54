"""Outbound queue persistence for the SQLite store (tables from migration 2).

Functions of a connection, called inside the store's writer (writes) or readers (reads),
so queue rows commit in the same group commit, and the same transaction, as local
deliveries of the same message.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailstead.store.models import OutboundEnvelope, QueuedMessage, QueuedRecipient

#: SQL condition true when blob ``b`` is referenced by a queued message; garbage collection
#: keeps such bodies.
QUEUE_REFERENCE = "EXISTS (SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id)"


def insert_queued(
    conn: sqlite3.Connection, blob_id: str, size: int, envelope: OutboundEnvelope, now: str
) -> int:
    """Insert one queued message and its recipients; returns the queue id."""
    cur = conn.execute(
        "INSERT INTO queue_messages (blob_id, size, mail_from, envid, ret, body, smtputf8,"
        " auth_user, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (blob_id, size, envelope.mail_from, envelope.envid, envelope.ret, envelope.body,
         int(envelope.smtputf8), envelope.auth_user, now),
    )
    queue_id = cur.lastrowid
    assert queue_id is not None
    conn.executemany(
        "INSERT INTO queue_recipients (message_id, address, notify, orcpt, status,"
        " next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
        [(queue_id, r.address, ",".join(r.notify), r.orcpt, r.status, now)
         for r in envelope.recipients],
    )
    return queue_id


def is_blob_queued(conn: sqlite3.Connection, blob_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM queue_messages WHERE blob_id = ? LIMIT 1", (blob_id,))
    return row.fetchone() is not None


def load_queue(conn: sqlite3.Connection) -> list[QueuedMessage]:
    recipients: dict[int, list[QueuedRecipient]] = {}
    for row in conn.execute(
        "SELECT message_id, address, notify, orcpt, status, attempts, next_attempt,"
        " last_error, id FROM queue_recipients ORDER BY message_id, id"
    ).fetchall():
        recipients.setdefault(row[0], []).append(QueuedRecipient(
            address=row[1],
            notify=tuple(row[2].split(",")) if row[2] else (),
            orcpt=row[3],
            status=row[4],
            attempts=row[5],
            next_attempt=datetime.fromisoformat(row[6]),
            last_error=row[7],
            id=row[8],
        ))
    out: list[QueuedMessage] = []
    for row in conn.execute(
        "SELECT id, blob_id, size, mail_from, envid, ret, body, smtputf8, auth_user, created"
        " FROM queue_messages ORDER BY id"
    ).fetchall():
        envelope = OutboundEnvelope(
            mail_from=row[3],
            recipients=tuple(recipients.get(row[0], ())),
            envid=row[4],
            ret=row[5],
            body=row[6],
            smtputf8=bool(row[7]),
            auth_user=row[8],
        )
        out.append(QueuedMessage(row[0], row[1], row[2], envelope, datetime.fromisoformat(row[9])))
    return out


def delete_queued(conn: sqlite3.Connection, queue_id: int) -> bool:
    return conn.execute("DELETE FROM queue_messages WHERE id = ?", (queue_id,)).rowcount > 0
