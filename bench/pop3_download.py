"""pop3-download: RETR + DELE every message of a 1,000-message INBOX, then QUIT.

mailstead runs as its own process (``serve``), so the client's work does not share its GIL.
The client is a small socket reader (poplib's line-at-a-time parsing would be the
bottleneck, not the server), sending RETR n and DELE n together as RFC 2449 PIPELINING
allows. The QUIT, which commits the 1,000 deletions durably, is inside the timing.

Baseline in the same run: a minimal asyncio server that sends the same message bytes from
plain files, dot-stuffed, over loopback to the same client - the cost of moving the bytes
with no mail store, no maildrop and no protocol state. Ratio = mailstead MB/s / baseline.

With ``--peers`` (``make bench-peers``), Dovecot from Debian (dovecot-pop3d) serves the same
messages in the same run: written with CRLF into its Maildir ``new/`` as an MDA would, then
one login + QUIT outside the timing so its index is built (mailstead parsed at delivery),
then the same client doing the same RETR + DELE + QUIT. Dovecot runs with its default
``mail_fsync = optimized``. Those rows' baseline is Dovecot.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store
from bench.store_append import make_message
from mailstead.auth.passwords import hash_password
from mailstead.pop3.protocol import DotStuffer
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer

ADDRESS = "bench@example.org"
PASSWORD = "bench password"
SIZES = ((4 * 1024, "4 KiB"), (100 * 1024, "100 KiB"))


async def _populate(data_dir: Path, messages: list[bytes]) -> None:
    store = bench_store(data_dir)
    await store.open()
    try:
        await store.add_domain("example.org")
        user = await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        inbox = await store.get_mailbox(user.id, "INBOX")
        pending = list(messages)

        async def writer() -> None:
            while pending:
                await store.append(inbox.id, pending.pop(0))

        await asyncio.gather(*(writer() for _ in range(16)))
    finally:
        await store.close()


class _Client:
    """Just enough POP3 to download fast: read until the status line / the terminator."""

    def __init__(self, port: int, user: str = ADDRESS, password: str = PASSWORD) -> None:
        self.user, self.password = user, password
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = bytearray()
        self.status()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def status(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"POP3 error: {line!r}")
        return line

    def body(self) -> int:
        """Consume a multi-line body; returns its size on the wire."""
        searched = 0
        while (end := self.buf.find(b"\r\n.\r\n", searched)) < 0:
            searched = max(0, len(self.buf) - 4)
            self._fill()
        size = end + 5
        del self.buf[:size]
        return size

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.status()

    def download_all(self, count: int, *, login: bool = True) -> int:
        if login:
            self.command(f"USER {self.user}\r\n".encode())
            self.command(f"PASS {self.password}\r\n".encode())
        total = 0
        for n in range(1, count + 1):
            self.sock.sendall(b"RETR %d\r\nDELE %d\r\n" % (n, n))
            self.status()
            total += self.body()
            self.status()
        self.command(b"QUIT\r\n")
        self.sock.close()
        return total


def _measure(port: int, count: int, *, login: bool = True, user: str = ADDRESS,
             password: str = PASSWORD) -> tuple[float, int]:
    started = time.perf_counter()
    octets = _Client(port, user, password).download_all(count, login=login)
    return time.perf_counter() - started, octets


def _dovecot_download(messages: list[bytes]) -> tuple[float, int] | None:
    """Dovecot's POP3 under the same load: (seconds, octets), or None if not installed."""
    from tests.interop.dovecot import PASSWORD as DOVECOT_PASSWORD
    from tests.interop.dovecot import USER as DOVECOT_USER
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    with Dovecot(pop3=True, mail_fsync="optimized") as dovecot:
        dovecot.deliver_new(messages)
        assert dovecot.pop3_port is not None
        # Warm-up: the login syncs the Maildir and builds the index; QUIT with nothing
        # deleted changes nothing else.
        warm = _Client(dovecot.pop3_port, DOVECOT_USER, DOVECOT_PASSWORD)
        warm.command(f"USER {DOVECOT_USER}\r\n".encode())
        warm.command(f"PASS {DOVECOT_PASSWORD}\r\n".encode())
        warm.command(b"QUIT\r\n")
        warm.sock.close()
        result = _measure(dovecot.pop3_port, len(messages), user=DOVECOT_USER,
                          password=DOVECOT_PASSWORD)
        remaining = sum(1 for d in ("new", "cur") for _ in (dovecot.maildir / d).iterdir())
        if remaining:
            raise RuntimeError(f"Dovecot kept {remaining} messages after QUIT")
        return result


class _FileServer:
    """The baseline: serves ``RETR n`` from files, dot-stuffed, on its own loop and thread."""

    def __init__(self, directory: Path, count: int) -> None:
        self.paths = [directory / f"{n}.eml" for n in range(1, count + 1)]
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def start() -> None:
            server = await asyncio.start_server(self._session, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        ready.wait(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK ready\r\n")
        while line := await reader.readline():
            verb, _, arg = line.strip().partition(b" ")
            if verb == b"RETR":
                path = self.paths[int(arg) - 1]
                stuffer = DotStuffer()
                writer.write(b"+OK\r\n")
                with path.open("rb") as f:
                    while chunk := f.read(128 * 1024):
                        writer.write(stuffer.feed(chunk))
                        await writer.drain()
                writer.write(stuffer.finish())
            elif verb == b"QUIT":
                writer.write(b"+OK\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def run(env: BenchEnv) -> list[Result]:
    count = env.scale(1000, 100)
    results: list[Result] = []
    for size, label in SIZES:
        messages = [make_message(n, size) for n in range(count)]
        scratch = env.scratch(f"pop3-{size}")
        asyncio.run(_populate(scratch / "data", messages))
        files = scratch / "files"
        files.mkdir()
        for n, data in enumerate(messages, 1):
            (files / f"{n}.eml").write_bytes(data)

        # "info": SubprocessServer waits for the "mailstead ready" line.
        config = {"log": {"level": "info"}, "auth": {"allow_plaintext": True}}
        with SubprocessServer(scratch, config) as server:
            seconds, octets = _measure(server.port("pop3"), count)
        baseline_server = _FileServer(files, count)
        try:
            base_seconds, base_octets = _measure(baseline_server.port, count, login=False)
        finally:
            baseline_server.close()

        mb = octets / 1e6
        case = f"{count} x {label}"
        results.append(Result(
            "pop3-download", case, seconds, "s", base_seconds, "files over a socket",
            higher_is_better=False, notes="RETR+DELE each, QUIT commits",
        ))
        results.append(Result(
            "pop3-download", case, mb / seconds, "MB/s", base_octets / 1e6 / base_seconds,
            "files over a socket",
        ))
        if env.peers:
            dovecot = _dovecot_download(messages)
            if dovecot is not None:
                dc_seconds, dc_octets = dovecot
                results.append(Result(
                    "pop3-download", case, seconds, "s", dc_seconds, "Dovecot (Debian)",
                    higher_is_better=False, notes="same client, warm index",
                ))
                results.append(Result(
                    "pop3-download", case, mb / seconds, "MB/s", dc_octets / 1e6 / dc_seconds,
                    "Dovecot (Debian)",
                ))
    return results
