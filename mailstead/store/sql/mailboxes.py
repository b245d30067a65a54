"""Mailboxes and subscriptions in the SQLite store: the hierarchy of one account's folders.

Functions of a connection, run by the store's writer (writes) or readers (reads). Names
arrive checked by :func:`~mailstead.store.names.validate_mailbox_name`; ``/`` separates
levels, and a name's parents always exist (created along with it, or kept as \\Noselect
when deleted before their children). Every mailbox gets a UIDVALIDITY no mailbox of this
store had before (RFC 9051 §2.3.1.1).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from mailstead.core.errors import AlreadyExists, InvalidName, NotEmpty, NotFound
from mailstead.core.types import SPECIAL_USES
from mailstead.store.models import ChangeEvent, ChangeKind, Mailbox
from mailstead.store.names import SEPARATOR, is_inbox, parents_of
from mailstead.store.sql import emails, messages, metadata
from mailstead.store.sql.connections import inserted_id
from mailstead.store.sql.rows import MAILBOX_SELECT, row_to_mailbox
from mailstead.store.sql.writer import WriteOutcome

# -- argument checks (pure) --------------------------------------------------------------------


def check_special_use(special_use: str | None) -> None:
    """RFC 6154 attributes only: a client cannot invent one."""
    if special_use is not None and special_use not in SPECIAL_USES:
        raise InvalidName(f"unknown special-use attribute {special_use}")


def check_rename(src: str, dst: str) -> None:
    if src == dst:
        raise AlreadyExists(f"mailbox {dst} already exists")
    if dst.startswith(src + SEPARATOR):
        raise InvalidName("cannot rename a mailbox into its own child")


def check_deletable(name: str) -> None:
    if is_inbox(name):
        raise InvalidName("INBOX cannot be deleted")  # RFC 9051 §6.3.5


# -- creating ----------------------------------------------------------------------------------


def _next_uidvalidity(conn: sqlite3.Connection, above: int = 0) -> int:
    """Unique per mailbox for the life of the store, so a recreated name never reuses one
    (RFC 9051 §2.3.1.1). Time-based like most servers, strictly increasing, and greater
    than ``above`` (the UIDVALIDITY an earlier mailbox of the same name had)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
    last = int(row[0]) if row else 0
    value = max(last + 1, above + 1, int(time.time()))
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(value),),
    )
    return value


def insert_mailbox(
    conn: sqlite3.Connection,
    user_id: int,
    name: str,
    special_use: str | None,
    *,
    uidvalidity_above: int = 0,
) -> int:
    uidvalidity = _next_uidvalidity(conn, uidvalidity_above)
    modseq = emails.next_modseq(conn, user_id)
    cur = conn.execute(
        "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use, created_modseq,"
        " changed_modseq) VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, name, uidvalidity, special_use, modseq, modseq),
    )
    mailbox_id = inserted_id(cur)
    parent = name.rpartition(SEPARATOR)[0]
    if parent:
        # Decision 0028: a new mailbox starts with its parent's access control list, so
        # a folder made inside a shared one (by its owner or by a grantee with "k") is
        # shared with the same people, as in Dovecot.
        conn.execute(
            "INSERT INTO mailbox_acl (mailbox_id, grantee_id, rights)"
            " SELECT ?, a.grantee_id, a.rights FROM mailbox_acl a"
            " JOIN mailboxes b ON b.id = a.mailbox_id WHERE b.user_id = ? AND b.name = ?",
            (mailbox_id, user_id, parent),
        )
    return mailbox_id


def _exists(conn: sqlite3.Connection, user_id: int, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)
    ).fetchone()
    return row is not None


def _create_parents(conn: sqlite3.Connection, user_id: int, name: str) -> list[ChangeEvent]:
    """The missing levels above ``name`` (RFC 9051 §6.3.4), with their events."""
    events = []
    for parent in parents_of(name):
        if not _exists(conn, user_id, parent):
            parent_id = insert_mailbox(conn, user_id, parent, None)
            events.append(ChangeEvent(user_id, parent_id, ChangeKind.MAILBOX_CREATED, name=parent))
    return events


def create_mailbox(
    conn: sqlite3.Connection, user_id: int, name: str, special_use: str | None
) -> WriteOutcome[Mailbox]:
    """``name`` and its missing parents. A \\Noselect name left by a DELETE becomes a
    real mailbox again; any other existing name is AlreadyExists."""
    if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
        raise NotFound(f"user #{user_id} does not exist")
    row = conn.execute(
        "SELECT id, noselect FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)
    ).fetchone()
    if row is not None and not row[1]:
        raise AlreadyExists(f"mailbox {name} already exists")
    if row is not None:
        conn.execute(
            "UPDATE mailboxes SET noselect = 0, special_use = coalesce(?, special_use)"
            " WHERE id = ?",
            (special_use, row[0]),
        )
        note_changed(conn, user_id, [row[0]])
        event = ChangeEvent(user_id, row[0], ChangeKind.MAILBOX_CREATED, name=name)
        return WriteOutcome(load_mailbox(conn, user_id, name), [event])
    events = _create_parents(conn, user_id, name)
    mailbox_id = insert_mailbox(conn, user_id, name, special_use)
    events.append(ChangeEvent(user_id, mailbox_id, ChangeKind.MAILBOX_CREATED, name=name))
    return WriteOutcome(load_mailbox(conn, user_id, name), events)


# -- renaming and deleting ---------------------------------------------------------------------


def rename_mailbox(
    conn: sqlite3.Connection, user_id: int, src: str, dst: str
) -> WriteOutcome[Mailbox]:
    """Rename ``src`` with its children (RFC 9051 §6.3.6), creating ``dst``'s parents."""
    source = load_mailbox(conn, user_id, src)
    if _exists(conn, user_id, dst):
        raise AlreadyExists(f"mailbox {dst} already exists")
    events = _create_parents(conn, user_id, dst)
    if is_inbox(src):
        # RFC 9051 §6.3.6: renaming INBOX moves all its messages to the new name and
        # leaves INBOX empty; INBOX's children are not renamed. The mailbox itself
        # moves (UIDs, UIDVALIDITY, UIDNEXT, mod-sequences, quota usage unchanged, so
        # a session with INBOX selected goes on with it under the new name) and a
        # fresh INBOX takes the name with UIDNEXT 1 and a UIDVALIDITY above the old
        # one's (§2.3.1.1). INBOX's subscription stays with the name INBOX.
        _set_name(conn, source.id, dst)
        note_changed(conn, user_id, [source.id])
        inbox_id = insert_mailbox(
            conn, user_id, "INBOX", None, uidvalidity_above=source.uidvalidity
        )
        events.append(ChangeEvent(user_id, source.id, ChangeKind.MAILBOX_RENAMED, name=dst))
        events.append(ChangeEvent(user_id, inbox_id, ChangeKind.MAILBOX_CREATED, name="INBOX"))
        return WriteOutcome(load_mailbox(conn, user_id, dst), events)
    prefix = src + SEPARATOR
    children = conn.execute(
        "SELECT id, name FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ?",
        (user_id, len(prefix), prefix),
    ).fetchall()
    renames = [(source.id, src, dst)] + [
        (child_id, child, dst + child[len(src):]) for child_id, child in children
    ]
    for mailbox_id, old_name, new_name in renames:
        _set_name(conn, mailbox_id, new_name)
        conn.execute(
            "UPDATE subscriptions SET name = ? WHERE user_id = ? AND name = ?",
            (new_name, user_id, old_name),
        )
        events.append(ChangeEvent(user_id, mailbox_id, ChangeKind.MAILBOX_RENAMED, name=new_name))
    note_changed(conn, user_id, [mailbox_id for mailbox_id, _, _ in renames])
    return WriteOutcome(load_mailbox(conn, user_id, dst), events)


def _set_name(conn: sqlite3.Connection, mailbox_id: int, name: str) -> None:
    conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (name, mailbox_id))


def note_changed(conn: sqlite3.Connection, user_id: int, mailbox_ids: Sequence[int]) -> None:
    """The mailboxes' own properties changed (name, role, subscription, \\Noselect):
    one new account mod-sequence for them all (decision 0033, for ``Mailbox/changes``)."""
    if not mailbox_ids:
        return
    modseq = emails.next_modseq(conn, user_id)
    conn.executemany(
        "UPDATE mailboxes SET changed_modseq = ? WHERE id = ?",
        [(modseq, mailbox_id) for mailbox_id in mailbox_ids],
    )


def delete_mailbox(conn: sqlite3.Connection, user_id: int, name: str) -> WriteOutcome[None]:
    """Delete a mailbox and its messages (RFC 9051 §6.3.5); one with children keeps its
    name as \\Noselect and only loses its messages."""
    box = load_mailbox(conn, user_id, name)
    prefix = name + SEPARATOR
    child = conn.execute(
        "SELECT 1 FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ? LIMIT 1",
        (user_id, len(prefix), prefix),
    ).fetchone()
    if child and box.noselect:
        raise NotEmpty(f"mailbox {name} has children; delete them first")
    if child:
        # RFC 9051 §6.3.5: keep the name for the children, drop the messages.
        removed = messages.remove(conn, box.id, messages.all_uids(conn, box.id))
        conn.execute("UPDATE mailboxes SET noselect = 1 WHERE id = ?", (box.id,))
        note_changed(conn, user_id, [box.id])
        events = removed.events + metadata.remove_mailbox_entries(conn, user_id, box.id)
        return WriteOutcome(None, events)
    messages.adjust_usage(conn, user_id, -box.size_bytes)
    bodies = [r[0] for r in conn.execute(
        "SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?", (box.id,)
    )]
    conn.execute("DELETE FROM mailboxes WHERE id = ?", (box.id,))
    modseq = emails.next_modseq(conn, user_id)
    emails.note_removed(conn, user_id, bodies, modseq)
    conn.execute(
        "INSERT OR REPLACE INTO mailboxes_gone (user_id, uidvalidity, modseq) VALUES (?, ?, ?)",
        (user_id, box.uidvalidity, modseq),
    )
    return WriteOutcome(None, [ChangeEvent(user_id, box.id, ChangeKind.MAILBOX_DELETED, name=name)])


# -- reading -----------------------------------------------------------------------------------


def load_mailbox(conn: sqlite3.Connection, user_id: int, name: str) -> Mailbox:
    row = conn.execute(
        MAILBOX_SELECT + " WHERE b.user_id = ? AND b.name = ?", (user_id, name)
    ).fetchone()
    if row is None:
        raise NotFound(f"mailbox {name} does not exist")
    return row_to_mailbox(row)


def mailbox_by_id(conn: sqlite3.Connection, mailbox_id: int) -> Mailbox:
    row = conn.execute(MAILBOX_SELECT + " WHERE b.id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"mailbox #{mailbox_id} does not exist")
    return row_to_mailbox(row)


def list_mailboxes(conn: sqlite3.Connection, user_id: int) -> list[Mailbox]:
    """INBOX first, then the others by name."""
    found = conn.execute(
        MAILBOX_SELECT + " WHERE b.user_id = ? ORDER BY b.name = 'INBOX' DESC, b.name",
        (user_id,),
    ).fetchall()
    return [row_to_mailbox(r) for r in found]


# -- subscriptions -----------------------------------------------------------------------------


def subscribe(conn: sqlite3.Connection, user_id: int, name: str, subscribed: bool) -> None:
    """Subscriptions are names, not mailboxes: a name may be subscribed that does not exist
    (RFC 9051 §6.3.7)."""
    if subscribed:
        conn.execute(
            "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)", (user_id, name)
        )
    else:
        conn.execute("DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name))


def set_subscribed(
    conn: sqlite3.Connection, user_id: int, name: str, subscribed: bool
) -> WriteOutcome[None]:
    subscribe(conn, user_id, name, subscribed)
    found = conn.execute(
        "SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)
    ).fetchone()
    if found is not None:
        note_changed(conn, user_id, [found[0]])
    return WriteOutcome(None, [ChangeEvent(user_id, 0, ChangeKind.SUBSCRIPTION, name=name)])


def list_subscriptions(conn: sqlite3.Connection, user_id: int) -> list[str]:
    found = conn.execute(
        "SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name", (user_id,)
    ).fetchall()
    return [r[0] for r in found]
