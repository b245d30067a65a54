"""SIGKILL while many SMTP sessions send: every 250 survives, nothing torn shows up."""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
from pathlib import Path

import pytest

from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import SubprocessServer
from tests.smtp.conftest import strip_trace

SESSIONS = 8
ACKED_BEFORE_KILL = 200  # acknowledged messages to wait for before the SIGKILL
_ID = re.compile(rb"^Message-ID: <(\d+)\.(\d+)@crash>\r\n", re.MULTILINE)


def crash_message(worker: int, n: int) -> bytes:
    body = (b"line %d of a message that must arrive whole\r\n" % n) * 40
    return (b"From: a@remote.example\r\nTo: rcpt@example.org\r\nSubject: crash %d.%d\r\n"
            b"Message-ID: <%d.%d@crash>\r\n\r\n" % (worker, n, worker, n)) + body


async def prepare(data_dir: Path) -> None:
    store = SQLiteStore(data_dir)
    await store.open()
    try:
        await store.add_domain("example.org")
        await store.add_user("rcpt@example.org", "x")
    finally:
        await store.close()


def sender(port: int, worker: int, acked: list[tuple[int, int]], stop: threading.Event,
           enough: threading.Event) -> None:
    """Send until the connection dies; record what got its 250, and say when the senders
    together have had ``ACKED_BEFORE_KILL`` of them."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            n = 0
            while not stop.is_set():
                client.sendmail("a@remote.example", ["rcpt@example.org"],
                                crash_message(worker, n))
                acked.append((worker, n))  # list.append is atomic under the GIL
                if len(acked) >= ACKED_BEFORE_KILL:
                    enough.set()
                n += 1
    except (OSError, smtplib.SMTPException):
        return  # the server was killed mid-conversation


async def stored_messages(data_dir: Path) -> tuple[list[bytes], list[str]]:
    store = SQLiteStore(data_dir)
    await store.open()
    try:
        user = await store.find_user("rcpt@example.org")
        assert user is not None
        inbox = await store.get_mailbox(user.id, "INBOX")
        bodies = [await store.read_blob(m.blob_id) for m in await store.list_messages(inbox.id)]
        return bodies, await store.integrity_check()
    finally:
        await store.close()


@pytest.mark.slow
def test_sigkill_during_smtp_sessions_loses_no_acknowledged_message(tmp_path: Path) -> None:
    asyncio.run(prepare(tmp_path / "data"))
    acked: list[tuple[int, int]] = []
    stop = threading.Event()
    enough = threading.Event()
    server = SubprocessServer(tmp_path, {"log": {"level": "warning"}}).start()
    try:
        threads = [
            threading.Thread(target=sender, args=(server.port("smtp"), w, acked, stop, enough))
            for w in range(SESSIONS)
        ]
        for thread in threads:
            thread.start()
        got_going = enough.wait(timeout=20)
        server.kill()  # SIGKILL mid-stream: sessions are in every phase of a transaction
    finally:
        stop.set()
        server.kill()
    for thread in threads:
        thread.join(timeout=15)
    assert got_going, f"the senders had only {len(acked)} messages acknowledged in 20s"

    bodies, problems = asyncio.run(stored_messages(tmp_path / "data"))
    assert problems == []
    stored: dict[tuple[int, int], bytes] = {}
    for body in bodies:
        match = _ID.search(body)
        assert match, body[:200]
        key = (int(match.group(1)), int(match.group(2)))
        assert key not in stored, f"{key} stored twice"
        stored[key] = body
    for key in acked:
        assert key in stored, f"message {key} got 250 but is lost"
    for key, body in stored.items():
        # Acknowledged or not (killed between commit and reply), a stored message is whole.
        assert strip_trace(body) == crash_message(*key)

    # The server starts again on the same data and keeps receiving.
    with SubprocessServer(tmp_path, {"log": {"level": "warning"}}) as again, \
            smtplib.SMTP("127.0.0.1", again.port("smtp"), timeout=10) as client:
        assert client.sendmail("a@remote.example", ["rcpt@example.org"],
                               crash_message(99, 0)) == {}
