"""``mailstead queue ...`` and ``mailstead dkim keygen`` against a data directory."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from click.testing import CliRunner

from mailstead.cli.main import cli
from mailstead.store.models import OutboundEnvelope, QueuedRecipient
from mailstead.store.sql.sqlite import SQLiteStore

from .conftest import message_bytes


def run(data: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--data", str(data), *args])
    return result.exit_code, result.stdout, result.stderr


def queue_one(data: Path) -> int:
    async def work() -> int:
        store = SQLiteStore(data)
        await store.open()
        try:
            _, queue_id = await store.enqueue(message_bytes(), OutboundEnvelope(
                "alice@a.test", (QueuedRecipient("bob@b.test", ("FAILURE",)),), ret="HDRS"))
            assert queue_id is not None
            return queue_id
        finally:
            await store.close()

    return asyncio.run(work())


def test_queue_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, _ = run(data, "domain", "add", "a.test")
    assert code == 0
    queue_id = queue_one(data)
    code, out, _ = run(data, "queue", "list")
    assert code == 0 and "alice@a.test" in out and "1 queued" in out
    code, out, _ = run(data, "queue", "show", str(queue_id))
    assert code == 0 and "<bob@b.test>  queued" in out and "Subject:    hello 1" in out
    assert "NOTIFY=FAILURE" in out
    assert run(data, "queue", "hold", str(queue_id))[0] == 0
    assert "HELD" in run(data, "queue", "list")[1]
    assert run(data, "queue", "release", str(queue_id))[0] == 0
    code, out, _ = run(data, "queue", "retry", "--all")
    assert code == 0 and out.strip() == "1 recipient due now"
    code, out, err = run(data, "queue", "retry")
    assert code == 1 and err.startswith("error:")
    assert run(data, "queue", "delete", str(queue_id))[0] == 0
    assert run(data, "queue", "list")[1].strip() == "the queue is empty"
    code, _, err = run(data, "queue", "show", str(queue_id))
    assert code == 1 and "does not exist" in err


def test_dkim_keygen_prints_the_record_and_keeps_the_key_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, _, err = run(data, "dkim", "keygen", "a.test", "--selector", "s2026")
    assert code == 1 and "domain a.test does not exist" in err  # a key for mail we send
    assert run(data, "domain", "add", "a.test")[0] == 0
    code, out, _ = run(data, "dkim", "keygen", "a.test", "--selector", "s2026")
    assert code == 0
    assert 's2026._domainkey.a.test. IN TXT ( "v=DKIM1; k=rsa; p=' in out
    key = data / "dkim" / "a.test" / "s2026.rsa.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    code, _, err = run(data, "dkim", "keygen", "a.test", "--selector", "s2026")
    assert code == 1 and "already exists" in err
    code, out, _ = run(data, "dkim", "keygen", "a.test", "-s", "ed", "-a", "ed25519")
    assert code == 0 and "k=ed25519" in out
    assert "s2026._domainkey" in run(data, "dkim", "list")[1]
