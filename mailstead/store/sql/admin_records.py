"""API tokens and the audit log in the SQLite store: functions of a connection."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailstead.core.errors import NotFound, StoreError
from mailstead.store.audit import AuditEntry
from mailstead.store.models import ApiToken, AuditRecord
from mailstead.store.sql.rows import now_text

_TOKEN_COLUMNS = ("id, name, scope, secret_hash, created, created_by, last_used, "
                  "last_used_from, revoked")


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _token(row: sqlite3.Row | tuple[object, ...]) -> ApiToken:
    (id_, name, scope, secret_hash, created, created_by, last_used, last_from,
     revoked) = tuple(row)
    return ApiToken(
        id=int(str(id_)), name=str(name), scope=str(scope), secret_hash=str(secret_hash),
        created=datetime.fromisoformat(str(created)), created_by=str(created_by),
        last_used=_when(last_used if last_used is None else str(last_used)),
        last_used_from=None if last_from is None else str(last_from),
        revoked=_when(revoked if revoked is None else str(revoked)),
    )


def add_token(conn: sqlite3.Connection, name: str, scope: str, secret_hash: str,
              created_by: str) -> ApiToken:
    cursor = conn.execute(
        "INSERT INTO api_tokens (name, scope, secret_hash, created, created_by) "
        "VALUES (?, ?, ?, ?, ?)", (name, scope, secret_hash, now_text(), created_by))
    if cursor.lastrowid is None:
        raise StoreError("the token was not inserted")
    return get_token(conn, cursor.lastrowid)


def get_token(conn: sqlite3.Connection, token_id: int) -> ApiToken:
    found = find_token(conn, token_id)
    if found is None:
        raise NotFound(f"token {token_id} does not exist")
    return found


def find_token(conn: sqlite3.Connection, token_id: int) -> ApiToken | None:
    row = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?",
                       (token_id,)).fetchone()
    return None if row is None else _token(row)


def list_tokens(conn: sqlite3.Connection) -> list[ApiToken]:
    rows = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY id").fetchall()
    return [_token(row) for row in rows]


def revoke_token(conn: sqlite3.Connection, token_id: int) -> None:
    get_token(conn, token_id)  # NotFound for an unknown id
    conn.execute("UPDATE api_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                 (now_text(), token_id))


def touch_token(conn: sqlite3.Connection, token_id: int, at: datetime, source: str) -> None:
    conn.execute("UPDATE api_tokens SET last_used = ?, last_used_from = ? WHERE id = ?",
                 (at.isoformat(), source, token_id))


def insert_audit(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, source, action, target, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (now_text(), entry.actor, entry.source, entry.action, entry.target,
         entry.detail_json()))


def list_audit(conn: sqlite3.Connection, limit: int, before: int | None,
               target: str | None) -> list[AuditRecord]:
    """Newest first; ``before`` pages backwards by id; ``target`` matches exactly or as
    the domain of an address (``example.org`` finds ``bob@example.org``)."""
    where: list[str] = []
    args: list[str | int] = []
    if before is not None:
        where.append("id < ?")
        args.append(before)
    if target is not None:
        where.append("(target = ? OR target LIKE ? ESCAPE '\\')")
        escaped = target.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args.extend([target, f"%@{escaped}"])
    sql = "SELECT id, at, actor, source, action, target, detail FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql, (*args, limit)).fetchall()
    return [AuditRecord(id=int(r[0]), at=datetime.fromisoformat(str(r[1])), actor=str(r[2]),
                        source=str(r[3]), action=str(r[4]), target=str(r[5]),
                        detail=str(r[6])) for r in rows]
