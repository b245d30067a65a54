"""jmap-push: from an SMTP 250 to the JMAP EventSource clients of the recipient.

1,000 EventSource connections (RFC 8620 §7.3; 100 under ``--quick``) over 100 accounts (10
devices each) stay open on one server; one SMTP client sends a message at a time to a
random account and notes when the final 250 arrives. Each of that account's connections
notes when its ``state`` event arrives. Latency is event minus 250 (an event may come a
hair before the client has read its 250: that counts as 0). The issue's target: p99 ≤ 1 s.

The server runs as its own process; the clients are asyncio connections in the bench
process, raw HTTP and SMTP on sockets (httpx would cost more per stream than the server).
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store, percentile
from bench.imap_fetch import SERVER_CONFIG
from mailstead.auth.passwords import hash_password
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer, deep_merge

ACCOUNTS = 100
PASSWORD = "bench-password"


def address(n: int) -> str:
    return f"user{n}@example.org"


async def populate(data_dir: Path) -> None:
    store = bench_store(data_dir)
    await store.open()
    try:
        await store.add_domain("example.org")
        secret = hash_password(PASSWORD, TEST_PASSWORD_POLICY)
        for n in range(ACCOUNTS):
            await store.add_user(address(n), secret)
    finally:
        await store.close()


class Watcher:
    """One EventSource connection of one account: the times its state events came."""

    def __init__(self, account: int) -> None:
        self.account = account
        self.events: list[float] = []
        self.ready = asyncio.Event()

    async def run(self, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        token = base64.b64encode(f"{address(self.account)}:{PASSWORD}".encode()).decode()
        writer.write(
            b"GET /jmap/eventsource?types=Email&closeafter=no&ping=0 HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            + f"Authorization: Basic {token}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"event source refused: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.ready.set()
        reading = asyncio.ensure_future(self._read(reader))
        await stop.wait()
        reading.cancel()
        writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.rstrip(b"\r\n").endswith(b"event: state"):
                self.events.append(time.perf_counter())


async def _smtp_send(port: int, rcpt: str, n: int) -> float:
    """One message over SMTP; the time its final 250 was read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line

    await reply()
    for command in (b"EHLO bench.example", b"MAIL FROM:<sender@example.net>",
                    f"RCPT TO:<{rcpt}>".encode(), b"DATA"):
        writer.write(command + b"\r\n")
        await writer.drain()
        await reply()
    writer.write(b"Subject: push %d\r\nFrom: sender@example.net\r\n\r\nHello.\r\n.\r\n" % n)
    await writer.drain()
    answer = await reply()
    done = time.perf_counter()
    if not answer.startswith(b"250"):
        raise RuntimeError(f"DATA refused: {answer!r}")
    writer.write(b"QUIT\r\n")
    writer.close()
    return done


async def _measure(server: SubprocessServer, clients: int, messages: int
                   ) -> tuple[list[float], int]:
    stop = asyncio.Event()
    watchers = [Watcher(n % ACCOUNTS) for n in range(clients)]
    tasks = [asyncio.ensure_future(w.run(server.port("http"), stop)) for w in watchers]
    await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in watchers)), 120)
    rng = random.Random(7)
    latencies: list[float] = []
    missed = 0
    try:
        for n in range(messages):
            account = rng.randrange(ACCOUNTS)
            mine = [w for w in watchers if w.account == account]
            before = [len(w.events) for w in mine]
            sent = await _smtp_send(server.port("smtp"), address(account), n)
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline and any(
                    len(w.events) == b for w, b in zip(mine, before, strict=True)):
                await asyncio.sleep(0.005)
            for watcher, seen in zip(mine, before, strict=True):
                if len(watcher.events) > seen:
                    latencies.append(max(0.0, watcher.events[seen] - sent))
                else:
                    missed += 1
            await asyncio.sleep(0.05)  # past the push coalescing window
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, missed


def run(env: BenchEnv) -> list[Result]:
    clients = env.scale(1000, 100)
    messages = env.scale(200, 30)
    scratch = env.scratch("jmap-push")
    asyncio.run(populate(scratch / "data"))
    config = deep_merge(SERVER_CONFIG, {"limits": {"max_connections": clients + 200,
                                                   "max_connections_per_ip": clients + 100}})
    with SubprocessServer(scratch, config) as server:
        latencies, missed = asyncio.run(_measure(server, clients, messages))
    return [Result(
        "jmap-push", f"{clients} EventSource clients, {messages} messages",
        percentile(latencies, 99) * 1000, "ms p99", 1000.0, "issue #15 target",
        higher_is_better=False,
        notes=f"p50 {percentile(latencies, 50) * 1000:.1f} ms; {len(latencies)} events,"
              f" {missed} missed")]
