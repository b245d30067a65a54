"""Outbound queue persistence for the SQLite store (tables from migration 2).

Functions of a connection, called inside the store's writer (writes) or readers (reads),
so queue rows commit in the same group commit, and the same transaction, as local
deliveries of the same message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from mailstead.core.errors import NotFound
from mailstead.store.models import (
    DeliveryResult,
    OutboundEnvelope,
    QueuedMessage,
    QueuedRecipient,
    QueueStatus,
)
from mailstead.store.sql import messages, submissions
from mailstead.store.sql.connections import chunks, inserted_id, placeholders
from mailstead.store.sql.writer import WriteOutcome

#: SQL condition true when blob ``b`` is referenced by a queued message; garbage collection
#: keeps such bodies.
QUEUE_REFERENCE = "EXISTS (SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id)"


def insert_queued(
    conn: sqlite3.Connection, blob_id: str, size: int, envelope: OutboundEnvelope, now: str
) -> int:
    """Insert one queued message and its recipients; returns the queue id."""
    cur = conn.execute(
        "INSERT INTO queue_messages (blob_id, size, mail_from, envid, ret, body, smtputf8,"
        " auth_user, created, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (blob_id, size, envelope.mail_from, envelope.envid, envelope.ret, envelope.body,
         int(envelope.smtputf8), envelope.auth_user, now, envelope.trace_id or None),
    )
    queue_id = inserted_id(cur)
    conn.executemany(
        "INSERT INTO queue_recipients (message_id, address, notify, orcpt, status,"
        " next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
        [(queue_id, r.address, ",".join(r.notify), r.orcpt, r.status, now)
         for r in envelope.recipients],
    )
    return queue_id


def enqueue(
    conn: sqlite3.Connection,
    blob_ids: list[str],
    envelope: OutboundEnvelope | None,
    size: int,
    local: Sequence[messages.Destination],
    local_size: int,
    internaldate: str,
    now: str,
) -> WriteOutcome[tuple[DeliveryResult | None, int | None]]:
    """Queue the first body for ``envelope`` and deliver the last to ``local``, in this one
    transaction; either side may be absent (``blob_ids`` holds only the bodies used)."""
    queue_id: int | None = None
    delivered: DeliveryResult | None = None
    events = []
    if envelope is not None:
        queue_id = insert_queued(conn, blob_ids[0], size, envelope, now)
    if local:
        outcome = messages.deliver(conn, blob_ids[-1], local_size, local, internaldate)
        delivered, events = outcome.result, outcome.events
    return WriteOutcome((delivered, queue_id), events)


def summary(conn: sqlite3.Connection) -> tuple[int, datetime | None]:
    row = conn.execute(
        "SELECT COUNT(*), MIN(m.created) FROM queue_recipients r"
        " JOIN queue_messages m ON m.id = r.message_id"
        " WHERE r.status NOT IN ('delivered', 'failed')"
    ).fetchone()
    oldest = datetime.fromisoformat(row[1]) if row[1] is not None else None
    return int(row[0]), oldest


def is_blob_queued(conn: sqlite3.Connection, blob_id: str) -> bool:
    """Whether a queued message still points to the body (garbage collection asks)."""
    row = conn.execute("SELECT 1 FROM queue_messages WHERE blob_id = ? LIMIT 1", (blob_id,))
    return row.fetchone() is not None


def delete_queued(conn: sqlite3.Connection, queue_id: int) -> None:
    # A JMAP submission of this message keeps its recipients' final states (RFC 8621 §7
    # deliveryStatus) once the queue no longer holds them.
    submissions.record_final(conn, queue_id)
    if conn.execute("DELETE FROM queue_messages WHERE id = ?", (queue_id,)).rowcount == 0:
        raise NotFound(f"queued message #{queue_id} does not exist")


# -- outbound delivery state (the scheduler) --------------------------------------
# Claiming due recipients, recording attempts, hold/release/retry and crash recovery.
# Timestamps are UTC ISO-8601 with microseconds, so text comparison orders them.

_RECIPIENT_COLUMNS = (
    "message_id, address, notify, orcpt, status, attempts, next_attempt, last_error, id,"
    " last_attempt, remote, tls, delay_notified, settled, status_code"
)
_MESSAGE_COLUMNS = (
    "id, blob_id, size, mail_from, envid, ret, body, smtputf8, auth_user, created, held,"
    " trace_id"
)


def timestamp(when: datetime) -> str:
    """The stored form of a time: UTC, microseconds always present."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _recipient(row: sqlite3.Row) -> QueuedRecipient:
    notify = str(row[2] or "")
    return QueuedRecipient(
        address=str(row[1]),
        notify=tuple(notify.split(",")) if notify else (),
        orcpt=row[3],
        status=QueueStatus(row[4]),
        attempts=int(row[5]),
        next_attempt=datetime.fromisoformat(str(row[6])),
        last_error=row[7],
        id=int(row[8]),
        last_attempt=datetime.fromisoformat(str(row[9])) if row[9] else None,
        remote=row[10],
        tls=row[11],
        delay_notified=bool(row[12]),
        settled=bool(row[13]),
        status_code=row[14],
    )


def load_messages(
    conn: sqlite3.Connection,
    message_ids: Sequence[int] | None = None,
    recipient_ids: Sequence[int] | None = None,
) -> list[QueuedMessage]:
    """Queued messages with every delivery column; all of them, the given ones, or (with
    ``recipient_ids``) the messages of those recipients holding only those recipients."""
    recipients: dict[int, list[QueuedRecipient]] = {}
    if recipient_ids is not None:
        rows: list[sqlite3.Row] = []
        for chunk in chunks(recipient_ids):
            rows += conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM queue_recipients WHERE id IN"
                f" ({placeholders(len(chunk))}) ORDER BY message_id, id", chunk
            ).fetchall()
        message_ids = sorted({int(row[0]) for row in rows})
    elif message_ids is not None:
        rows = []
        for chunk in chunks(message_ids):
            rows += conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM queue_recipients WHERE message_id IN"
                f" ({placeholders(len(chunk))}) ORDER BY message_id, id", chunk
            ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY message_id, id"
        ).fetchall()
    for row in rows:
        recipients.setdefault(int(row[0]), []).append(_recipient(row))
    if message_ids is None:
        message_rows = conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM queue_messages ORDER BY id").fetchall()
    else:
        message_rows = []
        for chunk in chunks(message_ids):
            message_rows += conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM queue_messages WHERE id IN"
                f" ({placeholders(len(chunk))}) ORDER BY id", chunk
            ).fetchall()
    out = []
    for row in message_rows:
        envelope = OutboundEnvelope(
            mail_from=row[3], recipients=tuple(recipients.get(row[0], ())), envid=row[4],
            ret=row[5], body=row[6], smtputf8=bool(row[7]), auth_user=row[8],
            trace_id=row[11] or "",
        )
        out.append(QueuedMessage(row[0], row[1], row[2], envelope,
                                 datetime.fromisoformat(row[9]), held=bool(row[10])))
    return out


def claim_due(conn: sqlite3.Connection, now: datetime, limit: int) -> list[QueuedMessage]:
    """Mark up to ``limit`` due recipients of messages not on hold ``inflight`` and return
    their messages, each holding only its claimed recipients."""
    ids = [row[0] for row in conn.execute(
        "SELECT r.id FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id"
        " WHERE r.status IN ('queued', 'deferred') AND r.next_attempt <= ? AND m.held = 0"
        " ORDER BY r.next_attempt, r.id LIMIT ?", (timestamp(now), limit)
    ).fetchall()]
    if not ids:
        return []
    for chunk in chunks(ids):
        conn.execute(
            f"UPDATE queue_recipients SET status = 'inflight' WHERE id IN"
            f" ({placeholders(len(chunk))})", chunk)
    return load_messages(conn, recipient_ids=ids)


def update_recipients(conn: sqlite3.Connection, recipients: Sequence[QueuedRecipient]) -> None:
    conn.executemany(
        "UPDATE queue_recipients SET status = ?, attempts = ?, next_attempt = ?,"
        " last_error = ?, last_attempt = ?, remote = ?, tls = ?, delay_notified = ?,"
        " settled = ?, status_code = ? WHERE id = ?",
        [(r.status, r.attempts,
          timestamp(r.next_attempt) if r.next_attempt else timestamp(datetime.now(UTC)),
          r.last_error, timestamp(r.last_attempt) if r.last_attempt else None, r.remote,
          r.tls, int(r.delay_notified), int(r.settled), r.status_code, r.id) for r in recipients],
    )


def unsettled_messages(conn: sqlite3.Connection, limit: int) -> list[int]:
    """Messages owing the scheduler work that no attempt will trigger: a final recipient
    whose DSN is not settled, or every recipient done (the message can be retired)."""
    rows = conn.execute(
        "SELECT m.id FROM queue_messages m WHERE EXISTS (SELECT 1 FROM queue_recipients r"
        " WHERE r.message_id = m.id AND r.status IN ('delivered', 'failed') AND r.settled = 0)"
        " OR NOT EXISTS (SELECT 1 FROM queue_recipients r WHERE r.message_id = m.id AND"
        " (r.status NOT IN ('delivered', 'failed') OR r.settled = 0)) ORDER BY m.id LIMIT ?",
        (limit,),
    ).fetchall()
    return [row[0] for row in rows]


def recover_inflight(conn: sqlite3.Connection, now: datetime) -> int:
    """After a crash nothing is in flight: claimed recipients become due again. One whose
    remote had answered the final dot but whose result was not recorded is sent again;
    docs/outbound.md states this window."""
    return conn.execute(
        "UPDATE queue_recipients SET status = CASE WHEN attempts > 0 THEN 'deferred' ELSE"
        " 'queued' END, next_attempt = ? WHERE status = 'inflight'", (timestamp(now),)
    ).rowcount


def set_held(conn: sqlite3.Connection, queue_id: int, held: bool) -> None:
    cur = conn.execute("UPDATE queue_messages SET held = ? WHERE id = ?", (int(held), queue_id))
    if cur.rowcount == 0:
        raise NotFound(f"queued message #{queue_id} does not exist")


def make_due(conn: sqlite3.Connection, queue_id: int | None, now: datetime) -> int:
    """``queue retry``: pending recipients (of one message, or all) are due now; returns
    how many."""
    if queue_id is not None and not conn.execute(
        "SELECT 1 FROM queue_messages WHERE id = ?", (queue_id,)
    ).fetchone():
        raise NotFound(f"queued message #{queue_id} does not exist")
    sql = ("UPDATE queue_recipients SET next_attempt = ? WHERE status IN ('queued',"
           " 'deferred')")
    params: list[object] = [timestamp(now)]
    if queue_id is not None:
        sql += " AND message_id = ?"
        params.append(queue_id)
    return conn.execute(sql, params).rowcount
