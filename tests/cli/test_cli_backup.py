"""``mailstead backup`` and ``mailstead restore``: a copy taken while the store is in use,
put back into an empty data directory, holds every message and signs with the same key."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import dkim
from conftest import Invoke, one_error_line

from mailstead.delivery.dkim import Signer, load_keys
from mailstead.store.sql.sqlite import SQLiteStore

BOB = "bob@example.org"
SMALL = b"Subject: small\r\n\r\nin the database\r\n"
LARGE = b"Subject: large\r\n\r\n" + b"a body file line\r\n" * 20_000  # over 256 KiB
MESSAGE = b"From: bob@example.org\r\nTo: x@remote.test\r\nSubject: signed\r\n\r\nhello\r\n"


def _inbox(data_dir: Path) -> list[bytes]:
    async def read() -> list[bytes]:
        async with SQLiteStore(data_dir) as store:
            user = await store.find_user(BOB)
            assert user is not None
            box = await store.get_mailbox(user.id, "INBOX")
            return [await store.read_blob(m.blob_id) for m in await store.list_messages(box.id)]

    return asyncio.run(read())


def _append(data_dir: Path, *messages: bytes) -> None:
    async def write() -> None:
        async with SQLiteStore(data_dir) as store:
            user = await store.find_user(BOB)
            assert user is not None
            box = await store.get_mailbox(user.id, "INBOX")
            for raw in messages:
                await store.append(box.id, raw)

    asyncio.run(write())


def test_backup_and_restore_into_an_empty_directory(
    mailstead: Invoke, data_dir: Path, config_file: Path, tmp_path: Path
) -> None:
    assert mailstead("domain", "add", "example.org").exit_code == 0
    assert mailstead("user", "add", BOB, input="pw-secret-b\npw-secret-b\n").exit_code == 0
    assert mailstead("dkim", "keygen", "example.org").exit_code == 0
    _append(data_dir, SMALL, LARGE)
    target = tmp_path / "backup"

    result = mailstead("backup", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"backed up {data_dir} into {target}: database")
    assert result.stdout.rstrip().endswith("1 body files, dkim, mailstead.toml")
    manifest = json.loads((target / "BACKUP.json").read_text())
    assert manifest["bodies"] == 1 and manifest["missing_bodies"] == []
    assert (target / "mailstead.toml").read_text() == config_file.read_text()
    assert target.stat().st_mode & 0o777 == 0o700  # it holds the same secrets
    assert one_error_line(mailstead("backup", str(target))).endswith(
        "is not empty: back up into a new directory")

    # A new machine: the same configuration, an empty data directory.
    restored = tmp_path / "restored"
    new_config = tmp_path / "new.toml"
    new_config.write_text(config_file.read_text().replace('data_dir = "data"',
                                                          'data_dir = "restored"'))
    result = mailstead("--config", str(new_config), "restore", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "mailstore OK"
    assert sorted(_inbox(restored)) == sorted([SMALL, LARGE])

    # Restored mail is signed with the restored key, which verifies against the record
    # that was published for the original one.
    [original] = load_keys(data_dir)["example.org"]
    signature = Signer(restored).sign(MESSAGE, "example.org")
    record = original.txt_value.encode()
    assert dkim.verify(signature + MESSAGE,
                       dnsfunc=lambda name, timeout=5: record if name.startswith(
                           original.record_name.encode()) else None)

    # Restoring over a store is refused, and changes nothing.
    again = mailstead("--config", str(new_config), "restore", str(target))
    assert "already holds a mailstore" in one_error_line(again)
    assert sorted(_inbox(restored)) == sorted([SMALL, LARGE])


def test_restore_refuses_what_is_not_a_backup(mailstead: Invoke, tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    line = one_error_line(mailstead("restore", str(empty)))
    assert "holds no mailstead backup" in line
    assert os.listdir(empty) == []
