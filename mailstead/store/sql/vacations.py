"""An account's vacation auto-reply: its one setting (the JMAP VacationResponse, RFC 8621
§8) and the senders already answered (RFC 5230 §4.2).

A change of the setting takes the account's next mod-sequence (:func:`emails.next_modseq`,
decision 0033), so the account's one JMAP state moves. An account that never set one has
the disabled default, with no row.

The answered-senders memory is claimed in one statement: the row is written when there is
none for (account, handle, sender) or the one there has expired, and the caller learns
whether it won. Two deliveries from the same sender at once therefore send one reply.
Instants are stored as UTC text of one fixed width, so text order is time order.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from mailstead.store.models import Vacation, VacationFields
from mailstead.store.sql.emails import next_modseq

_COLUMNS = "is_enabled, from_date, to_date, subject, text_body, html_body, changed_modseq"


def instant_text(value: datetime) -> str:
    """``2026-12-07T21:52:02Z``: UTC, whole seconds (a JMAP UTCDate's precision)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _vacation(row: tuple[Any, ...]) -> Vacation:
    return Vacation(
        fields=VacationFields(
            is_enabled=bool(row[0]),
            from_date=_instant(row[1]),
            to_date=_instant(row[2]),
            subject=row[3],
            text_body=row[4],
            html_body=row[5],
        ),
        changed=row[6],
    )


def get(conn: sqlite3.Connection, user_id: int) -> Vacation:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM vacation_responses WHERE user_id = ?", (user_id,)
    ).fetchone()
    return Vacation(VacationFields()) if row is None else _vacation(row)


def put(conn: sqlite3.Connection, user_id: int, fields: VacationFields) -> Vacation:
    """Replace the setting (NotFound from :func:`next_modseq` for an unknown account)."""
    modseq = next_modseq(conn, user_id)
    row = conn.execute(
        "INSERT INTO vacation_responses (user_id, is_enabled, from_date, to_date, subject,"
        " text_body, html_body, changed_modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET is_enabled = excluded.is_enabled,"
        " from_date = excluded.from_date, to_date = excluded.to_date,"
        " subject = excluded.subject, text_body = excluded.text_body,"
        " html_body = excluded.html_body, changed_modseq = excluded.changed_modseq"
        f" RETURNING {_COLUMNS}",
        (
            user_id,
            int(fields.is_enabled),
            None if fields.from_date is None else instant_text(fields.from_date),
            None if fields.to_date is None else instant_text(fields.to_date),
            fields.subject,
            fields.text_body,
            fields.html_body,
            modseq,
        ),
    ).fetchone()
    return _vacation(row)


def claim(
    conn: sqlite3.Connection,
    user_id: int,
    handle: str,
    sender: str,
    now: datetime,
    until: datetime,
) -> bool:
    """Remember that ``sender`` is answered under ``handle`` until ``until``; False (and
    nothing changed) when an answer made before is still unexpired at ``now``."""
    cursor = conn.execute(
        "INSERT INTO auto_replies (user_id, handle, sender, expires) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, handle, sender) DO UPDATE SET expires = excluded.expires"
        " WHERE auto_replies.expires <= ?",
        (user_id, handle, sender.casefold(), instant_text(until), instant_text(now)),
    )
    return cursor.rowcount > 0


def expire(conn: sqlite3.Connection, now: datetime) -> int:
    """Forget the answers whose period ended; how many."""
    return conn.execute(
        "DELETE FROM auto_replies WHERE expires <= ?", (instant_text(now),)
    ).rowcount
