"""Messages in mailboxes in the SQLite store: insert, flags, expunge, copy, move, listing.

Functions of a connection, run by the store's writer (writes) or readers (reads). Each
write keeps the mailbox's counters in the same transaction as the rows it changes: UIDNEXT
only grows, every changed row and every expunge record gets the mailbox's new HIGHESTMODSEQ
(RFC 7162 §3.1), and the owner's ``used_bytes`` moves by exactly the sizes added or
removed. Writes return the change events they caused, for the writer to publish after the
commit. The body a message points to is already in place (``bodies.py``) when these run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from mailstead.core.errors import InvalidName, NotFound, QuotaExceeded
from mailstead.core.rights import settable
from mailstead.core.types import DELETED, SEEN, UID, FlagMode, ModSeq
from mailstead.store.interfaces import UIDRanges
from mailstead.store.models import (
    AppendResult,
    ChangeEvent,
    ChangeKind,
    CopyResult,
    DeliveryResult,
    FlagUpdate,
    MessageMeta,
    Recipient,
    StoreFlagsResult,
)
from mailstead.store.names import validate_mailbox_name
from mailstead.store.sql import emails
from mailstead.store.sql.connections import chunks, placeholders
from mailstead.store.sql.rows import (
    MESSAGE_COLUMNS,
    clean_flags,
    flags_text,
    now_text,
    parse_flags,
    row_to_message,
)
from mailstead.store.sql.writer import WriteOutcome

#: The mailbox columns a write needs, fetched in one statement (see :class:`MailboxRow`).
_MAILBOX_ROW = (
    "SELECT id, user_id, uidvalidity, uidnext, highestmodseq, noselect, name FROM mailboxes"
)
_INSERT = (
    "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate,"
    " size, blob_id, savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: The upper bound of an open UID range (``n:*``) in SQL.
_NO_UPPER_BOUND = 2**63 - 1
#: Above this many UID ranges, one range scan over their span filtered in Python beats a
#: statement with an ``OR`` per range.
_MAX_RANGE_CLAUSES = 64


class MailboxRow(NamedTuple):
    """What a write needs to know about a mailbox (``_MAILBOX_ROW``)."""

    id: int
    user_id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    noselect: int
    name: str

    def require_selectable(self) -> None:
        """Messages cannot go into a \\Noselect name (RFC 9051 §6.3.5)."""
        if self.noselect:
            raise NotFound(f"mailbox {self.name} is \\Noselect and cannot hold messages")


class Destination(NamedTuple):
    """One local copy of a delivery, checked on the event loop before the write."""

    user_id: int
    mailbox_name: str
    flags: frozenset[str]
    optional: bool = False


def destinations(recipients: Sequence[Recipient]) -> list[Destination]:
    return [Destination(r.user_id, validate_mailbox_name(r.mailbox_name), clean_flags(r.flags),
                        r.optional)
            for r in recipients]


def _fits(conn: sqlite3.Connection, user_id: int, size: int) -> bool:
    """Whether ``size`` more bytes stay within the account's quota (none: always)."""
    row = conn.execute(
        "SELECT quota_bytes, used_bytes FROM users WHERE id = ?", (user_id,)
    ).fetchone()
    return row is None or not row[0] or row[1] + size <= row[0]


# -- the mailbox and account a write changes --------------------------------------------------


def mailbox_row(conn: sqlite3.Connection, mailbox_id: int) -> MailboxRow:
    row = conn.execute(f"{_MAILBOX_ROW} WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"mailbox #{mailbox_id} does not exist")
    return MailboxRow(*row)


def _delivery_mailbox(conn: sqlite3.Connection, destination: Destination) -> MailboxRow:
    """The folder routing chose, or INBOX when it was removed (or made \\Noselect) since:
    a delivery never fails for want of a folder."""
    row = conn.execute(
        f"{_MAILBOX_ROW} WHERE user_id = ? AND name = ? AND noselect = 0",
        (destination.user_id, destination.mailbox_name),
    ).fetchone()
    if row is None:
        row = conn.execute(
            f"{_MAILBOX_ROW} WHERE user_id = ? AND name = 'INBOX'", (destination.user_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"user #{destination.user_id} has no INBOX")
    return MailboxRow(*row)


def _advance(
    conn: sqlite3.Connection, mailbox_id: int, modseq: int, uidnext: int | None = None
) -> None:
    """The mailbox's new HIGHESTMODSEQ (and UIDNEXT, when messages were added)."""
    if uidnext is None:
        conn.execute(
            "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id)
        )
    else:
        conn.execute(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
            (uidnext, modseq, mailbox_id),
        )


def charge_quota(conn: sqlite3.Connection, user_id: int, size: int) -> None:
    """Add ``size`` to the account's usage, refusing to go over its quota. One
    statement: every write runs in its own SAVEPOINT, so raising undoes the UPDATE."""
    row = conn.execute(
        "UPDATE users SET used_bytes = used_bytes + ? WHERE id = ?"
        " RETURNING quota_bytes, used_bytes",
        (size, user_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"user #{user_id} does not exist")
    quota, used = row
    if size > 0 and quota and used > quota:
        raise QuotaExceeded(f"quota of {quota} bytes exceeded")


def adjust_usage(conn: sqlite3.Connection, user_id: int, delta: int) -> None:
    """Move the account's usage by ``delta`` without a quota check (bytes given back, or
    bytes that only moved between two of its mailboxes)."""
    conn.execute("UPDATE users SET used_bytes = used_bytes + ? WHERE id = ?", (delta, user_id))


# -- adding messages --------------------------------------------------------------------------


def _insert(
    conn: sqlite3.Connection,
    mailbox: MailboxRow,
    blob_id: str,
    size: int,
    flags: frozenset[str],
    internaldate: str,
) -> AppendResult:
    mailbox.require_selectable()
    uid = mailbox.uidnext
    modseq = emails.next_modseq(conn, mailbox.user_id, mailbox.highestmodseq)
    charge_quota(conn, mailbox.user_id, size)
    conn.execute(_INSERT, (
        mailbox.id, uid, modseq, flags_text(flags), SEEN in flags, DELETED in flags,
        internaldate, size, blob_id, now_text(),
    ))
    _advance(conn, mailbox.id, modseq, uid + 1)
    emails.note_added(conn, mailbox.user_id, mailbox.id, ((blob_id, internaldate),), modseq)
    return AppendResult(mailbox.uidvalidity, UID(uid), ModSeq(modseq))


def append(
    conn: sqlite3.Connection,
    mailbox_id: int,
    blob_id: str,
    size: int,
    flags: frozenset[str],
    internaldate: str,
) -> WriteOutcome[AppendResult]:
    mailbox = mailbox_row(conn, mailbox_id)
    result = _insert(conn, mailbox, blob_id, size, flags, internaldate)
    event = ChangeEvent(
        mailbox.user_id, mailbox_id, ChangeKind.EXISTS, (result.uid,), result.modseq, (flags,)
    )
    return WriteOutcome(result, [event])


class Addition(NamedTuple):
    """One message of :func:`append_many`, its body already in place."""

    blob_id: str
    size: int
    flags: frozenset[str]
    internaldate: str


def append_many(
    conn: sqlite3.Connection, mailbox_id: int, additions: Sequence[Addition]
) -> WriteOutcome[list[AppendResult]]:
    """MULTIAPPEND (RFC 3502): every message or none. They share one modseq and take
    consecutive UIDs; the quota is charged their total once, so one that does not fit
    fails them all (the writer's SAVEPOINT undoes the rows already inserted)."""
    mailbox = mailbox_row(conn, mailbox_id)
    mailbox.require_selectable()
    if not additions:
        return WriteOutcome([])
    modseq = emails.next_modseq(conn, mailbox.user_id, mailbox.highestmodseq)
    charge_quota(conn, mailbox.user_id, sum(a.size for a in additions))
    saved = now_text()
    results: list[AppendResult] = []
    for offset, add in enumerate(additions):
        uid = mailbox.uidnext + offset
        conn.execute(_INSERT, (
            mailbox.id, uid, modseq, flags_text(add.flags), SEEN in add.flags,
            DELETED in add.flags, add.internaldate, add.size, add.blob_id, saved,
        ))
        results.append(AppendResult(mailbox.uidvalidity, UID(uid), ModSeq(modseq)))
    _advance(conn, mailbox.id, modseq, mailbox.uidnext + len(additions))
    emails.note_added(
        conn, mailbox.user_id, mailbox.id, ((a.blob_id, a.internaldate) for a in additions),
        modseq,
    )
    event = ChangeEvent(
        mailbox.user_id, mailbox_id, ChangeKind.EXISTS, tuple(r.uid for r in results),
        ModSeq(modseq), tuple(a.flags for a in additions),
    )
    return WriteOutcome(results, [event])


def replace(
    conn: sqlite3.Connection,
    mailbox_id: int,
    addition: Addition,
    old_mailbox_id: int,
    old_uid: int,
) -> WriteOutcome[AppendResult]:
    """REPLACE (RFC 8508 §3): the new message is appended, then the old one expunged,
    in this one transaction. The old message's bytes are given back before the quota
    check, so a replacement no bigger than the original always fits."""
    source = mailbox_row(conn, old_mailbox_id)
    target = mailbox_row(conn, mailbox_id)
    target.require_selectable()
    if source.user_id != target.user_id:
        raise InvalidName("a message can only be replaced within one account")
    row = conn.execute(
        "SELECT size FROM messages WHERE mailbox_id = ? AND uid = ?", (old_mailbox_id, old_uid)
    ).fetchone()
    if row is None:
        raise NotFound("the message to replace no longer exists")
    adjust_usage(conn, target.user_id, -row[0])
    result = _insert(conn, target, addition.blob_id, addition.size, addition.flags,
                     addition.internaldate)
    adjust_usage(conn, target.user_id, row[0])  # remove() gives it back, once
    appended = ChangeEvent(
        target.user_id, mailbox_id, ChangeKind.EXISTS, (result.uid,), result.modseq,
        (addition.flags,),
    )
    removed = remove(conn, old_mailbox_id, [old_uid])
    return WriteOutcome(result, [appended, *removed.events])


def deliver(
    conn: sqlite3.Connection,
    blob_id: str,
    size: int,
    targets: Sequence[Destination],
    internaldate: str,
) -> WriteOutcome[DeliveryResult]:
    """One stored body into each destination's mailbox, all in this transaction."""
    results: list[tuple[int, AppendResult]] = []
    events: list[ChangeEvent] = []
    skipped: list[int] = []
    for destination in targets:
        if destination.optional and not _fits(conn, destination.user_id, size):
            skipped.append(destination.user_id)
            continue
        mailbox = _delivery_mailbox(conn, destination)
        result = _insert(conn, mailbox, blob_id, size, destination.flags, internaldate)
        results.append((destination.user_id, result))
        events.append(ChangeEvent(
            destination.user_id, mailbox.id, ChangeKind.EXISTS, (result.uid,), result.modseq,
            (destination.flags,),
        ))
    if skipped and not results:
        raise QuotaExceeded("every recipient is over quota")
    return WriteOutcome(DeliveryResult(blob_id, tuple(results), tuple(skipped)), events)


def copy(
    conn: sqlite3.Connection,
    src: int,
    uids: Sequence[int],
    dst: int,
    *,
    expunge_source: bool,
    rights: str | None = None,
) -> WriteOutcome[CopyResult]:
    """COPY (RFC 9051 §6.4.7), or MOVE (RFC 6851) with ``expunge_source``: new UIDs in
    ``dst`` sharing the bodies, flags and internal dates of the originals. ``dst`` may be
    ``src``: the copies are inserted before the originals are removed, so a MOVE within one
    mailbox renumbers its messages (decision 0018). ``dst`` may belong to another
    account (a shared mailbox, decision 0028): its owner's quota is charged, and a MOVE
    gives the bytes back to the source's owner, and ``rights`` (the copier's on ``dst``,
    RFC 4314 §4) leaves off the copies the flags they do not allow setting."""
    source = mailbox_row(conn, src)
    target = mailbox_row(conn, dst)
    target.require_selectable()
    same_account = source.user_id == target.user_id
    originals: list[tuple[int, str, str, int, str]] = []
    for chunk in chunks(sorted(set(uids))):
        originals.extend(conn.execute(
            f"SELECT uid, flags, internaldate, size, blob_id FROM messages"
            f" WHERE mailbox_id = ? AND uid IN ({placeholders(len(chunk))}) ORDER BY uid",
            (src, *chunk),
        ).fetchall())
    if not originals:
        return WriteOutcome(CopyResult(target.uidvalidity, ()))
    modseq = emails.next_modseq(conn, target.user_id, target.highestmodseq)
    total = sum(r[3] for r in originals)
    if not expunge_source or not same_account:
        charge_quota(conn, target.user_id, total)
    mapping: list[tuple[UID, UID]] = []
    new_flags: list[frozenset[str]] = []
    inserts = []
    saved = now_text()  # RFC 8514 §3: a copy is saved now
    for offset, (uid, flags, internaldate, size, blob_id) in enumerate(originals):
        new_uid = target.uidnext + offset
        parsed = parse_flags(flags)
        if rights is not None:
            parsed = settable(parsed, rights)
            flags = flags_text(parsed)
        inserts.append((dst, new_uid, modseq, flags, SEEN in parsed, DELETED in parsed,
                        internaldate, size, blob_id, saved))
        mapping.append((UID(uid), UID(new_uid)))
        new_flags.append(parsed)
    conn.executemany(_INSERT, inserts)
    _advance(conn, dst, modseq, target.uidnext + len(originals))
    emails.note_added(conn, target.user_id, dst, ((r[4], r[2]) for r in originals), modseq)
    events = [ChangeEvent(
        target.user_id, dst, ChangeKind.EXISTS, tuple(n for _, n in mapping), ModSeq(modseq),
        tuple(new_flags),
    )]
    if expunge_source:
        removed = remove(conn, src, [int(o) for o, _ in mapping])
        if same_account:
            # The bytes moved rather than doubled: remove() gave them back, take them again.
            adjust_usage(conn, target.user_id, total)
        events.extend(removed.events)
    return WriteOutcome(CopyResult(target.uidvalidity, tuple(mapping)), events)


# -- changing and removing messages -----------------------------------------------------------


def store_flags(
    conn: sqlite3.Connection,
    mailbox_id: int,
    uids: Sequence[int],
    mode: FlagMode,
    flags: frozenset[str],
    unchanged_since: int | None,
) -> WriteOutcome[StoreFlagsResult]:
    """STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3) on ``uids`` (ascending,
    distinct). A message whose flags do not change keeps its modseq and is not reported."""
    mailbox = mailbox_row(conn, mailbox_id)
    # RFC 7162 §3.1: one new modseq for this whole change (the account's next, decision 0033)
    modseq = emails.next_modseq(conn, mailbox.user_id, mailbox.highestmodseq)
    updated: list[FlagUpdate] = []
    modified: list[UID] = []
    changes: list[tuple[str, bool, bool, int, int]] = []
    for chunk in chunks(uids):
        found = conn.execute(
            f"SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ?"
            f" AND uid IN ({placeholders(len(chunk))}) ORDER BY uid",
            (mailbox_id, *chunk),
        ).fetchall()
        for uid, old_modseq, text in found:
            if unchanged_since is not None and old_modseq > unchanged_since:
                modified.append(UID(uid))
                continue
            current = parse_flags(text)
            if mode is FlagMode.SET:
                new = flags
            elif mode is FlagMode.ADD:
                new = current | flags
            else:
                new = current - flags
            if new == current:
                continue
            changes.append((flags_text(new), SEEN in new, DELETED in new, modseq, uid))
            updated.append(FlagUpdate(UID(uid), ModSeq(modseq), new))
    if changes:
        conn.executemany(
            "UPDATE messages SET flags = ?, seen = ?, deleted = ?, modseq = ?"
            f" WHERE mailbox_id = {int(mailbox_id)} AND uid = ?",
            changes,
        )
        _advance(conn, mailbox_id, modseq)
    events = []
    if updated:
        events.append(ChangeEvent(
            mailbox.user_id, mailbox_id, ChangeKind.FLAGS,
            tuple(u.uid for u in updated), ModSeq(modseq), tuple(u.flags for u in updated),
        ))
    return WriteOutcome(StoreFlagsResult(tuple(updated), tuple(modified)), events)


def remove(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int]
) -> WriteOutcome[list[UID]]:
    """Delete messages, record them for VANISHED (RFC 7162 §3.2.5), give their bytes back
    to the quota."""
    mailbox = mailbox_row(conn, mailbox_id)
    if not uids:
        return WriteOutcome([])
    modseq = emails.next_modseq(conn, mailbox.user_id, mailbox.highestmodseq)
    freed = 0
    bodies: list[str] = []
    for chunk in chunks(list(uids)):
        marks = placeholders(len(chunk))
        for size, blob_id in conn.execute(
            f"SELECT size, blob_id FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
            (mailbox_id, *chunk),
        ):
            freed += size
            bodies.append(blob_id)
        conn.execute(
            f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
            (mailbox_id, *chunk),
        )
        conn.execute(
            f"DELETE FROM private_seen WHERE mailbox_id = ? AND uid IN ({marks})",
            (mailbox_id, *chunk),
        )
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(mailbox_id, uid, modseq) for uid in uids],
    )
    _advance(conn, mailbox_id, modseq)
    adjust_usage(conn, mailbox.user_id, -freed)
    emails.note_removed(conn, mailbox.user_id, bodies, modseq)
    removed = [UID(u) for u in uids]
    event = ChangeEvent(
        mailbox.user_id, mailbox_id, ChangeKind.EXPUNGE, tuple(removed), ModSeq(modseq)
    )
    return WriteOutcome(removed, [event])


def expunge(
    conn: sqlite3.Connection, mailbox_id: int, limit: set[int] | None
) -> WriteOutcome[list[UID]]:
    """Remove the messages flagged \\Deleted, only those in ``limit`` when given (UID
    EXPUNGE, RFC 9051 §6.4.9)."""
    flagged = conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id = ? AND deleted = 1 ORDER BY uid",
        (mailbox_id,),
    ).fetchall()
    return remove(conn, mailbox_id, [r[0] for r in flagged if limit is None or r[0] in limit])


def delete(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int]
) -> WriteOutcome[list[UID]]:
    """Remove the messages ``uids`` (ascending, distinct) whatever their flags; UIDs not in
    the mailbox are skipped."""
    present: list[int] = []
    for chunk in chunks(uids):
        present.extend(r[0] for r in conn.execute(
            f"SELECT uid FROM messages WHERE mailbox_id = ?"
            f" AND uid IN ({placeholders(len(chunk))}) ORDER BY uid",
            (mailbox_id, *chunk),
        ))
    return remove(conn, mailbox_id, present)


def all_uids(conn: sqlite3.Connection, mailbox_id: int) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
    )]


def is_blob_referenced(conn: sqlite3.Connection, blob_id: str) -> bool:
    """Whether any message still points to the body (garbage collection asks)."""
    row = conn.execute("SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1", (blob_id,))
    return row.fetchone() is not None


#: SQL condition true when blob ``b`` is referenced by a message.
MESSAGE_REFERENCE = "EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id)"


# -- reading ----------------------------------------------------------------------------------


def _uid_ranges_clause(uid_ranges: UIDRanges, args: list[object]) -> str:
    """`` AND (uid BETWEEN ? AND ? OR ...)`` for the ranges, their bounds added to ``args``."""
    clauses = []
    for low, high in uid_ranges:
        clauses.append("uid BETWEEN ? AND ?")
        args.extend((low, high if high is not None else _NO_UPPER_BOUND))
    return " AND (" + " OR ".join(clauses) + ")"


def list_messages(
    conn: sqlite3.Connection,
    mailbox_id: int,
    uid_ranges: UIDRanges | None,
    changed_since: int | None,
) -> list[MessageMeta]:
    """Metadata in UID order, of the UIDs in ``uid_ranges`` and changed since
    ``changed_since`` (CONDSTORE, RFC 7162 §3.1.4.1) when given. The whole mailbox is
    :class:`~mailstead.store.sql.message_lists.MessageLists`'s to answer."""
    sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?"
    args: list[object] = [mailbox_id]
    if changed_since is not None:
        sql += " AND modseq > ?"
        args.append(changed_since)
    if uid_ranges is not None:
        if not uid_ranges:
            return []
        if len(uid_ranges) > _MAX_RANGE_CLAUSES:
            low = min(r[0] for r in uid_ranges)
            highs = [r[1] for r in uid_ranges]
            high = None if None in highs else max(h for h in highs if h is not None)
            sql += " AND uid BETWEEN ? AND ?"
            args.extend((low, high if high is not None else _NO_UPPER_BOUND))
            found = conn.execute(sql + " ORDER BY uid", args).fetchall()
            return [
                row_to_message(r) for r in found
                if any(lo <= r[1] <= (hi if hi is not None else r[1]) for lo, hi in uid_ranges)
            ]
        sql += _uid_ranges_clause(uid_ranges, args)
    return [row_to_message(r) for r in conn.execute(sql + " ORDER BY uid", args).fetchall()]


def save_dates(
    conn: sqlite3.Connection, mailbox_id: int, uid_ranges: UIDRanges | None
) -> dict[UID, datetime]:
    """RFC 8514 SAVEDATE; rows from before save dates were kept read as their internal date."""
    sql = "SELECT uid, COALESCE(savedate, internaldate) FROM messages WHERE mailbox_id = ?"
    args: list[object] = [mailbox_id]
    if uid_ranges is not None:
        if not uid_ranges:
            return {}
        sql += _uid_ranges_clause(uid_ranges, args)
    return {
        UID(uid): datetime.fromisoformat(text).astimezone(UTC)
        for uid, text in conn.execute(sql, args)
    }


def vanished_since(conn: sqlite3.Connection, mailbox_id: int, modseq: int) -> list[UID]:
    """UIDs expunged with a modseq above ``modseq`` (RFC 7162 §3.2.5.1)."""
    found = conn.execute(
        "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
        (mailbox_id, modseq),
    ).fetchall()
    return [UID(r[0]) for r in found]
