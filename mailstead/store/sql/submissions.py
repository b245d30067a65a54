"""An account's JMAP email submissions (RFC 8621 §7): a message of the account committed
for delivery, its envelope, and where each recipient stands.

A submission is written after the delivery transaction committed the message (to local
mailboxes and, for remote recipients, to the outbound queue); it points at the queue entry
by the Received id the commit returned (``queue_messages.trace_id``). While the queue
holds the entry, each remote recipient's state is read from it; when the queue retires
it (:func:`record_final`, called by ``queue.delete_queued`` in the same transaction), the
final states are copied into the submission and the submission counts as changed, so a
client watching ``EmailSubmission/changes`` sees the outcome. Recipients stored here at
once (local accounts) are recorded at creation.

Every write takes the account's next mod-sequence (decision 0033).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mailstead.core.errors import NotFound
from mailstead.store.models import (
    Changes,
    NewSubmission,
    QueueStatus,
    RecipientOutcome,
    Submission,
    UndoStatus,
)
from mailstead.store.sql.emails import account_modseq, next_modseq
from mailstead.store.sql.rows import utc

_COLUMNS = (
    "id, identity_id, blob_id, thread_id, envelope, send_at, undo_status, queue_id,"
    " delivery, created_modseq, changed_modseq"
)


def _outcomes_json(outcomes: dict[str, RecipientOutcome]) -> str:
    return json.dumps({a: [o.status.value, o.reply] for a, o in outcomes.items()})


def _outcomes(text: str) -> dict[str, RecipientOutcome]:
    return {a: RecipientOutcome(QueueStatus(v[0]), v[1]) for a, v in json.loads(text).items()}


def add(conn: sqlite3.Connection, user_id: int, new: NewSubmission) -> Submission:
    """Keep a committed submission, linked to the queue entry its commit made (if the
    queue still holds it: a message with only local recipients has none)."""
    modseq = next_modseq(conn, user_id)
    queued = conn.execute(
        "SELECT id FROM queue_messages WHERE trace_id = ?", (new.trace_id,)
    ).fetchone()
    row = conn.execute(
        "INSERT INTO submissions (user_id, identity_id, blob_id, thread_id, envelope,"
        " send_at, undo_status, trace_id, queue_id, delivery, created_modseq, changed_modseq)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (
            user_id,
            new.identity_id,
            new.blob_id,
            new.thread_id,
            json.dumps(dict(new.envelope)),
            utc(new.send_at).isoformat(timespec="microseconds"),
            UndoStatus.FINAL.value,
            new.trace_id,
            queued[0] if queued is not None else None,
            _outcomes_json(dict(new.local)),
            modseq,
            modseq,
        ),
    ).fetchone()
    return _submission(conn, row)


def _submission(conn: sqlite3.Connection, row: tuple[Any, ...]) -> Submission:
    recipients = _outcomes(row[8])
    if row[7] is not None:
        for address, status, last_error in conn.execute(
            "SELECT address, status, last_error FROM queue_recipients WHERE message_id = ?",
            (row[7],),
        ):
            recipients[address] = RecipientOutcome(QueueStatus(status), last_error)
    return Submission(
        id=row[0],
        identity_id=row[1],
        blob_id=row[2],
        thread_id=row[3],
        envelope=json.loads(row[4]),
        send_at=datetime.fromisoformat(row[5]),
        undo_status=UndoStatus(row[6]),
        queue_id=row[7],
        recipients=recipients,
        created=row[9],
        changed=row[10],
    )


def get_many(conn: sqlite3.Connection, user_id: int, ids: Sequence[int] | None) -> list[Submission]:
    """The account's submissions with these ids (all of them for None), oldest first."""
    if ids is None:
        found = conn.execute(
            f"SELECT {_COLUMNS} FROM submissions WHERE user_id = ? ORDER BY id", (user_id,)
        ).fetchall()
    else:
        found = [
            row
            for i in dict.fromkeys(ids)
            if (
                row := conn.execute(
                    f"SELECT {_COLUMNS} FROM submissions WHERE user_id = ? AND id = ?",
                    (user_id, i),
                ).fetchone()
            )
            is not None
        ]
    return [_submission(conn, row) for row in found]


def remove(conn: sqlite3.Connection, user_id: int, submission_id: int) -> None:
    """Forget a submission (RFC 8621 §7.5: destroying one does not touch the delivery)."""
    modseq = next_modseq(conn, user_id)
    if not conn.execute(
        "DELETE FROM submissions WHERE user_id = ? AND id = ?", (user_id, submission_id)
    ).rowcount:
        raise NotFound(f"submission #{submission_id} does not exist")
    conn.execute(
        "INSERT OR REPLACE INTO submissions_gone (user_id, id, modseq) VALUES (?, ?, ?)",
        (user_id, submission_id, modseq),
    )


def record_final(conn: sqlite3.Connection, queue_id: int) -> None:
    """The queue is about to retire ``queue_id``: copy its recipients' states into the
    submissions that point at it, as a change of each (in the same transaction)."""
    for submission_id, user_id, delivery in conn.execute(
        "SELECT id, user_id, delivery FROM submissions WHERE queue_id = ?", (queue_id,)
    ).fetchall():
        outcomes = _outcomes(delivery)
        for address, status, last_error in conn.execute(
            "SELECT address, status, last_error FROM queue_recipients WHERE message_id = ?",
            (queue_id,),
        ):
            outcomes[address] = RecipientOutcome(QueueStatus(status), last_error)
        conn.execute(
            "UPDATE submissions SET delivery = ?, queue_id = NULL, changed_modseq = ? WHERE id = ?",
            (_outcomes_json(outcomes), next_modseq(conn, user_id), submission_id),
        )


def changes(conn: sqlite3.Connection, user_id: int, since: int) -> Changes:
    """Submissions (by id, as text) created, updated and destroyed since ``since``."""
    now = account_modseq(conn, user_id)
    created: list[str] = []
    updated: list[str] = []
    for submission_id, made in conn.execute(
        "SELECT id, created_modseq FROM submissions WHERE user_id = ? AND changed_modseq > ?",
        (user_id, since),
    ):
        (created if made > since else updated).append(str(submission_id))
    destroyed = [
        str(row[0])
        for row in conn.execute(
            "SELECT id FROM submissions_gone WHERE user_id = ? AND modseq > ?", (user_id, since)
        )
    ]
    return Changes(tuple(created), tuple(updated), tuple(destroyed), now)
