"""How the SQLite store's rows look, and how they become the store's models.

Each column list sits beside the converter that reads it by position, so the two cannot
drift apart. The formats kept in text columns live here too: flags as one space-separated
string, and dates as ISO-8601 in UTC.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime

from mailstead.core.errors import InvalidName
from mailstead.core.types import Pop3Policy, SendAs, normalize_flag
from mailstead.store.models import Mailbox, MessageMeta, User

# -- dates -----------------------------------------------------------------------------------


def now_text() -> str:
    """The stored form of the present moment (creation times, save dates)."""
    return datetime.now(UTC).isoformat()


def utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive value is taken as UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def internaldate_text(value: datetime | None) -> str:
    """INTERNALDATE as stored: the instant in UTC, whatever zone APPEND (or a Date header
    the importer read) gave it. Only the instant is kept, as Dovecot keeps a timestamp, so
    FETCH shows ``+0000`` and SEARCH BEFORE/ON/SINCE compare UTC dates (RFC 9051 §6.4.4)."""
    return utc(value if value is not None else datetime.now(UTC)).isoformat()


def internaldate(text: str) -> datetime:
    """A stored INTERNALDATE. Rows written before dates were stored in UTC may still carry
    the zone given to APPEND: they are read as the same instant in UTC, like newer rows."""
    value = datetime.fromisoformat(text)
    return value if text.endswith("+00:00") else utc(value)


# -- flags -----------------------------------------------------------------------------------


def flags_text(flags: Iterable[str]) -> str:
    """Flags as stored: sorted, so one set always has one text and equal sets compare equal."""
    return " ".join(sorted(flags))


def parse_flags(text: str) -> frozenset[str]:
    """Flags as stored (space-separated). Memoised: a mailbox has few distinct flag sets,
    and SELECT converts every row of the mailbox."""
    flags = _FLAG_SETS.get(text)
    if flags is None:
        if len(_FLAG_SETS) >= _FLAG_SETS_MAX:
            _FLAG_SETS.clear()
        flags = _FLAG_SETS[text] = frozenset(text.split()) if text else frozenset()
    return flags


_FLAG_SETS: dict[str, frozenset[str]] = {}
_FLAG_SETS_MAX = 4096


def clean_flags(flags: Iterable[str]) -> frozenset[str]:
    """Flags as a client gave them, made fit to store: system flags in canonical case, no
    whitespace (it separates flags in the stored text), no ``\\Recent``."""
    cleaned: set[str] = set()
    for flag in flags:
        flag = normalize_flag(flag)
        if not flag or any(c.isspace() for c in flag):
            raise InvalidName(f"bad flag {flag!r}")
        if flag.lower() == "\\recent":
            continue  # RFC 9051 removed \Recent; rev1 sessions derive it themselves
        cleaned.add(flag)
    return frozenset(cleaned)


# -- users -----------------------------------------------------------------------------------

USER_COLUMNS = (
    "id, address, password_hash, quota_bytes, used_bytes, pop3_policy, plus_folders, "
    "disabled, created, send_as, scram_sha256"
)


def row_to_user(row: sqlite3.Row) -> User:
    return User(
        id=row[0],
        address=row[1],
        password_hash=row[2],
        quota_bytes=row[3],
        used_bytes=row[4],
        pop3_policy=Pop3Policy(row[5]),
        plus_folders=bool(row[6]),
        disabled=bool(row[7]),
        created=datetime.fromisoformat(row[8]),
        send_as=SendAs(row[9]),
        scram_sha256=row[10],
    )


# -- mailboxes -------------------------------------------------------------------------------

#: A mailbox with what STATUS and LIST report about it, counted from its messages.
MAILBOX_SELECT = (
    "SELECT b.id, b.user_id, b.name, b.uidvalidity, b.uidnext, b.highestmodseq,"
    " b.special_use, EXISTS (SELECT 1 FROM subscriptions s"
    "   WHERE s.user_id = b.user_id AND s.name = b.name),"
    " (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id),"
    " (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id AND m.seen = 0),"
    " (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id AND m.deleted = 1),"
    " (SELECT coalesce(sum(size), 0) FROM messages m WHERE m.mailbox_id = b.id),"
    " b.noselect,"
    " (SELECT coalesce(sum(size), 0) FROM messages m"
    "   WHERE m.mailbox_id = b.id AND m.deleted = 1)"
    " FROM mailboxes b"
)


def row_to_mailbox(row: sqlite3.Row) -> Mailbox:
    return Mailbox(
        id=row[0],
        user_id=row[1],
        name=row[2],
        uidvalidity=row[3],
        uidnext=row[4],
        highestmodseq=row[5],
        special_use=row[6],
        subscribed=bool(row[7]),
        message_count=row[8],
        unseen_count=row[9],
        deleted_count=row[10],
        size_bytes=row[11],
        noselect=bool(row[12]),
        deleted_bytes=row[13],
    )


# -- messages --------------------------------------------------------------------------------

MESSAGE_COLUMNS = "mailbox_id, uid, modseq, flags, internaldate, size, blob_id"


def row_to_message(row: sqlite3.Row) -> MessageMeta:
    # Positional, and the UID/ModSeq NewTypes left out (identity at run time, and the
    # row's values are Any to the type checker): SELECT converts thousands of rows.
    return MessageMeta(
        row[0], row[1], row[2], parse_flags(row[3]), internaldate(row[4]), row[5], row[6],
    )
