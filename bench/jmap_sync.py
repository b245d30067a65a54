"""jmap-sync and jmap-query: JMAP (RFC 8621) under load, beside IMAP on the same store.

jmap-sync: 50 concurrent clients on one account (the many-devices case, as imap-sync)
looping over a weighted mix, each a JMAP request over HTTP/1.1 keep-alive:

- the first page of the INBOX: ``Email/query`` (inMailbox, receivedAt descending, 50) and
  ``Email/get`` of its ids by back-reference (subject, from, receivedAt, keywords,
  preview) in one request (weight 4)
- ``Email/set`` of one email's ``$flagged`` keyword, on or off (3)
- ``Email/changes`` since the client's last state, then ``Email/get`` of what changed (2)

One operation is one request; latency is from sending it to its answer. The baseline in the
same run is imap-sync's mix (bench/imap_sync.py) with the same 50 clients on the same
server and store, for the same time: what the same devices cost over IMAP.

jmap-query: the first page (50) of a large INBOX sorted by receivedAt, newest first,
``calculateTotal`` on, asked by one client 30 times after a warm-up: p50 and p95. The
issue's target is 95% under 50 ms at 100,000 messages; ``--quick`` uses 5,000.

Every message is distinct (a seed from the corpus with an ``X-Bench`` header of its
number): JMAP counts a body once per account, where imap_fetch's copies would collapse.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import BenchEnv, Result, bench_store, percentile
from bench.imap_fetch import ADDRESS, PASSWORD, SERVER_CONFIG, corpus_messages
from bench.imap_sync import CLIENTS, _imap_load
from mailstead.auth.passwords import hash_password
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer, deep_merge

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
WEIGHTS = (("page", 4), ("flag", 3), ("changes", 2))
PAGE = 50


def distinct(seeds: list[bytes], n: int) -> bytes:
    """Message ``n``: a corpus seed made unique by a header field."""
    return b"X-Bench: %d\r\n" % n + seeds[n % len(seeds)]


async def populate(data_dir: Path, count: int, seeds: list[bytes]) -> None:
    """``count`` distinct messages in INBOX of ADDRESS (one in three \\Seen)."""
    store = bench_store(data_dir)
    await store.open()
    try:
        await store.add_domain("example.org")
        user = await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        inbox = await store.get_mailbox(user.id, "INBOX")
        pending = iter(range(count))

        async def writer() -> None:
            for n in pending:
                await store.append(inbox.id, distinct(seeds, n), ["\\Seen"] if n % 3 == 0 else [])

        await asyncio.gather(*(writer() for _ in range(32)))
    finally:
        await store.close()


class JMAPClient:
    def __init__(self, port: int) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                      auth=(ADDRESS, PASSWORD), timeout=120)
        self.account = ""
        self.inbox = ""
        self.state = ""

    async def start(self) -> None:
        session = (await self.http.get("/jmap/session")).json()
        self.account = session["primaryAccounts"][MAIL]
        boxes = await self.call(("Mailbox/get", {"ids": None, "properties": ["role"]}))
        self.inbox = next(m["id"] for m in boxes[0][1]["list"] if m["role"] == "inbox")
        self.state = (await self.call(("Email/get", {"ids": []})))[0][1]["state"]

    async def call(self, *calls: tuple[str, dict[str, Any]]) -> list[list[Any]]:
        body = {"using": [CORE, MAIL], "methodCalls": [
            [name, {"accountId": self.account, **args}, str(n)]
            for n, (name, args) in enumerate(calls)]}
        response = await self.http.post("/jmap/api", json=body)
        response.raise_for_status()
        answers: list[list[Any]] = response.json()["methodResponses"]
        if any(a[0] == "error" for a in answers):
            raise RuntimeError(f"{calls[0][0]}: {answers}")
        return answers

    async def first_page(self, total: bool = False) -> list[list[Any]]:
        return await self.call(
            ("Email/query", {"filter": {"inMailbox": self.inbox}, "limit": PAGE,
                             "sort": [{"property": "receivedAt", "isAscending": False}],
                             "calculateTotal": total}),
            ("Email/get", {"#ids": {"resultOf": "0", "name": "Email/query", "path": "/ids"},
                           "properties": ["subject", "from", "receivedAt", "keywords",
                                          "preview"]}),
        )


async def _jmap_load(port: int, seconds: float) -> tuple[int, float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    ids: list[str] = []

    async def client_loop(seed: int, deadline: float) -> int:
        nonlocal errors
        rng = random.Random(seed)
        names = [name for name, weight in WEIGHTS for _ in range(weight)]
        client = JMAPClient(port)
        await client.start()
        ops = 0
        try:
            while time.monotonic() < deadline:
                op = rng.choice(names)
                started = time.perf_counter()
                try:
                    if op == "page" or not ids:
                        page = await client.first_page()
                        ids[:] = page[0][1]["ids"] or ids
                    elif op == "flag":
                        target = ids[rng.randrange(len(ids))]
                        value = True if rng.random() < 0.5 else None
                        await client.call(("Email/set", {
                            "update": {target: {"keywords/$flagged": value}}}))
                    else:
                        changes = await client.call(("Email/changes", {
                            "sinceState": client.state, "maxChanges": 500}))
                        answer = changes[0][1]
                        client.state = answer["newState"]
                        changed = answer["created"] + answer["updated"]
                        if changed:
                            await client.call(("Email/get", {
                                "ids": changed[:500], "properties": ["keywords"]}))
                except (RuntimeError, httpx.HTTPError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                ops += 1
        finally:
            await client.http.aclose()
        return ops

    started = time.monotonic()
    deadline = started + seconds
    counts = await asyncio.gather(*(client_loop(seed, deadline) for seed in range(CLIENTS)))
    return sum(counts), time.monotonic() - started, latencies, errors


async def _query_latency(port: int, repeats: int) -> tuple[list[float], int]:
    client = JMAPClient(port)
    await client.start()
    try:
        total = 0
        for _ in range(3):  # warm-up: caches, the account's first reads
            total = (await client.first_page(total=True))[0][1]["total"]
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            await client.call(("Email/query", {
                "filter": {"inMailbox": client.inbox}, "limit": PAGE, "calculateTotal": True,
                "sort": [{"property": "receivedAt", "isAscending": False}]}))
            samples.append(time.perf_counter() - started)
        return samples, total
    finally:
        await client.http.aclose()


def run(env: BenchEnv) -> list[Result]:
    seconds = env.scale(30, 5)
    count = env.scale(2000, 500)
    big = env.scale(100_000, 5_000)
    seeds = corpus_messages()
    config = deep_merge(SERVER_CONFIG, {"limits": {"max_connections_per_ip": CLIENTS + 10},
                                        "jmap": {"max_concurrent_requests": CLIENTS}})
    scratch = env.scratch("jmap-sync")
    asyncio.run(populate(scratch / "data", count, seeds))
    with SubprocessServer(scratch, config) as server:
        ops, elapsed, latencies, errors = asyncio.run(_jmap_load(server.port("http"), seconds))
        imap_ops, imap_elapsed, imap = asyncio.run(
            _imap_load(server.port("imap"), count, seeds[:400], seconds))
    case = f"{CLIENTS} clients, {seconds}s"
    rows = [
        Result("jmap-sync", case, ops / elapsed, "ops/s", imap_ops / imap_elapsed,
               "imap-sync mix, same server", notes=f"{ops:,} requests, {errors} errors"),
        Result("jmap-sync", case, percentile(latencies, 99) * 1000, "ms p99",
               percentile(imap.latencies, 99) * 1000, "imap-sync mix, same server",
               higher_is_better=False,
               notes=f"median {percentile(latencies, 50) * 1000:.1f} ms"),
    ]
    scratch = env.scratch("jmap-query")
    started = time.monotonic()
    asyncio.run(populate(scratch / "data", big, seeds))
    filled = time.monotonic() - started
    with SubprocessServer(scratch, config) as server:
        samples, total = asyncio.run(_query_latency(server.port("http"), 30))
    rows.append(Result(
        "jmap-query", f"first {PAGE} of {total:,}, receivedAt", percentile(samples, 95) * 1000,
        "ms p95", 50.0, "issue #15 target", higher_is_better=False,
        notes=f"p50 {percentile(samples, 50) * 1000:.1f} ms; filled in {filled:.0f}s"))
    return rows
