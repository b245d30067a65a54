"""smtp-relay: messages submitted for a remote domain, until the remote said ``250``.

mailstead runs as its own process (``serve``). 10 authenticated submission sessions
(STARTTLS, AUTH PLAIN, pipelined MAIL/RCPT/DATA) submit 10,000 messages of 4 KiB for
``remote.test``, whose MX (served by a DNS server on loopback) is an aiosmtpd no-op sink in
another process. Each message is durably queued before its submission ``250``, then the
scheduler delivers it (connection reuse, up to 10 connections to the domain) and retires
it after the sink's ``250``. The clock runs from the first submission until the queue is
empty: that is messages per second from submission to remote ``250``.

Queue memory: the server's peak resident size during the run minus its size before.

Baseline in the same run: mailstead's own SMTP client (``delivery/remote.py``) sending the
same messages straight to the same sink over 10 connections, no queue, no durability: what
the client alone manages, so the ratio is the price of the queue.
``--quick`` runs 1,000 messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BenchEnv, Result
from bench.store_append import make_message
from mailstead.auth.passwords import hash_password
from mailstead.delivery.remote import ClientTLS, OutMessage, OutRecipient, RemoteSession, TLSPolicy
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer, free_port

SESSIONS = 10
SIZE = 4 * 1024
SENDER = "sender@a.test"
PASSWORD = "bench password"


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _queued(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM queue_messages").fetchone()[0])
    finally:
        conn.close()


async def _prepare(data_dir: Path) -> None:
    store = SQLiteStore(data_dir)
    await store.open()
    try:
        await store.add_domain("a.test")
        await store.add_user(SENDER, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
    finally:
        await store.close()


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def _expect(reader: asyncio.StreamReader, *codes: int) -> None:
    for code in codes:
        got = await _reply(reader)
        if got != code:
            raise RuntimeError(f"expected {code}, got {got}")


async def _submit(port: int, messages: list[bytes], session: int, count: int) -> None:
    """One submission session: STARTTLS, AUTH PLAIN, then pipelined transactions."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await _expect(reader, 220)
    writer.write(b"EHLO bench.test\r\n")
    await _expect(reader, 250)
    writer.write(b"STARTTLS\r\n")
    await _expect(reader, 220)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    await writer.start_tls(context)
    writer.write(b"EHLO bench.test\r\n")
    await _expect(reader, 250)
    token = base64.b64encode(f"\0{SENDER}\0{PASSWORD}".encode())
    writer.write(b"AUTH PLAIN " + token + b"\r\n")
    await _expect(reader, 235)
    rcpt = f"user{session}@remote.test".encode()
    for n in range(count):
        data = messages[n % len(messages)]
        writer.write(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER.encode(), rcpt))
        await _expect(reader, 250, 250, 354)
        writer.write(data.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        await _expect(reader, 250)
    writer.write(b"QUIT\r\n")
    writer.close()


def _start_sink(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the aiosmtpd sink did not start")


async def _baseline(port: int, messages: list[bytes], total: int) -> float:
    per_session = total // SESSIONS

    async def session(index: int) -> None:
        remote = await RemoteSession.connect("sink.remote.test", "127.0.0.1", port,
                                             helo="bench.test", tls=TLSPolicy(ClientTLS.NONE))
        try:
            rcpt = [OutRecipient(f"user{index}@remote.test")]
            for n in range(per_session):
                result = await remote.send(OutMessage(SENDER, rcpt, messages[n % len(messages)]))
                if not all(reply.is_positive for reply in result.replies.values()):
                    raise RuntimeError(f"the sink refused: {result.replies}")
        finally:
            await remote.close()

    started = time.perf_counter()
    await asyncio.gather(*(session(i) for i in range(SESSIONS)))
    return per_session * SESSIONS / (time.perf_counter() - started)


def run(env: BenchEnv) -> list[Result]:
    total = env.scale(10_000, 1_000)
    per_session = total // SESSIONS
    # Submission takes only a From: the account may use: the sender's own.
    own = f"From: Bench <{SENDER}>".encode()
    messages = [make_message(n, SIZE - 2).replace(b"From: Bench <bench@example.org>", own)
                .rstrip(b"\r") + b"\r\n" for n in range(50)]
    sink_port = free_port()
    sink = _start_sink(sink_port)
    try:
        with TestDNSServer() as dns:
            dns.add("remote.test", "MX", "10 sink.remote.test")
            dns.add("sink.remote.test", "A", "127.0.0.1")
            workdir = env.scratch("smtp-relay")
            asyncio.run(_prepare(workdir / "data"))
            config = {
                "hostname": "mx.a.test",
                "log": {"level": "warning"},
                "delivery": {"enabled": True, "nameservers": ["127.0.0.1"],
                             "dns_port": dns.port, "smtp_port": sink_port,
                             "poll_seconds": 0.2},
            }
            with SubprocessServer(workdir, config) as server:
                assert server.proc is not None
                pid = server.proc.pid
                before = _rss_kib(pid, "VmRSS")
                db = workdir / "data" / "mailstead.db"
                started = time.perf_counter()

                async def submit_all() -> None:
                    await asyncio.gather(*(
                        _submit(server.port("submission"), messages, i, per_session)
                        for i in range(SESSIONS)))

                asyncio.run(submit_all())
                submitted = time.perf_counter() - started
                deadline = time.monotonic() + 600
                while _queued(db) and time.monotonic() < deadline:
                    time.sleep(0.05)
                left = _queued(db)
                elapsed = time.perf_counter() - started
                peak = _rss_kib(pid, "VmHWM")
        if left:
            raise RuntimeError(f"{left} messages still queued after 10 minutes")
        rate = per_session * SESSIONS / elapsed
        baseline = asyncio.run(_baseline(sink_port, messages, total))
    finally:
        sink.kill()
        sink.wait()
    sent = per_session * SESSIONS
    return [
        Result("smtp-relay", f"{sent} x 4 KiB, submission to remote 250", rate, "msg/s",
               baseline, "our client direct, no queue",
               notes=f"submission alone {sent / submitted:.0f} msg/s"),
        Result("smtp-relay", "queue memory (peak RSS growth)", (peak - before) / 1024, "MiB",
               higher_is_better=False, notes=f"server RSS {before / 1024:.0f} MiB before"),
    ]
