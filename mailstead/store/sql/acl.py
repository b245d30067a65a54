"""Mailbox access control lists in the SQLite store (RFC 4314; decision 0028).

A grant is a row of ``mailbox_acl``: the mailbox, the grantee account (NULL for
``anyone``) and the rights as canonical letters. The owner is never stored: it always has
every right. Grants go with their mailbox and with their grantee's account (cascades), and
follow a mailbox through RENAME, since they are keyed by its id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.rights import ANYONE, RIGHTS, canonical
from mailstead.core.types import SEEN, UID
from mailstead.store.models import AclEntry, ChangeEvent, ChangeKind, SharedMailbox
from mailstead.store.sql.connections import chunks, placeholders
from mailstead.store.sql.directory import address_key
from mailstead.store.sql.messages import mailbox_row
from mailstead.store.sql.rows import MAILBOX_SELECT, parse_flags, row_to_mailbox
from mailstead.store.sql.writer import WriteOutcome


def _grantee(conn: sqlite3.Connection, identifier: str) -> int | None:
    """The account an identifier names (None for ``anyone``); NotFound for anything else."""
    if identifier.lower() == ANYONE:
        return None
    try:
        key = address_key(identifier)
    except InvalidName as exc:
        raise NotFound(f"no account {identifier!r}") from exc
    row = conn.execute("SELECT id FROM users WHERE addr_key = ?", (key.key,)).fetchone()
    if row is None:
        raise NotFound(f"no account {identifier!r}")
    return int(row[0])


def get_acl(conn: sqlite3.Connection, mailbox_id: int) -> list[AclEntry]:
    """The grants of a mailbox, ``anyone`` first, then by address."""
    mailbox_row(conn, mailbox_id)  # NotFound for a mailbox that is gone
    found = conn.execute(
        "SELECT u.address, a.rights FROM mailbox_acl a LEFT JOIN users u ON u.id = a.grantee_id"
        " WHERE a.mailbox_id = ? ORDER BY a.grantee_id IS NOT NULL, u.address",
        (mailbox_id,),
    ).fetchall()
    return [
        AclEntry(address if address is not None else ANYONE, rights) for address, rights in found
    ]


def set_acl(
    conn: sqlite3.Connection, mailbox_id: int, identifier: str, rights: str
) -> WriteOutcome[None]:
    """Replace one grant (no rights: remove it). The owner's own rights cannot change."""
    box = mailbox_row(conn, mailbox_id)
    grantee = _grantee(conn, identifier)
    if grantee == box.user_id:
        raise InvalidName("the owner always has every right")
    if any(r not in RIGHTS for r in rights):
        raise InvalidName(f"unknown rights in {rights!r}")
    conn.execute(
        "DELETE FROM mailbox_acl WHERE mailbox_id = ? AND grantee_id IS ?",
        (mailbox_id, grantee),
    )
    if rights:
        conn.execute(
            "INSERT INTO mailbox_acl (mailbox_id, grantee_id, rights) VALUES (?, ?, ?)",
            (mailbox_id, grantee, canonical(rights)),
        )
    return WriteOutcome(None, [ChangeEvent(box.user_id, mailbox_id, ChangeKind.ACL)])


def rights_for(conn: sqlite3.Connection, mailbox_id: int, user_id: int) -> str:
    """What ``user_id`` may do with the mailbox: everything for its owner, else the union
    of its own grant and ``anyone``'s."""
    box = mailbox_row(conn, mailbox_id)
    if box.user_id == user_id:
        return RIGHTS
    found = conn.execute(
        "SELECT rights FROM mailbox_acl WHERE mailbox_id = ?"
        " AND (grantee_id = ? OR grantee_id IS NULL)",
        (mailbox_id, user_id),
    ).fetchall()
    return canonical("".join(r[0] for r in found))


def shared_with(conn: sqlite3.Connection, user_id: int) -> list[SharedMailbox]:
    """Other accounts' mailboxes granting ``user_id`` (or anyone) some right, by owner and
    name."""
    found = conn.execute(
        "SELECT g.mailbox_id, group_concat(g.rights, ''), u.address"
        " FROM mailbox_acl g JOIN mailboxes b ON b.id = g.mailbox_id"
        " JOIN users u ON u.id = b.user_id"
        " WHERE (g.grantee_id = ? OR g.grantee_id IS NULL) AND b.user_id != ?"
        " GROUP BY g.mailbox_id",
        (user_id, user_id),
    ).fetchall()
    shared: list[SharedMailbox] = []
    for mailbox_id, rights, owner in found:
        row = conn.execute(MAILBOX_SELECT + " WHERE b.id = ?", (mailbox_id,)).fetchone()
        if row is not None:
            shared.append(SharedMailbox(row_to_mailbox(row), owner, canonical(rights)))
    shared.sort(key=lambda s: (s.owner, s.mailbox.name))
    return shared


# -- per-user \Seen (decision 0028) ------------------------------------------------------------


def private_seen(conn: sqlite3.Connection, mailbox_id: int, user_id: int) -> set[UID]:
    """The messages of the mailbox that ``user_id`` has seen, by its own \\Seen."""
    found = conn.execute(
        "SELECT uid FROM private_seen WHERE mailbox_id = ? AND user_id = ?",
        (mailbox_id, user_id),
    ).fetchall()
    return {UID(r[0]) for r in found}


def set_private_seen(
    conn: sqlite3.Connection, mailbox_id: int, user_id: int, uids: Sequence[int], seen: bool
) -> WriteOutcome[list[UID]]:
    """Mark existing messages seen (or not) for ``user_id`` alone; the messages whose
    state changed, with one PRIVATE_SEEN event carrying their flags as it sees them."""
    box = mailbox_row(conn, mailbox_id)
    changed: list[UID] = []
    flags: list[frozenset[str]] = []
    for chunk in chunks(sorted(set(uids))):
        rows = conn.execute(
            f"SELECT m.uid, m.flags, p.uid IS NOT NULL FROM messages m"
            f" LEFT JOIN private_seen p ON p.mailbox_id = m.mailbox_id AND p.uid = m.uid"
            f" AND p.user_id = ? WHERE m.mailbox_id = ? AND m.uid IN ({placeholders(len(chunk))})",
            (user_id, mailbox_id, *chunk),
        ).fetchall()
        for uid, stored, was_seen in rows:
            if bool(was_seen) == seen:
                continue
            if seen:
                conn.execute(
                    "INSERT INTO private_seen (mailbox_id, user_id, uid) VALUES (?, ?, ?)",
                    (mailbox_id, user_id, uid),
                )
            else:
                conn.execute(
                    "DELETE FROM private_seen WHERE mailbox_id = ? AND user_id = ? AND uid = ?",
                    (mailbox_id, user_id, uid),
                )
            changed.append(UID(uid))
            own = parse_flags(stored) - {SEEN}
            flags.append(own | {SEEN} if seen else own)
    if not changed:
        return WriteOutcome([])
    event = ChangeEvent(box.user_id, mailbox_id, ChangeKind.PRIVATE_SEEN, tuple(changed),
                        flags=tuple(flags), viewer=user_id)
    return WriteOutcome(changed, [event])
