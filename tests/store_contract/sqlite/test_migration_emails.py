"""Migration 17 (decision 0033): a store written before accounts had one mod-sequence and
emails their own rows opens with both, consistent with the messages it already holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailstead.core.types import FlagMode
from mailstead.store.sql.schema import MIGRATIONS, statements
from mailstead.store.sql.sqlite import SQLiteStore
from tests.store_contract.conftest import fake_parse, fake_sort_keys, message


async def test_a_store_from_before_gets_emails_and_an_account_modseq(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "mailstead.db") as conn:
        for number, script in enumerate(MIGRATIONS[:16], start=1):
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("INSERT INTO domains (name, created) VALUES ('example.org', 'now')")
        conn.execute(
            "INSERT INTO users (id, address, addr_key, domain, password_hash, created)"
            " VALUES (1, 'a@example.org', 'a@example.org', 'example.org', 'h', 'now')"
        )
        for box, name, highest in ((1, "INBOX", 7), (2, "Archive", 12)):
            conn.execute(
                "INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext, highestmodseq)"
                " VALUES (?, 1, ?, ?, 3, ?)",
                (box, name, 100 + box, highest),
            )
        for blob in ("a" * 64, "b" * 64):
            conn.execute("INSERT INTO blobs (id, size) VALUES (?, 10)", (blob,))
        rows = [(1, 1, 5, "a" * 64), (1, 2, 7, "b" * 64), (2, 1, 12, "a" * 64)]
        for box, uid, modseq, blob in rows:
            conn.execute(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted,"
                " internaldate, size, blob_id) VALUES (?, ?, ?, '', 0, 0,"
                " '2026-01-01T00:00:00+00:00', 10, ?)",
                (box, uid, modseq, blob),
            )
    async with SQLiteStore(data_dir, parse=fake_parse, sort_keys=fake_sort_keys) as store:
        assert await store.account_state(1) == 12
        records = {r.blob_id: r for r in await store.account_emails(1)}
        assert set(records) == {"a" * 64, "b" * 64}
        assert records["a" * 64].mailbox_ids == {1, 2}
        assert records["a" * 64].thread_id != records["b" * 64].thread_id
        # The next write goes above every mailbox's HIGHESTMODSEQ, in any mailbox.
        added = await store.append(1, message(1), [])
        assert added.modseq == 13
        flagged = await store.store_flags(2, [added.uid], FlagMode.ADD, ["x"])
        assert flagged.updated == ()
        changes = await store.email_changes(1, 12, None)
        assert len(changes.created) == 1 and changes.updated == changes.destroyed == ()
