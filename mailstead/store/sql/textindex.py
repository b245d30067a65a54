"""The trigram full-text index of the SQLite store (docs/decisions/0027).

FTS5's ``trigram`` tokenizer turns a phrase query into the run of the needle's trigrams, so
a phrase of three characters or more matches exactly the rows whose column holds the needle
as a substring. Text is stored folded by the caller and the tokenizer is case-sensitive, so
the index compares exactly what the SEARCH scan compares.

A body gets its row in the transaction that makes a message reference it (:func:`add`
after the write, in the writer); the trigger of the migration removes it with the last
message. Older bodies are indexed by :func:`unindexed` + :func:`add` in batches.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from mailstead.core.errors import InvalidName
from mailstead.store.models import SEARCH_COLUMNS, IndexedText, TextMatches, TextQuery
from mailstead.store.sql.connections import chunks, placeholders

_COLUMN_LIST = ", ".join(SEARCH_COLUMNS)
_INSERT = (
    f"INSERT INTO search_text (rowid, {_COLUMN_LIST})"
    f" VALUES (?, {placeholders(len(SEARCH_COLUMNS))})"
)


def phrase(query: TextQuery) -> str:
    """The FTS5 MATCH expression: the needle as one string (a double quote doubled),
    restricted to the query's columns."""
    for column in query.columns:
        if column not in SEARCH_COLUMNS:
            raise InvalidName(f"no index column {column!r}")
    if len(query.needle) < 3:
        raise InvalidName("an index query needs at least three characters")
    quoted = '"' + query.needle.replace('"', '""') + '"'
    return "{" + " ".join(query.columns) + "} : " + quoted


def is_indexed(conn: sqlite3.Connection, blob_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM search_bodies WHERE blob_id = ?", (blob_id,)).fetchone()
        is not None
    )


def remove(conn: sqlite3.Connection, blob_id: str) -> None:
    """Drop the body's row (a rebuild writes it again; garbage collection of the body)."""
    conn.execute(
        "DELETE FROM search_text WHERE rowid IN (SELECT id FROM search_bodies WHERE blob_id = ?)",
        (blob_id,),
    )
    conn.execute("DELETE FROM search_bodies WHERE blob_id = ?", (blob_id,))


def add(conn: sqlite3.Connection, blob_id: str, text: IndexedText) -> bool:
    """In the writer's transaction: index the body when a message references it and it
    has no row yet. Returns whether a row was written."""
    referenced = conn.execute(
        "SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1", (blob_id,)
    ).fetchone()
    if referenced is None or is_indexed(conn, blob_id):
        return False
    row = conn.execute(
        "INSERT INTO search_bodies (blob_id, complete) VALUES (?, ?)",
        (blob_id, int(text.complete)),
    ).lastrowid
    conn.execute(_INSERT, (row, *(text.values.get(c, "") for c in SEARCH_COLUMNS)))
    return True


def unindexed(conn: sqlite3.Connection, user_id: int | None, limit: int) -> list[str]:
    """Bodies some message (of the account, when given) references that have no row."""
    account = (
        " AND m.mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)"
        if user_id is not None
        else ""
    )
    args: tuple[int, ...] = (user_id, limit) if user_id is not None else (limit,)
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT m.blob_id FROM messages m"
            " LEFT JOIN search_bodies s ON s.blob_id = m.blob_id"
            f" WHERE s.blob_id IS NULL{account} LIMIT ?",
            args,
        )
    ]


def indexed_bodies(conn: sqlite3.Connection, user_id: int | None) -> list[str]:
    """Every body of the account's (or every account's) messages that has a row."""
    account = (
        " WHERE m.mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)"
        if user_id is not None
        else ""
    )
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT s.blob_id FROM search_bodies s"
            f" JOIN messages m ON m.blob_id = s.blob_id{account}",
            (user_id,) if user_id is not None else (),
        )
    ]


def remove_many(conn: sqlite3.Connection, part: Sequence[str]) -> None:
    for chunk in chunks(list(part)):
        marks = placeholders(len(chunk))
        conn.execute(
            "DELETE FROM search_text WHERE rowid IN"
            f" (SELECT id FROM search_bodies WHERE blob_id IN ({marks}))",
            tuple(chunk),
        )
        conn.execute(f"DELETE FROM search_bodies WHERE blob_id IN ({marks})", tuple(chunk))


def purge(conn: sqlite3.Connection, limit: int) -> int:
    """Remove the rows of up to ``limit`` bodies noted gone (their last message went);
    one delivered again since keeps its row, which is still right for the same bytes.
    Returns how many notes were handled (0: nothing left)."""
    gone = [r[0] for r in conn.execute("SELECT blob_id FROM search_gone LIMIT ?", (limit,))]
    if not gone:
        return 0
    dead = [
        blob_id for blob_id in gone
        if conn.execute("SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1", (blob_id,))
        .fetchone() is None
    ]
    if dead:
        remove_many(conn, dead)
    conn.executemany("DELETE FROM search_gone WHERE blob_id = ?", [(b,) for b in gone])
    return len(gone)


def search(conn: sqlite3.Connection, mailbox_id: int, queries: Sequence[TextQuery]) -> TextMatches:
    """Per query, the mailbox's UIDs whose indexed text holds the needle; and which of the
    mailbox's messages the index cannot speak for."""
    hits = []
    for query in queries:
        expression = phrase(query)
        hits.append(
            frozenset(
                r[0]
                for r in conn.execute(
                    # CROSS JOIN keeps this order: the index's matches first, then
                    # their messages in this mailbox. Left to itself, the planner walks
                    # the mailbox and asks the index once per message (5 s instead of
                    # 1 ms for 10,000 messages).
                    "SELECT m.uid FROM search_text t"
                    " CROSS JOIN search_bodies s CROSS JOIN messages m"
                    " WHERE search_text MATCH ? AND s.id = t.rowid"
                    " AND m.blob_id = s.blob_id AND m.mailbox_id = ?",
                    (expression, mailbox_id),
                )
            )
        )
    unindexed: set[int] = set()
    incomplete: set[int] = set()
    for uid, complete in conn.execute(
        "SELECT m.uid, s.complete FROM messages m"
        " LEFT JOIN search_bodies s ON s.blob_id = m.blob_id"
        " WHERE m.mailbox_id = ? AND (s.complete IS NULL OR s.complete = 0)",
        (mailbox_id,),
    ):
        (unindexed if complete is None else incomplete).add(uid)
    return TextMatches(tuple(hits), frozenset(unindexed), frozenset(incomplete))
