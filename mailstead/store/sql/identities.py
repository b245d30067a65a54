"""An account's JMAP identities (RFC 8621 §6): the addresses it sends as, with a name,
Reply-To and Bcc defaults and signatures.

Every change takes the account's next mod-sequence (:func:`emails.next_modseq`, decision
0033), so the account's one JMAP state moves and ``Identity/changes`` can answer from the
``created_modseq``/``changed_modseq`` marks and ``identities_gone``.

An account always has one identity for its own address (``is_default``), made by
:func:`ensure_default` the first time anyone reads its identities, so that identity has a
stable id like any other; it cannot be destroyed.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mailstead.core.errors import NotFound
from mailstead.store.models import Changes, EmailAddressValue, Identity, IdentityFields
from mailstead.store.sql.emails import account_modseq, next_modseq

_COLUMNS = (
    "id, name, email, reply_to, bcc, text_signature, html_signature, is_default,"
    " created_modseq, changed_modseq"
)


def _addresses_json(value: tuple[EmailAddressValue, ...] | None) -> str | None:
    if value is None:
        return None
    return json.dumps([{"name": a.name, "email": a.email} for a in value])


def _addresses(text: str | None) -> tuple[EmailAddressValue, ...] | None:
    if text is None:
        return None
    return tuple(EmailAddressValue(a["email"], a["name"]) for a in json.loads(text))


def _identity(row: tuple[Any, ...]) -> Identity:
    return Identity(
        id=row[0],
        fields=IdentityFields(
            email=row[2],
            name=row[1],
            reply_to=_addresses(row[3]),
            bcc=_addresses(row[4]),
            text_signature=row[5],
            html_signature=row[6],
        ),
        is_default=bool(row[7]),
        created=row[8],
        changed=row[9],
    )


def ensure_default(conn: sqlite3.Connection, user_id: int, address: str) -> None:
    """Give the account its identity for its own address if it has none yet."""
    found = conn.execute(
        "SELECT 1 FROM identities WHERE user_id = ? AND is_default = 1", (user_id,)
    ).fetchone()
    if found is None:
        _insert(conn, user_id, IdentityFields(email=address), default=True)


def _insert(
    conn: sqlite3.Connection, user_id: int, fields: IdentityFields, *, default: bool
) -> Identity:
    modseq = next_modseq(conn, user_id)
    row = conn.execute(
        "INSERT INTO identities (user_id, name, email, reply_to, bcc, text_signature,"
        " html_signature, is_default, created_modseq, changed_modseq)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (
            user_id,
            fields.name,
            fields.email,
            _addresses_json(fields.reply_to),
            _addresses_json(fields.bcc),
            fields.text_signature,
            fields.html_signature,
            int(default),
            modseq,
            modseq,
        ),
    ).fetchone()
    return _identity(row)


def add(conn: sqlite3.Connection, user_id: int, fields: IdentityFields) -> Identity:
    return _insert(conn, user_id, fields, default=False)


def update(
    conn: sqlite3.Connection, user_id: int, identity_id: int, fields: IdentityFields
) -> Identity:
    """Replace what a client may change; ``fields.email`` is ignored (RFC 8621 §6:
    immutable after creation)."""
    modseq = next_modseq(conn, user_id)
    row = conn.execute(
        "UPDATE identities SET name = ?, reply_to = ?, bcc = ?, text_signature = ?,"
        " html_signature = ?, changed_modseq = ? WHERE user_id = ? AND id = ?"
        f" RETURNING {_COLUMNS}",
        (
            fields.name,
            _addresses_json(fields.reply_to),
            _addresses_json(fields.bcc),
            fields.text_signature,
            fields.html_signature,
            modseq,
            user_id,
            identity_id,
        ),
    ).fetchone()
    if row is None:
        raise NotFound(f"identity #{identity_id} does not exist")
    return _identity(row)


def remove(conn: sqlite3.Connection, user_id: int, identity_id: int) -> None:
    """Destroy one identity (never the default one: NotFound as for a missing one)."""
    modseq = next_modseq(conn, user_id)
    gone = conn.execute(
        "DELETE FROM identities WHERE user_id = ? AND id = ? AND is_default = 0",
        (user_id, identity_id),
    ).rowcount
    if not gone:
        raise NotFound(f"identity #{identity_id} does not exist or cannot be destroyed")
    conn.execute(
        "INSERT OR REPLACE INTO identities_gone (user_id, id, modseq) VALUES (?, ?, ?)",
        (user_id, identity_id, modseq),
    )


def list_identities(conn: sqlite3.Connection, user_id: int) -> list[Identity]:
    return [
        _identity(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM identities WHERE user_id = ? ORDER BY id", (user_id,)
        )
    ]


def changes(conn: sqlite3.Connection, user_id: int, since: int) -> Changes:
    """Identities (by id, as text) created, updated and destroyed since ``since``."""
    now = account_modseq(conn, user_id)
    created: list[str] = []
    updated: list[str] = []
    for identity_id, made in conn.execute(
        "SELECT id, created_modseq FROM identities WHERE user_id = ? AND changed_modseq > ?",
        (user_id, since),
    ):
        (created if made > since else updated).append(str(identity_id))
    destroyed = [
        str(row[0])
        for row in conn.execute(
            "SELECT id FROM identities_gone WHERE user_id = ? AND modseq > ?", (user_id, since)
        )
    ]
    return Changes(tuple(created), tuple(updated), tuple(destroyed), now)
