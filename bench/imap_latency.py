"""imap-latency: what one command costs a user while other users are busy.

``clients`` concurrent IMAP clients (10 and 50), each on its own account whose INBOX holds
200 corpus messages, run this cycle in a loop for a fixed time::

    [LOGIN]  SELECT INBOX  FETCH 1:20 (FLAGS ENVELOPE RFC822.SIZE)  STORE n +FLAGS (\\Flagged)
    APPEND INBOX (a 2 KiB message)  COPY n Archive  SEARCH UNSEEN
    STORE <appended> +FLAGS (\\Deleted)  EXPUNGE  [LOGOUT]

once with clients that log in once and stay ("stay"), once with a login (and logout) per
cycle ("login per cycle"). The latency of each command (request sent to tagged answer read)
is recorded per command type; the table shows p50 and p99 per type. The first second of each
run is a warm-up and is not counted.

Passwords are argon2id hashes at mailstead's default cost (``PasswordPolicy()``: t=2,
m=19 MiB, p=1); Dovecot is given the very same hash strings (its ``{ARGON2ID}`` scheme,
libsodium), so a login costs both servers the same hashing work.

The clients are asyncio tasks in the bench process, the same code for both servers; mailstead
runs as its own process (``serve``), Dovecot as itself (tests/interop/dovecot.py, Maildir,
default ``mail_fsync``). With ``--peers`` each row's baseline is Dovecot's figure for the
same command, clients and mode, measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store, percentile
from bench.imap_fetch import SERVER_CONFIG, corpus_messages
from mailstead.auth.passwords import PasswordPolicy, hash_password
from mailstead.testing.server import SubprocessServer, deep_merge

PASSWORD = "bench-password"
MESSAGES_PER_ACCOUNT = 200
COMMANDS = ("LOGIN", "SELECT", "FETCH", "STORE", "APPEND", "COPY", "SEARCH", "EXPUNGE",
            "LOGOUT")
WARMUP = 1.0
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


def _accounts(clients: int) -> list[str]:
    return [f"bench{n}" for n in range(clients)]


def _appended(n: int) -> bytes:
    body = b"".join(b"line %04d of a small message written by the latency bench\r\n" % i
                    for i in range(32))
    return (b"From: someone@example.net\r\nTo: bench@example.org\r\n"
            b"Subject: latency %d\r\nMessage-ID: <lat%d@example.net>\r\n\r\n" % (n, n)) + body


async def _populate(data_dir: Path, names: Sequence[str], seeds: Sequence[bytes],
                    password_hash: str) -> None:
    store = bench_store(data_dir)
    await store.open()
    try:
        await store.add_domain("example.org")
        for name in names:
            user = await store.add_user(f"{name}@example.org", password_hash)
            inbox = await store.get_mailbox(user.id, "INBOX")
            for n in range(MESSAGES_PER_ACCOUNT):
                await store.append(inbox.id, seeds[n % len(seeds)],
                                   ["\\Seen"] if n % 3 else [])
    finally:
        await store.close()


class _Client:
    """One IMAP connection over asyncio streams: tagged commands, literals read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.tags = 0

    @classmethod
    async def connect(cls, port: int) -> _Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        client = cls(reader, writer)
        await client._response()  # greeting
        return client

    async def _response(self) -> bytes:
        parts = [line := await self.reader.readline()]
        if not line:
            raise ConnectionError("server closed the connection")
        while (m := _LITERAL.search(line)) is not None:
            parts.append(await self.reader.readexactly(int(m.group(1))))
            parts.append(line := await self.reader.readline())
        return b"".join(parts)

    async def command(self, text: bytes) -> list[bytes]:
        """Send one command (a literal inside it must be LITERAL+); returns every response
        line, the tagged one last. Raises unless the command succeeded."""
        self.tags += 1
        tag = b"c%d " % self.tags
        self.writer.write(tag + text + b"\r\n")
        out = []
        while True:
            resp = await self._response()
            out.append(resp)
            if resp.startswith(tag):
                if not resp[len(tag):].startswith(b"OK"):
                    raise RuntimeError(f"{text[:60]!r} -> {resp!r}")
                return out

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def _run_load(port: int, names: Sequence[str], per_cycle_login: bool,
                    seconds: float) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = defaultdict(list)
    start = time.monotonic()
    stop = start + WARMUP + seconds
    counter = 0

    async def timed(client: _Client, kind: str, text: bytes) -> list[bytes]:
        began = time.monotonic()
        out = await client.command(text)
        if began >= start + WARMUP:
            samples[kind].append(time.monotonic() - began)
        return out

    async def user(name: str) -> None:
        nonlocal counter
        client: _Client | None = None
        login = b"LOGIN %s %s" % (name.encode(), PASSWORD.encode())
        while time.monotonic() < stop:
            if client is None:
                client = await _Client.connect(port)
                await timed(client, "LOGIN", login)
            counter += 1
            n = counter
            await timed(client, "SELECT", b"SELECT INBOX")
            await timed(client, "FETCH", b"FETCH 1:20 (FLAGS ENVELOPE RFC822.SIZE)")
            await timed(client, "STORE", b"STORE %d +FLAGS (\\Flagged)" % (n % 20 + 1))
            message = _appended(n)
            out = await timed(client, "APPEND",
                              b"APPEND INBOX {%d+}\r\n%s" % (len(message), message))
            m = _APPENDUID.search(out[-1])
            await timed(client, "COPY", b"COPY %d Archive" % (n % 20 + 1))
            await timed(client, "SEARCH", b"SEARCH UNSEEN")
            if m is not None:
                await client.command(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % m.group(1))
            await timed(client, "EXPUNGE", b"EXPUNGE")
            if per_cycle_login:
                await timed(client, "LOGOUT", b"LOGOUT")
                await client.close()
                client = None
        if client is not None:
            await client.command(b"LOGOUT")
            await client.close()

    await asyncio.gather(*(user(name) for name in names))
    return samples


def _measure(port: int, names: Sequence[str], per_cycle_login: bool,
             seconds: float) -> dict[str, list[float]]:
    return asyncio.run(_run_load(port, names, per_cycle_login, seconds))


def _mailstead(env: BenchEnv, clients: int, seeds: Sequence[bytes], password_hash: str,
               seconds: float) -> dict[bool, dict[str, list[float]]]:
    scratch = env.scratch(f"imap-latency-{clients}")
    names = _accounts(clients)
    asyncio.run(_populate(scratch / "data", names, seeds, password_hash))
    config = deep_merge(SERVER_CONFIG, {
        "limits": {"max_connections": 4 * clients, "max_connections_per_ip": 4 * clients},
    })
    out = {}
    with SubprocessServer(scratch, config) as server:
        port = server.port("imap")
        for per_cycle in (False, True):
            out[per_cycle] = _measure(port, [f"{n}@example.org" for n in names], per_cycle,
                                      seconds)
    return out


def _dovecot(clients: int, seeds: Sequence[bytes], password_hash: str,
             seconds: float) -> dict[bool, dict[str, list[float]]] | None:
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    names = _accounts(clients)
    users = [(name, "{ARGON2ID}" + password_hash) for name in names]
    out = {}
    with Dovecot(users, mail_fsync="optimized") as dovecot:
        for name in names:
            dovecot.deliver([seeds[n % len(seeds)] for n in range(MESSAGES_PER_ACCOUNT)],
                            user=name)

        async def prepare() -> None:
            for name in names:
                client = await _Client.connect(dovecot.port)
                await client.command(b"LOGIN %s %s" % (name.encode(), PASSWORD.encode()))
                await client.command(b"CREATE Archive")  # mailstead makes it for every account
                await client.command(b"SELECT INBOX")  # builds the index, as delivery did
                await client.command(b"STORE 1:* +FLAGS.SILENT (\\Seen)")
                await client.command(b"LOGOUT")
                await client.close()

        asyncio.run(prepare())
        for per_cycle in (False, True):
            out[per_cycle] = _measure(dovecot.port, names, per_cycle, seconds)
    return out


def run(env: BenchEnv) -> list[Result]:
    seeds = corpus_messages(limit=MESSAGES_PER_ACCOUNT)
    password_hash = hash_password(PASSWORD, PasswordPolicy())
    seconds = env.scale(8, 2)
    results: list[Result] = []
    for clients in (10, 50) if not env.quick else (10,):
        ours = _mailstead(env, clients, seeds, password_hash, seconds)
        theirs = _dovecot(clients, seeds, password_hash, seconds) if env.peers else None
        for per_cycle in (False, True):
            mode = "login per cycle" if per_cycle else "stay"
            for kind in COMMANDS:
                mine = ours[per_cycle].get(kind)
                if not mine:
                    continue
                base = theirs[per_cycle].get(kind) if theirs else None
                p50, p99 = percentile(mine, 50) * 1e3, percentile(mine, 99) * 1e3
                notes = f"p99 {p99:.1f} ms, n={len(mine)}"
                baseline = None
                if base:
                    baseline = percentile(base, 50) * 1e3
                    notes += f"; Dovecot p99 {percentile(base, 99) * 1e3:.1f} ms, n={len(base)}"
                results.append(Result(
                    "imap-latency", f"{clients} clients, {mode}: {kind} p50", p50, "ms",
                    baseline, "Dovecot (Debian)" if baseline is not None else "",
                    higher_is_better=False, notes=notes,
                ))
    return results
