"""smtp-receive: 10 concurrent sessions x 500 messages of 4 KiB to local users.

mailstead runs as its own process (``serve``) and stores every message durably (body
fsynced, metadata group-committed) before its ``250``. The client is a small asyncio SMTP
client that uses what the server advertises: with PIPELINING, MAIL/RCPT/DATA go out in one
write (RFC 2920); with PIPELINING and CHUNKING, MAIL/RCPT/BDAT LAST and the body go out in
one write (RFC 3030), one round trip per message. Without them it waits for each reply.

Baseline in the same run, same client, same load: aiosmtpd in its own process with the
``Sink`` handler (every message answered ``250`` and thrown away: Python's SMTP server with
no storage at all; it offers neither PIPELINING nor CHUNKING).

With ``--peers`` (``make bench-peers``), the same client sends the same messages, in the
same run, to a private Postfix from Debian (tests/interop/postfix.py: 127.0.0.1, its own
queue, ``virtual(8)`` delivery to Maildir) as a second baseline. Postfix fsyncs the queue
file before its ``250`` (as durable as mailstead's answer); Maildir delivery happens after
the ``250`` and is not timed, but every message is checked to have arrived.

Reported: messages per second, and p50/p99 latency of the final ``250`` (from the write
that ends the message to its reply). ``BENCH_QUICK=1`` or ``--quick`` runs 10 x 50.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store, percentile
from bench.store_append import make_message
from mailstead.testing.server import SubprocessServer, free_port

SESSIONS = 10
WINDOW = 8  # BDAT messages a session sends before their replies arrive
SIZE = 4 * 1024
DOMAIN = "example.org"


def rcpt_for(session: int) -> str:
    return f"user{session}@{DOMAIN}"


@dataclass
class Run:
    """What one load run measured."""

    elapsed: float = 0.0
    messages: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed if self.elapsed else 0.0


class SMTPError(Exception):
    pass


class Client:
    """Just enough SMTP, with pipelining and BDAT when offered (mode: data, pipe, bdat)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.extensions: set[str] = set()

    async def reply(self) -> int:
        while True:
            line = await self.reader.readline()
            if not line:
                raise SMTPError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3])

    async def expect(self, *codes: int) -> None:
        for wanted in codes:
            code = await self.reply()
            if code != wanted:
                raise SMTPError(f"expected {wanted}, got {code}")

    async def hello(self) -> None:
        await self.expect(220)
        self.writer.write(b"EHLO bench.example\r\n")
        while True:
            line = await self.reader.readline()
            self.extensions.add(line[4:].strip().split(b" ")[0].decode().upper())
            if line[3:4] != b"-":
                break

    async def lockstep(self, rcpt: str, messages: list[bytes], count: int) -> list[float]:
        """No PIPELINING: wait for every reply (what smtplib does)."""
        latencies = []
        for n in range(count):
            for line, code in ((b"MAIL FROM:<bench@remote.example>\r\n", 250),
                               (b"RCPT TO:<%s>\r\n" % rcpt.encode(), 250), (b"DATA\r\n", 354)):
                self.writer.write(line)
                await self.expect(code)
            started = time.perf_counter()
            self.writer.write(stuff(messages[n % len(messages)]))
            await self.expect(250)
            latencies.append(time.perf_counter() - started)
        return latencies

    async def pipelined_data(self, rcpt: str, messages: list[bytes], count: int) -> list[float]:
        """PIPELINING with DATA, as Exim does it: the next MAIL/RCPT/DATA go out right
        behind the final dot of the previous message (RFC 2920 §3.1)."""
        latencies = []
        envelope = _envelope(rcpt) + b"DATA\r\n"
        self.writer.write(envelope)
        await self.expect(250, 250, 354)
        for n in range(count):
            last = n == count - 1
            started = time.perf_counter()
            self.writer.write(stuff(messages[n % len(messages)]) + (b"" if last else envelope))
            await self.expect(250)
            latencies.append(time.perf_counter() - started)
            if not last:
                await self.expect(250, 250, 354)
        return latencies

    async def pipelined_bdat(self, rcpt: str, messages: list[bytes], count: int,
                             window: int) -> list[float]:
        """PIPELINING with CHUNKING: each message is one write (MAIL, RCPT, BDAT LAST and
        the body); up to ``window`` messages are sent before their replies arrive."""
        latencies: list[float] = []
        slots = asyncio.Semaphore(window)
        sent: list[float] = []

        async def send() -> None:
            for n in range(count):
                await slots.acquire()
                data = messages[n % len(messages)]
                sent.append(time.perf_counter())
                self.writer.write(_envelope(rcpt) + b"BDAT %d LAST\r\n" % len(data) + data)

        async def receive() -> None:
            for n in range(count):
                await self.expect(250, 250, 250)
                latencies.append(time.perf_counter() - sent[n])
                slots.release()

        await asyncio.gather(send(), receive())
        return latencies


def _envelope(rcpt: str) -> bytes:
    return b"MAIL FROM:<bench@remote.example>\r\nRCPT TO:<%s>\r\n" % rcpt.encode()


def stuff(data: bytes) -> bytes:
    """Dot-stuffing (RFC 5321 §4.5.2) and the end-of-data line."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def load(port: int, mode: str, count: int, messages: list[bytes],
               window: int = 1) -> Run:
    """SESSIONS concurrent sessions, each sending ``count`` messages."""
    clients = []
    for _ in range(SESSIONS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        client = Client(reader, writer)
        await client.hello()
        clients.append(client)
    offered = clients[0].extensions
    if "PIPELINING" not in offered:
        mode = "data"
    elif mode == "bdat" and "CHUNKING" not in offered:
        mode = "pipe"
    run = Run()

    async def session(index: int, client: Client) -> None:
        rcpt = rcpt_for(index)
        if mode == "bdat":
            latencies = await client.pipelined_bdat(rcpt, messages, count, window)
        elif mode == "pipe":
            latencies = await client.pipelined_data(rcpt, messages, count)
        else:
            latencies = await client.lockstep(rcpt, messages, count)
        run.latencies.extend(latencies)
        run.messages += len(latencies)

    started = time.perf_counter()
    await asyncio.gather(*(session(i, c) for i, c in enumerate(clients)))
    run.elapsed = time.perf_counter() - started
    for client in clients:
        client.writer.write(b"QUIT\r\n")
        client.writer.close()
    return run


async def _prepare(data_dir: Path) -> None:
    store = bench_store(data_dir)
    await store.open()
    try:
        await store.add_domain(DOMAIN)
        for index in range(SESSIONS):
            await store.add_user(rcpt_for(index), "unused")
    finally:
        await store.close()


async def _count_stored(data_dir: Path) -> int:
    store = bench_store(data_dir)
    await store.open()
    try:
        total = 0
        for index in range(SESSIONS):
            user = await store.find_user(rcpt_for(index))
            assert user is not None
            total += (await store.get_mailbox(user.id, "INBOX")).message_count
        return total
    finally:
        await store.close()


def measure_mailstead(env: BenchEnv, mode: str, count: int, messages: list[bytes],
                      window: int = 1) -> Run:
    scratch = env.scratch(f"smtp-{mode}")
    server = SubprocessServer(scratch, {"log": {"level": "warning"}})
    asyncio.run(_prepare(server.data_dir))
    with server:
        run = asyncio.run(load(server.port("smtp"), mode, count, messages, window))
        server.terminate()
        server.wait()
    stored = asyncio.run(_count_stored(server.data_dir))
    if stored != run.messages:
        raise RuntimeError(f"{run.messages} messages acknowledged but {stored} stored")
    return run


def measure_aiosmtpd(count: int, messages: list[bytes]) -> Run:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("aiosmtpd did not start") from None
                time.sleep(0.05)
        return asyncio.run(load(port, "bdat", count, messages, WINDOW))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure_postfix(mode: str, count: int, messages: list[bytes], window: int = 1) -> Run:
    from tests.interop.postfix import Postfix

    users = [rcpt_for(index).split("@")[0] for index in range(SESSIONS)]
    with Postfix(DOMAIN, users) as postfix:
        run = asyncio.run(load(postfix.port, mode, count, messages, window))
        delivered = postfix.wait_delivered(users, run.messages, timeout=300)
    if delivered != run.messages:
        raise RuntimeError(f"{run.messages} messages acknowledged by Postfix but "
                           f"{delivered} delivered to Maildir")
    return run


def _rows(label: str, measured: Run, baseline: Run, base: str, notes: str,
          p50_notes: str, p99_notes: str = "") -> list[Result]:
    return [
        Result("smtp-receive", f"{label}: throughput", measured.rate, "msg/s",
               baseline.rate, base, notes=notes),
        Result("smtp-receive", f"{label}: final 250 p50",
               percentile(measured.latencies, 50) * 1000, "ms",
               percentile(baseline.latencies, 50) * 1000, base,
               higher_is_better=False, notes=p50_notes),
        Result("smtp-receive", f"{label}: final 250 p99",
               percentile(measured.latencies, 99) * 1000, "ms",
               percentile(baseline.latencies, 99) * 1000, base, higher_is_better=False,
               notes=p99_notes),
    ]


def run(env: BenchEnv) -> list[Result]:
    quick = env.quick or os.environ.get("BENCH_QUICK") == "1"
    count = 50 if quick else 500
    # 4 KiB each, ending in CRLF so that DATA's terminating dot is on its own line.
    messages = [make_message(n, SIZE)[:-2] + b"\r\n" for n in range(64)]
    # The same client for both; it uses what each server offers (aiosmtpd: lockstep DATA).
    baseline = measure_aiosmtpd(count, messages)
    base = "aiosmtpd Sink (no storage)"
    notes = f"{SESSIONS} sessions x {count} msgs of 4 KiB"
    results = []
    cases = (("pipe", 1, "PIPELINING + DATA"),
             ("bdat", WINDOW, f"PIPELINING + BDAT, {WINDOW} in flight"))
    for mode, window, label in cases:
        measured = measure_mailstead(env, mode, count, messages, window)
        results += _rows(label, measured, baseline, base, notes,
                         "mailstead fsyncs before 250")
        if env.peers:
            # Same client, same messages, same mode (Postfix offers PIPELINING and CHUNKING).
            peer = measure_postfix(mode, count, messages, window)
            results += _rows(label, measured, peer, "Postfix 250 -> Maildir (virtual)", notes,
                             "both fsync before 250 (Postfix: queue file)",
                             "Postfix default in_flow_delay=1s throttles bursts")
    return results
