"""kill -9 during a stream of appends loses nothing acknowledged and shows nothing torn."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailstead.store.sql.sqlite import SQLiteStore

WORKER = Path(__file__).with_name("append_worker.py")


def run_until_acks(data_dir: Path, clients: int, wanted: int) -> list[tuple[int, str]]:
    """Start the worker, collect ``wanted`` acknowledgements, then SIGKILL it."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[3]))
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(data_dir), str(clients)],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    acks: list[tuple[int, str]] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        while len(acks) < wanted:
            line = proc.stdout.readline()
            assert line, "worker died before the kill"
            _, _, _, uid, digest = line.split()
            acks.append((int(uid), digest))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return acks


@pytest.mark.slow
async def test_sigkill_during_appends_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acked = run_until_acks(data_dir, clients=8, wanted=300)
    acked += run_until_acks(data_dir, clients=8, wanted=200)  # and again on the recovered store

    store = SQLiteStore(data_dir)
    await store.open()
    try:
        assert await store.integrity_check() == []
        user = await store.find_user("crash@example.org")
        assert user is not None
        inbox = await store.get_mailbox(user.id, "INBOX")
        present = {m.uid: m for m in await store.list_messages(inbox.id)}
        for uid, digest in acked:
            assert uid in present, f"acknowledged UID {uid} lost"
            data = await store.read_blob(present[uid].blob_id)
            assert hashlib.sha256(data).hexdigest() == digest, f"UID {uid} not byte-identical"
        # Whatever else committed (appended but killed before the ack was printed) is whole.
        for meta in present.values():
            data = await store.read_blob(meta.blob_id)
            assert len(data) == meta.size
            assert hashlib.sha256(data).hexdigest() == meta.blob_id
        assert (await store.get_user(user.id)).used_bytes == sum(m.size for m in present.values())
        uids = sorted(present)
        assert len(set(uids)) == len(uids)
        assert inbox.uidnext > uids[-1]
        # Bodies written but never committed are orphans; collection removes them.
        await store.collect_garbage(grace_seconds=0)
        assert await store.integrity_check() == []
        for meta in present.values():
            assert await store.read_blob(meta.blob_id, 0, 8)
    finally:
        await store.close()
