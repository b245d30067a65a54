"""imap-sync: 50 concurrent clients doing a mixed load on one account - operations per
second and p99 latency.

mailstead runs as its own process (``serve``); the 50 clients are asyncio connections in the
bench process, so client work does not share the server's GIL. Every client logs in to the
same account (the many-devices case: each change fans out to every other session as
untagged EXISTS / EXPUNGE / FETCH, which the clients read) and loops over a weighted mix,
all by UID since other sessions keep expunging:

- ``SELECT INBOX`` (weight 1)
- ``UID FETCH a:a+19 (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])`` (4)
- ``UID STORE u +FLAGS/-FLAGS (\\Flagged)`` (3)
- ``APPEND INBOX (\\Seen) {n+}`` with a corpus message (1)
- ``UID STORE u +FLAGS.SILENT (\\Deleted)`` then ``UID EXPUNGE u`` (1, two operations)

One operation is one command; latency is from sending it to its tagged reply. The INBOX
starts with 2,000 corpus messages (500 under --quick); APPEND and EXPUNGE keep it about
that size.

Baseline in the same run ("Store API, no IMAP"): the same mix, weights and concurrency (50
tasks) calling the store directly in one process - ``list_messages`` for SELECT, the
stored structure plus the header bytes for FETCH, ``store_flags``, ``append``,
``store_flags`` + ``expunge`` - for a shorter period. It is the floor under any protocol
front end on this store; the ratio says what the IMAP layer and the socket cost.

With ``--peers`` (``make bench-peers``), the same 50 clients run the same mix for the same
time against Dovecot from Debian (tests/interop/dovecot.py, 127.0.0.1, a Maildir holding the
same corpus messages), reported as a second baseline.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store, percentile
from bench.imap_fetch import ADDRESS, PASSWORD, SERVER_CONFIG, corpus_messages, populate
from mailstead.core.types import FlagMode
from mailstead.mime.stored import StoredStructure
from mailstead.testing.server import SubprocessServer, deep_merge

CLIENTS = 50
WEIGHTS = (("select", 1), ("fetch", 4), ("store", 3), ("append", 1), ("expunge", 1))
HEADER_FIELDS = "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)]"
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def _op_sequence(rng: random.Random) -> Iterator[str]:
    names = [name for name, weight in WEIGHTS for _ in range(weight)]
    while True:
        yield rng.choice(names)


class Shared:
    """What the clients know together: the highest UID so far, and the recorded latencies."""

    def __init__(self, top_uid: int, messages: list[bytes]) -> None:
        self.top_uid = top_uid
        self.messages = messages
        self.latencies: list[float] = []
        self.errors = 0

    def pick_uid(self, rng: random.Random) -> int:
        # Mostly recent messages (where clients act), sometimes anywhere.
        if rng.random() < 0.7:
            return max(1, self.top_uid - rng.randrange(500))
        return rng.randrange(1, self.top_uid + 1)


class Client:
    """An asyncio IMAP client that reads (and drops) whatever untagged data arrives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.tags = 0

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        client = cls(reader, writer)
        await client._response()
        return client

    async def _response(self) -> bytes:
        first = line = await self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        while (m := _LITERAL.search(line)) is not None:
            await self.reader.readexactly(int(m.group(1)))
            line = await self.reader.readline()
        return first

    async def command(self, text: bytes, literal: bytes | None = None) -> bytes:
        self.tags += 1
        tag = b"s%d " % self.tags
        if literal is None:
            self.writer.write(tag + text + b"\r\n")
        else:  # LITERAL+ (RFC 7888): no continuation round trip
            self.writer.write(tag + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        while True:
            line = await self._response()
            if line.startswith(tag):
                if not line[len(tag):].startswith(b"OK"):
                    raise RuntimeError(f"{text[:60]!r} -> {line!r}")
                return line

    async def close(self) -> None:
        self.writer.close()


async def _client_loop(port: int, shared: Shared, seed: int, deadline: float,
                       login: tuple[str, str]) -> int:
    rng = random.Random(seed)
    client = await Client.connect(port)
    ops = 0
    try:
        await client.command(f'LOGIN "{login[0]}" "{login[1]}"'.encode())
        await client.command(b"SELECT INBOX")
        for op in _op_sequence(rng):
            if time.monotonic() >= deadline:
                break
            commands: list[tuple[bytes, bytes | None]]
            uid = shared.pick_uid(rng)
            if op == "select":
                commands = [(b"SELECT INBOX", None)]
            elif op == "fetch":
                commands = [(b"UID FETCH %d:%d (UID FLAGS %s)"
                             % (uid, uid + 19, HEADER_FIELDS.encode()), None)]
            elif op == "store":
                sign = b"+" if rng.random() < 0.5 else b"-"
                commands = [(b"UID STORE %d %sFLAGS (\\Flagged)" % (uid, sign), None)]
            elif op == "append":
                data = shared.messages[rng.randrange(len(shared.messages))]
                commands = [(b"APPEND INBOX (\\Seen)", data)]
            else:
                commands = [(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid, None),
                            (b"UID EXPUNGE %d" % uid, None)]
            for text, literal in commands:
                started = time.perf_counter()
                try:
                    reply = await client.command(text, literal)
                except RuntimeError:
                    shared.errors += 1
                    continue
                shared.latencies.append(time.perf_counter() - started)
                ops += 1
                if literal is not None and (m := _APPENDUID.search(reply)):
                    shared.top_uid = max(shared.top_uid, int(m.group(1)))
        await client.command(b"LOGOUT")
    finally:
        await client.close()
    return ops


async def _imap_load(port: int, top_uid: int, messages: list[bytes], seconds: float,
                     login: tuple[str, str] = (ADDRESS, PASSWORD)) -> tuple[int, float, Shared]:
    shared = Shared(top_uid, messages)
    started = time.monotonic()
    deadline = started + seconds
    counts = await asyncio.gather(*(
        _client_loop(port, shared, seed, deadline, login) for seed in range(CLIENTS)
    ))
    return sum(counts), time.monotonic() - started, shared


async def _store_load(data_dir: Path, top_uid: int, messages: list[bytes],
                      seconds: float) -> tuple[int, float, Shared]:
    """The baseline: the same mix straight on the Store API, 50 tasks, one process."""
    store = bench_store(data_dir)
    await store.open()
    shared = Shared(top_uid, messages)
    try:
        user = await store.find_user(ADDRESS)
        assert user is not None
        inbox = (await store.get_mailbox(user.id, "INBOX")).id

        async def fetch_headers(uid: int) -> None:
            for meta in await store.list_messages(inbox, [(uid, uid + 19)]):
                structure = StoredStructure(await store.get_structure(meta.blob_id))
                await store.read_blob(meta.blob_id, 0, structure.header_end)

        async def worker(seed: int, deadline: float) -> int:
            rng = random.Random(seed)
            ops = 0
            for op in _op_sequence(rng):
                if time.monotonic() >= deadline:
                    break
                uid = shared.pick_uid(rng)
                started = time.perf_counter()
                if op == "select":
                    await store.get_mailbox(user.id, "INBOX")
                    await store.list_messages(inbox)
                elif op == "fetch":
                    await fetch_headers(uid)
                elif op == "store":
                    mode = FlagMode.ADD if rng.random() < 0.5 else FlagMode.REMOVE
                    await store.store_flags(inbox, [uid], mode, ["\\Flagged"])
                elif op == "append":
                    data = messages[rng.randrange(len(messages))]
                    result = await store.append(inbox, data, ["\\Seen"])
                    shared.top_uid = max(shared.top_uid, int(result.uid))
                else:
                    await store.store_flags(inbox, [uid], FlagMode.ADD, ["\\Deleted"])
                    shared.latencies.append(time.perf_counter() - started)
                    ops += 1
                    started = time.perf_counter()
                    await store.expunge(inbox, [uid])
                shared.latencies.append(time.perf_counter() - started)
                ops += 1
            return ops

        started = time.monotonic()
        deadline = started + seconds
        counts = await asyncio.gather(*(worker(seed, deadline) for seed in range(CLIENTS)))
        return sum(counts), time.monotonic() - started, shared
    finally:
        await store.close()


def _dovecot_load(count: int, seeds: list[bytes], messages: list[bytes],
                  seconds: float) -> tuple[int, float, Shared] | None:
    """The same clients and mix against Dovecot from Debian, its INBOX a Maildir holding the
    same ``count`` corpus messages (UIDs 1..count). Dovecot's defaults, including
    ``mail_fsync = optimized``; only the per-user connection cap is raised for 50 clients."""
    from tests.interop.dovecot import PASSWORD as DOVECOT_PASSWORD
    from tests.interop.dovecot import USER as DOVECOT_USER
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    extra = f"protocol imap {{\n  mail_max_userip_connections = {CLIENTS + 10}\n}}\n"
    with Dovecot(mail_fsync="optimized", extra_config=extra) as dovecot:
        dovecot.deliver(seeds[:count])
        return asyncio.run(_imap_load(dovecot.port, count, messages, seconds,
                                      (DOVECOT_USER, DOVECOT_PASSWORD)))


def run(env: BenchEnv) -> list[Result]:
    seconds = env.scale(30, 5)
    base_seconds = env.scale(10, 2)
    count = env.scale(2000, 500)
    seeds = corpus_messages()
    messages = seeds[:400]
    scratch = env.scratch("imap-sync")
    asyncio.run(populate(scratch / "data", count, seeds))
    config = deep_merge(SERVER_CONFIG, {"limits": {"max_connections_per_ip": CLIENTS + 10}})
    with SubprocessServer(scratch, config) as server:
        ops, elapsed, shared = asyncio.run(
            _imap_load(server.port("imap"), count, messages, seconds)
        )
    # The baseline starts from the mailbox the IMAP run left (about the same size).
    base_ops, base_elapsed, base = asyncio.run(
        _store_load(scratch / "data", shared.top_uid, messages, base_seconds)
    )
    case = f"{CLIENTS} clients, {seconds}s"
    notes = f"{ops:,} ops, {shared.errors} NO/BAD"
    results = []
    if env.peers:
        peer = _dovecot_load(count, seeds, messages, seconds)
        if peer is not None:
            peer_ops, peer_elapsed, peer_shared = peer
            peer_notes = (f"Dovecot {peer_ops:,} ops, {peer_shared.errors} NO/BAD; "
                          "mail_fsync=optimized, mailstead fsyncs every change")
            results += [
                Result("imap-sync", case, ops / elapsed, "ops/s", peer_ops / peer_elapsed,
                       "Dovecot (Debian)", notes=peer_notes),
                Result("imap-sync", case, percentile(shared.latencies, 99) * 1000, "ms p99",
                       percentile(peer_shared.latencies, 99) * 1000, "Dovecot (Debian)",
                       higher_is_better=False,
                       notes=f"Dovecot median "
                             f"{percentile(peer_shared.latencies, 50) * 1000:.1f} ms"),
            ]
    return [
        Result("imap-sync", case, ops / elapsed, "ops/s", base_ops / base_elapsed,
               "Store API, no IMAP", notes=notes),
        Result("imap-sync", case, percentile(shared.latencies, 99) * 1000, "ms p99",
               percentile(base.latencies, 99) * 1000, "Store API, no IMAP",
               higher_is_better=False,
               notes=f"median {percentile(shared.latencies, 50) * 1000:.1f} ms"),
        *results,
    ]
