"""Account-wide change state: the account's mod-sequence, its emails and their threads.

Decision 0033. JMAP (RFC 8620 §1.6.1, §5.2) needs one state per account, and an Email is a
message as the account sees it, whichever mailboxes hold a copy. Three things follow, kept
here in the writer's transactions so they never drift from the messages they describe:

- **The account's mod-sequence** (``users.modseq``). Every write to an account takes its
  next value, so a message's MODSEQ orders it among all the account's changes; each
  mailbox's HIGHESTMODSEQ is still the largest of its own, strictly increasing as RFC 7162
  asks (with gaps, which it allows). A JMAP state string is this number.
- **Emails** (``emails``): one row per body an account holds, however many of its mailboxes
  hold a copy; the row keeps when the account first got it (``created``), when its set of
  copies last changed (``changed``) and its thread, fixed at that moment (RFC 8621 §3: a
  thread id never changes). When the last copy goes, the row moves to ``emails_gone`` with
  the mod-sequence of the removal, which is what ``Email/changes`` reports as destroyed.
- **Threads**: a new email joins the thread of an email of the same account whose
  Message-ID its References or In-Reply-To name (the sort keys stored with the body,
  decision 0031); otherwise it starts a thread of its own. A reply that arrives before the
  message it answers starts its own thread: a thread id cannot change later to join them.

Mailbox changes are kept the same way: ``mailboxes.created_modseq`` and
``changed_modseq``, and ``mailboxes_gone`` for the ones deleted (see ``mailboxes.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from mailstead.core.errors import ChangesTooMany, NotFound
from mailstead.core.types import UID, ModSeq
from mailstead.store.models import Changes, EmailCopy, EmailRecord, MailboxCounts
from mailstead.store.sql.connections import chunks, placeholders
from mailstead.store.sql.rows import internaldate, parse_flags

#: Characters of the body's SHA-256 (hexadecimal) in an email's and a thread's id: 96 bits,
#: unique in any one account by a wide margin; the full hash would make every id 65
#: characters long on every line of a message list.
ID_DIGITS = 24


def next_modseq(conn: sqlite3.Connection, user_id: int, floor: int = 0) -> int:
    """The account's next mod-sequence, above ``floor`` too (a mailbox's HIGHESTMODSEQ, in
    case the account's number is behind it)."""
    row = conn.execute(
        "UPDATE users SET modseq = max(modseq, ?) + 1 WHERE id = ? RETURNING modseq",
        (floor, user_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"user #{user_id} does not exist")
    return int(row[0])


def account_modseq(conn: sqlite3.Connection, user_id: int) -> int:
    row = conn.execute("SELECT modseq FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"user #{user_id} does not exist")
    return int(row[0])


def _thread_of_parents(conn: sqlite3.Connection, user_id: int, blob_id: str) -> str | None:
    """The thread of an email of the account that this body's References or In-Reply-To
    names, the nearest parent first."""
    row = conn.execute("SELECT refs FROM sort_keys WHERE blob_id = ?", (blob_id,)).fetchone()
    if row is None or not row[0]:
        return None
    parents = list(reversed(row[0].split(" ")))  # stored oldest first
    for chunk in chunks(parents):
        found = conn.execute(
            "SELECT k.message_id, e.thread_id FROM sort_keys k"
            " JOIN emails e ON e.blob_id = k.blob_id AND e.user_id = ?"
            f" WHERE k.message_id IN ({placeholders(len(chunk))})",
            (user_id, *chunk),
        ).fetchall()
        if found:
            threads = dict(found)
            for parent in chunk:
                if parent in threads:
                    return str(threads[parent])
    return None


def note_added(
    conn: sqlite3.Connection,
    user_id: int,
    mailbox_id: int,
    copies: Iterable[tuple[str, str]],
    modseq: int,
) -> None:
    """Copies (body, INTERNALDATE) were just added to one of the account's mailboxes: a new
    email for each body it did not hold, a change for the others (their mailboxes changed).
    An email's received time is its earliest copy's; one whose copies differ is ``mixed``,
    one with two copies in one mailbox ``dup`` (both for ``email_page``)."""
    added = list(copies)
    repeated = len({blob for blob, _ in added}) < len(added)
    for blob_id, when in dict.fromkeys(added):
        updated = conn.execute(
            "UPDATE emails SET changed = ?, mixed = mixed OR received != ?,"
            " received = min(received, ?) WHERE user_id = ? AND blob_id = ?",
            (modseq, when, when, user_id, blob_id),
        ).rowcount
        if updated or repeated:
            _note_repeat(conn, user_id, mailbox_id, blob_id)
        if updated:
            continue
        thread = _thread_of_parents(conn, user_id, blob_id) or "T" + blob_id[:ID_DIGITS]
        conn.execute(
            "INSERT INTO emails (user_id, blob_id, thread_id, created, changed, received)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, blob_id, thread, modseq, modseq, when),
        )


def _note_repeat(conn: sqlite3.Connection, user_id: int, mailbox_id: int, blob_id: str) -> None:
    """Mark the email ``dup`` if the mailbox now holds two copies of its body. The mark
    stays when one goes: it only makes counting slower."""
    copies = conn.execute(
        "SELECT count(*) FROM messages WHERE blob_id = ? AND mailbox_id = ?",
        (blob_id, mailbox_id),
    ).fetchone()[0]
    if copies > 1:
        conn.execute(
            "UPDATE emails SET dup = 1 WHERE user_id = ? AND blob_id = ?", (user_id, blob_id)
        )


def note_removed(
    conn: sqlite3.Connection, user_id: int, blob_ids: Iterable[str], modseq: int
) -> None:
    """Copies of these bodies were just removed: an email with copies left has changed,
    one without is gone (and remembered as gone, for ``Email/changes``)."""
    for blob_id in dict.fromkeys(blob_ids):
        left = conn.execute(
            "SELECT 1 FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
            " WHERE m.blob_id = ? AND b.user_id = ? LIMIT 1",
            (blob_id, user_id),
        ).fetchone()
        if left is not None:
            conn.execute(
                "UPDATE emails SET changed = ? WHERE user_id = ? AND blob_id = ?",
                (modseq, user_id, blob_id),
            )
            continue
        gone = conn.execute(
            "DELETE FROM emails WHERE user_id = ? AND blob_id = ? RETURNING thread_id",
            (user_id, blob_id),
        ).fetchone()
        if gone is not None:
            conn.execute(
                "INSERT OR REPLACE INTO emails_gone (user_id, blob_id, thread_id, modseq)"
                " VALUES (?, ?, ?, ?)",
                (user_id, blob_id, gone[0], modseq),
            )


# -- reading ----------------------------------------------------------------------------------

_EMAIL_ROWS = (
    "SELECT e.blob_id, e.thread_id, m.mailbox_id, m.uid, m.modseq, m.flags, m.internaldate,"
    " m.size FROM emails e"
    " JOIN messages m ON m.blob_id = e.blob_id"
    " JOIN mailboxes b ON b.id = m.mailbox_id AND b.user_id = e.user_id"
)


def _records(found: Iterable[tuple[Any, ...]]) -> list[EmailRecord]:
    """Rows of ``_EMAIL_ROWS`` grouped into emails, in the order each first appears."""
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for row in found:
        grouped.setdefault(row[0], []).append(row)
    records = []
    for blob_id, copies in grouped.items():
        records.append(
            EmailRecord(
                blob_id=blob_id,
                thread_id=copies[0][1],
                size=copies[0][7],
                received=min(internaldate(c[6]) for c in copies),
                copies=tuple(
                    EmailCopy(c[2], UID(c[3]), ModSeq(c[4]), parse_flags(c[5])) for c in copies
                ),
            )
        )
    return records


def email_records(
    conn: sqlite3.Connection, user_id: int, blob_ids: Sequence[str]
) -> list[EmailRecord]:
    """The account's emails of these bodies (those it does not hold are left out)."""
    found: list[tuple[Any, ...]] = []
    for chunk in chunks(list(dict.fromkeys(blob_ids))):
        found.extend(
            conn.execute(
                f"{_EMAIL_ROWS} WHERE e.user_id = ? AND e.blob_id IN ({placeholders(len(chunk))})",
                (user_id, *chunk),
            )
        )
    return _records(found)


def account_emails(
    conn: sqlite3.Connection, user_id: int, mailbox_id: int | None
) -> list[EmailRecord]:
    """Every email of the account, or every email with a copy in ``mailbox_id`` (with all
    its copies), newest first."""
    if mailbox_id is None:
        found = conn.execute(f"{_EMAIL_ROWS} WHERE e.user_id = ?", (user_id,)).fetchall()
    else:
        found = conn.execute(
            f"{_EMAIL_ROWS} WHERE e.user_id = ? AND e.blob_id IN"
            " (SELECT blob_id FROM messages WHERE mailbox_id = ?)",
            (user_id, mailbox_id),
        ).fetchall()
    records = _records(found)
    records.sort(key=lambda r: (r.received, r.blob_id), reverse=True)
    return records


def thread_emails(
    conn: sqlite3.Connection, user_id: int, thread_ids: Sequence[str]
) -> dict[str, list[str]]:
    """The bodies of each thread's emails, oldest first (RFC 8621 §3: by receivedAt)."""
    threads: dict[str, list[str]] = {}
    for chunk in chunks(list(dict.fromkeys(thread_ids))):
        for thread_id, blob_id, _ in conn.execute(
            "SELECT e.thread_id, e.blob_id, min(m.internaldate) AS received FROM emails e"
            " JOIN messages m ON m.blob_id = e.blob_id"
            " JOIN mailboxes b ON b.id = m.mailbox_id AND b.user_id = e.user_id"
            f" WHERE e.user_id = ? AND e.thread_id IN ({placeholders(len(chunk))})"
            " GROUP BY e.thread_id, e.blob_id ORDER BY e.thread_id, received, e.blob_id",
            (user_id, *chunk),
        ):
            threads.setdefault(thread_id, []).append(blob_id)
    return threads


def mailbox_counts(conn: sqlite3.Connection, user_id: int) -> dict[int, MailboxCounts]:
    """RFC 8621 §2 counts of each mailbox holding messages."""
    counts: dict[int, MailboxCounts] = {}
    for mailbox_id, emails_, unread, threads, unread_threads in conn.execute(
        "SELECT m.mailbox_id, count(DISTINCT m.blob_id),"
        " count(DISTINCT CASE WHEN m.seen = 0 THEN m.blob_id END),"
        " count(DISTINCT e.thread_id),"
        " count(DISTINCT CASE WHEN m.seen = 0 THEN e.thread_id END)"
        " FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
        " JOIN emails e ON e.user_id = b.user_id AND e.blob_id = m.blob_id"
        " WHERE b.user_id = ? GROUP BY m.mailbox_id",
        (user_id,),
    ):
        counts[mailbox_id] = MailboxCounts(emails_, unread, threads, unread_threads)
    return counts


def _page(
    marks: dict[str, int], since: int, now: int, max_changes: int | None
) -> tuple[set[str], int, bool]:
    """The keys whose latest change is in the first page of at most ``max_changes`` after
    ``since``, the state that page brings a client to, and whether more follow. A page ends
    between two mod-sequences, never inside one: all of one write's changes or none."""
    if max_changes is None or len(marks) <= max_changes:
        return set(marks), now, False
    ordered = sorted(marks.items(), key=lambda item: item[1])
    cut = ordered[max_changes][1]  # the first mod-sequence left out
    taken = {key for key, mark in ordered if mark < cut}
    if not taken:
        raise ChangesTooMany(f"more than {max_changes} changes at one mod-sequence")
    return taken, max(marks[k] for k in taken), True


def email_changes(
    conn: sqlite3.Connection, user_id: int, since: int, max_changes: int | None
) -> Changes:
    """Emails created, updated and destroyed since the account mod-sequence ``since``."""
    now = account_modseq(conn, user_id)
    marks: dict[str, int] = {}
    for blob_id, modseq in conn.execute(
        "SELECT m.blob_id, max(m.modseq) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
        " WHERE b.user_id = ? AND m.modseq > ? GROUP BY m.blob_id",
        (user_id, since),
    ):
        marks[blob_id] = modseq
    for blob_id, modseq in conn.execute(
        "SELECT blob_id, changed FROM emails WHERE user_id = ? AND changed > ?",
        (user_id, since),
    ):
        marks[blob_id] = max(modseq, marks.get(blob_id, 0))
    gone = dict(
        conn.execute(
            "SELECT blob_id, modseq FROM emails_gone WHERE user_id = ? AND modseq > ?",
            (user_id, since),
        ).fetchall()
    )
    for blob_id, modseq in gone.items():
        marks[blob_id] = max(modseq, marks.get(blob_id, 0))
    taken, state, more = _page(marks, since, now, max_changes)
    existing: dict[str, int] = {}
    for chunk in chunks(sorted(taken)):
        existing.update(
            conn.execute(
                f"SELECT blob_id, created FROM emails WHERE user_id = ?"
                f" AND blob_id IN ({placeholders(len(chunk))})",
                (user_id, *chunk),
            ).fetchall()
        )
    created = sorted(
        b
        for b in taken
        if b in existing and existing[b] > since and not (b in gone and gone[b] > since)
    )
    updated = sorted(b for b in taken if b in existing and b not in created)
    destroyed = sorted(b for b in taken if b not in existing and b in gone)
    return Changes(tuple(created), tuple(updated), tuple(destroyed), state, more)


def thread_changes(
    conn: sqlite3.Connection, user_id: int, since: int, max_changes: int | None
) -> Changes:
    """Threads whose set of emails changed since ``since``: one gained or lost an email.
    (Keywords are the emails', not the thread's: they change no Thread object.)"""
    now = account_modseq(conn, user_id)
    marks: dict[str, int] = {}
    for thread_id, modseq in conn.execute(
        "SELECT thread_id, max(created) FROM emails WHERE user_id = ? AND created > ?"
        " GROUP BY thread_id",
        (user_id, since),
    ):
        marks[thread_id] = modseq
    for thread_id, modseq in conn.execute(
        "SELECT thread_id, max(modseq) FROM emails_gone WHERE user_id = ? AND modseq > ?"
        " GROUP BY thread_id",
        (user_id, since),
    ):
        marks[thread_id] = max(modseq, marks.get(thread_id, 0))
    taken, state, more = _page(marks, since, now, max_changes)
    oldest: dict[str, int] = {}
    for chunk in chunks(sorted(taken)):
        oldest.update(
            conn.execute(
                "SELECT thread_id, min(created) FROM emails WHERE user_id = ?"
                f" AND thread_id IN ({placeholders(len(chunk))}) GROUP BY thread_id",
                (user_id, *chunk),
            ).fetchall()
        )
    created = sorted(t for t in taken if t in oldest and oldest[t] > since)
    updated = sorted(t for t in taken if t in oldest and oldest[t] <= since)
    destroyed = sorted(t for t in taken if t not in oldest)
    return Changes(tuple(created), tuple(updated), tuple(destroyed), state, more)


def mailbox_changes(
    conn: sqlite3.Connection, user_id: int, since: int, max_changes: int | None
) -> tuple[Changes, bool]:
    """Mailboxes (by UIDVALIDITY, as text) created, updated and destroyed since ``since``,
    and whether every update was only of counts (RFC 8621 §2.2 updatedProperties)."""
    now = account_modseq(conn, user_id)
    marks: dict[str, int] = {}
    kinds: dict[str, tuple[int, int]] = {}
    for uidvalidity, created, changed, highest in conn.execute(
        "SELECT uidvalidity, created_modseq, changed_modseq, highestmodseq FROM mailboxes"
        " WHERE user_id = ? AND (created_modseq > ? OR changed_modseq > ? OR highestmodseq > ?)",
        (user_id, since, since, since),
    ):
        key = str(uidvalidity)
        marks[key] = max(created, changed, highest)
        kinds[key] = (created, changed)
    for uidvalidity, modseq in conn.execute(
        "SELECT uidvalidity, modseq FROM mailboxes_gone WHERE user_id = ? AND modseq > ?",
        (user_id, since),
    ):
        if str(uidvalidity) not in kinds:
            marks[str(uidvalidity)] = modseq
    taken, state, more = _page(marks, since, now, max_changes)
    created = sorted(k for k in taken if k in kinds and kinds[k][0] > since)
    updated = sorted(k for k in taken if k in kinds and kinds[k][0] <= since)
    destroyed = sorted(k for k in taken if k not in kinds)
    counts_only = all(kinds[k][1] <= since for k in updated)
    return Changes(tuple(created), tuple(updated), tuple(destroyed), state, more), counts_only


def mailbox_marks(conn: sqlite3.Connection, user_id: int) -> dict[int, tuple[int, int]]:
    """Each mailbox's (created, changed) account mod-sequences."""
    return {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT id, created_modseq, changed_modseq FROM mailboxes WHERE user_id = ?", (user_id,)
        )
    }


def mailbox_keys(conn: sqlite3.Connection, user_id: int) -> dict[int, int]:
    """Each of the account's mailboxes' UIDVALIDITY, by id: what names a mailbox to a
    client, without counting anything."""
    return dict(conn.execute("SELECT id, uidvalidity FROM mailboxes WHERE user_id = ?",
                             (user_id,)).fetchall())


def email_page(
    conn: sqlite3.Connection,
    user_id: int,
    mailbox_id: int | None,
    ascending: bool,
    position: int,
    limit: int,
    total: bool,
) -> tuple[list[str], int | None] | None:
    """Bodies of the account's emails (or those in ``mailbox_id``) by received time, ties
    by blob id ascending, ``limit`` from ``position``, and their count if ``total``; read
    in the order of an index, so a page of a large mailbox costs the page. None when the
    account has an email whose copies have different dates: in a mailbox, a copy's date
    then does not order its email, and the caller sorts the emails itself."""
    direction = "ASC" if ascending else "DESC"
    if mailbox_id is None:
        page = [r[0] for r in conn.execute(
            f"SELECT blob_id FROM emails WHERE user_id = ?"
            f" ORDER BY received {direction}, blob_id LIMIT ? OFFSET ?",
            (user_id, limit, position),
        )]
        count = conn.execute(
            "SELECT count(*) FROM emails WHERE user_id = ?", (user_id,)
        ).fetchone()[0] if total else None
        return page, count
    mixed = conn.execute(
        "SELECT 1 FROM emails WHERE user_id = ? AND mixed = 1 LIMIT 1", (user_id,)
    ).fetchone()
    if mixed is not None:
        return None
    # Two copies of one body in the mailbox are one email: drop the repeats, reading on
    # until the window is full.
    wanted = position + limit
    found: list[str] = []
    seen: set[str] = set()
    offset, batch = 0, max(2 * wanted, 64)
    while len(found) < wanted:
        rows = conn.execute(
            f"SELECT blob_id FROM messages WHERE mailbox_id = ?"
            f" ORDER BY internaldate {direction}, blob_id LIMIT ? OFFSET ?",
            (mailbox_id, batch, offset),
        ).fetchall()
        for (blob_id,) in rows:
            if blob_id not in seen:
                seen.add(blob_id)
                found.append(blob_id)
        offset += len(rows)
        if len(rows) < batch:
            break
        batch *= 2
    count = None
    if total:
        # Rows are emails unless some email has two copies in one mailbox: then count
        # distinct bodies (a sort of every row, where counting rows reads an index).
        dup = conn.execute(
            "SELECT 1 FROM emails WHERE user_id = ? AND dup = 1 LIMIT 1", (user_id,)
        ).fetchone()
        what = "count(DISTINCT blob_id)" if dup is not None else "count(*)"
        count = conn.execute(
            f"SELECT {what} FROM messages WHERE mailbox_id = ?", (mailbox_id,)
        ).fetchone()[0]
    return found[position:wanted], count
