"""http-api: the admin API's reads and writes per second and p99, and what API traffic
costs SMTP and IMAP on the same server.

mailstead runs as its own process (``serve``). Measured, on one server:

1. **API reads**: 10 keep-alive clients (httpx) loop on ``GET /api/v1/users?domain=`` (a
   token check, one store read, JSON of 11 accounts). Baseline in the same run: the same
   clients on ``GET /health`` (the HTTP stack and one store read, no token, no FastAPI).
2. **API writes**: 10 clients loop on ``POST /api/v1/aliases`` (a new alias each: scope
   check, durable commit with its audit record). Baseline: the same 10-way concurrency
   adding aliases through the store API in one process after the server stopped (the
   floor under any front end on this store; the ratio is what HTTP, FastAPI, the token
   and the audit record cost).
3. **smtp-receive and imap-sync, with and without API load**: the smtp-receive client
   (10 sessions, BDAT pipelined) and the imap-sync mix (50 clients) run once alone and
   once while another process sends an admin's API traffic: 50 requests a second, four
   reads to one write. The ratio (alone / with) near 1.0 means the API costs the mail
   protocols nothing measurable at that rate.

``--quick``: shorter periods and fewer messages.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import imap_sync, smtp_receive
from bench.harness import BenchEnv, Result, percentile
from bench.imap_fetch import ADDRESS, corpus_messages, populate
from bench.store_append import make_message
from mailstead.admin.actors import command_line
from mailstead.cli.serve import build_admin, parse_structure
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import SubprocessServer, build_settings, settings_dict_for_tests

CLIENTS = 10
DOMAIN = "example.org"
#: Requests a second of the background admin traffic in part 3, and its read share.
BACKGROUND_RATE = 50
BACKGROUND_READS = 4  # reads per write
MAX_IN_FLIGHT = 20


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0


async def _prepare(data_dir: Path, messages: int) -> str:
    """Accounts for SMTP (user0..9@), the IMAP account with ``messages`` in INBOX, and an
    admin token; returns the token."""
    await populate(data_dir, messages, corpus_messages())
    settings = build_settings(settings_dict_for_tests(data_dir))
    async with SQLiteStore(data_dir, parse=parse_structure) as store:
        for index in range(smtp_receive.SESSIONS):
            await store.add_user(smtp_receive.rcpt_for(index), "unused")
        admin = build_admin(store, settings)
        return (await admin.create_token(command_line(), "bench", "admin")).text


async def _loop(base: str, token: str | None, seconds: float, request: Any) -> Load:
    """CLIENTS clients sending ``request(client, client_no, n)`` as fast as answered."""
    load = Load()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.perf_counter() + seconds

    async def client_loop(number: int) -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            n = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await request(client, number, n)
                load.latencies.append(time.perf_counter() - started)
                load.requests += 1
                if response.status_code >= 400:
                    load.errors += 1
                n += 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(i) for i in range(CLIENTS)))
    load.elapsed = time.perf_counter() - started
    return load


async def _reads(client: httpx.AsyncClient, _: int, __: int) -> httpx.Response:
    return await client.get("/api/v1/users", params={"domain": DOMAIN})


async def _health(client: httpx.AsyncClient, _: int, __: int) -> httpx.Response:
    return await client.get("/health")


async def _writes(client: httpx.AsyncClient, number: int, n: int) -> httpx.Response:
    return await client.post("/api/v1/aliases", json={
        "source": f"w{number}-{n}@{DOMAIN}", "targets": [ADDRESS]})


async def _store_writes(data_dir: Path, seconds: float) -> Load:
    load = Load()
    async with SQLiteStore(data_dir, parse=parse_structure) as store:
        deadline = time.perf_counter() + seconds

        async def worker(number: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await store.add_alias(f"s{number}-{n}@{DOMAIN}", [ADDRESS])
                load.latencies.append(time.perf_counter() - started)
                load.requests += 1
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
        load.elapsed = time.perf_counter() - started
    return load


async def _background(base: str, token: str, stop: Any, counts: Any) -> None:
    """An admin's steady traffic at BACKGROUND_RATE, until ``stop`` is set: requests start
    on schedule whether or not earlier ones were answered (an open loop, as independent
    admin tools are), at most MAX_IN_FLIGHT at a time."""
    interval = 1.0 / BACKGROUND_RATE
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as client:

        async def one(n: int) -> None:
            async with in_flight:
                if n % (BACKGROUND_READS + 1) == BACKGROUND_READS:
                    response = await client.post("/api/v1/aliases", json={
                        "source": f"b{n}@{DOMAIN}", "targets": [ADDRESS]})
                else:
                    response = await client.get("/api/v1/users", params={"domain": DOMAIN})
            counts[0] += 1
            if response.status_code >= 400:
                counts[1] += 1

        tasks: set[asyncio.Task[None]] = set()
        n = 0
        next_at = time.perf_counter()
        while not stop.is_set():
            task = asyncio.ensure_future(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.gather(*tasks)


def _background_process(base: str, token: str, stop: Any, counts: Any) -> None:
    asyncio.run(_background(base, token, stop, counts))


class Background:
    """The admin traffic of part 3, in its own process (its own GIL, like a real admin)."""

    def __init__(self, base: str, token: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.counts = context.Array("i", 2)
        self.process = context.Process(target=_background_process,
                                       args=(base, token, self.stop, self.counts))
        self.started = 0.0
        self._sent_before = 0
        self.rate = 0.0

    def __enter__(self) -> Background:
        self.process.start()
        # Starting Python and importing takes a while: measure only once it sends.
        deadline = time.monotonic() + 60
        while self.counts[0] < BACKGROUND_RATE and self.process.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the API traffic did not start")
            time.sleep(0.05)
        if not self.process.is_alive():
            raise RuntimeError("the API traffic process died")
        self.started = time.perf_counter()
        self._sent_before = self.counts[0]
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.started
        self.rate = (self.counts[0] - self._sent_before) / elapsed if elapsed else 0.0
        self.stop.set()
        self.process.join(timeout=30)
        if self.counts[1]:
            raise RuntimeError(f"{self.counts[1]} API requests failed under load")


def run(env: BenchEnv) -> list[Result]:
    seconds = env.scale(10, 3)
    smtp_count = env.scale(200, 30)
    imap_seconds = env.scale(15, 4)
    count = env.scale(2000, 300)
    scratch = env.scratch("http-api")
    server = SubprocessServer(scratch, {
        "auth": {"allow_plaintext": True}, "log": {"level": "warning"},
        "limits": {"max_connections_per_ip": imap_sync.CLIENTS + 40}})
    token = asyncio.run(_prepare(server.data_dir, count))
    base = f"http://127.0.0.1:{server.port('http')}"
    messages = [make_message(n, smtp_receive.SIZE)[:-2] + b"\r\n" for n in range(64)]
    imap_messages = corpus_messages()[:400]
    with server:
        health = asyncio.run(_loop(base, None, seconds, _health))
        reads = asyncio.run(_loop(base, token, seconds, _reads))
        writes = asyncio.run(_loop(base, token, seconds, _writes))
        smtp_port, imap_port = server.port("smtp"), server.port("imap")
        smtp_alone = asyncio.run(smtp_receive.load(smtp_port, "bdat", smtp_count, messages,
                                                   smtp_receive.WINDOW))
        with Background(base, token) as smtp_bg:
            smtp_loaded = asyncio.run(smtp_receive.load(smtp_port, "bdat", smtp_count,
                                                        messages, smtp_receive.WINDOW))
        imap_alone = asyncio.run(imap_sync._imap_load(imap_port, count, imap_messages,
                                                      imap_seconds))
        with Background(base, token) as imap_bg:
            imap_loaded = asyncio.run(imap_sync._imap_load(
                imap_port, imap_alone[2].top_uid, imap_messages, imap_seconds))
        server.terminate()
        server.wait()
    store_writes = asyncio.run(_store_writes(server.data_dir, seconds))
    for load, name in ((health, "health"), (reads, "reads"), (writes, "writes")):
        if load.errors:
            raise RuntimeError(f"{load.errors} of {load.requests} {name} failed")

    def p99(load: Load) -> float:
        return percentile(load.latencies, 99) * 1000

    clients = f"{CLIENTS} clients, {seconds}s"
    bg = f"{BACKGROUND_RATE} API req/s ({BACKGROUND_READS}:1 reads:writes)"
    imap_alone_ops, imap_alone_time, imap_alone_shared = imap_alone
    imap_ops, imap_time, imap_shared = imap_loaded
    return [
        Result("http-api", f"admin reads (GET /users), {clients}", reads.rate, "req/s",
               health.rate, "GET /health, same clients", notes=f"{reads.requests:,} requests"),
        Result("http-api", "admin reads p99", p99(reads), "ms", p99(health),
               "GET /health, same clients", higher_is_better=False,
               notes=f"median {percentile(reads.latencies, 50) * 1000:.1f} ms"),
        Result("http-api", f"admin writes (POST /aliases), {clients}", writes.rate, "req/s",
               store_writes.rate, "Store API add_alias, no HTTP",
               notes="each: a commit with its audit record"),
        Result("http-api", "admin writes p99", p99(writes), "ms", p99(store_writes),
               "Store API add_alias, no HTTP", higher_is_better=False,
               notes=f"median {percentile(writes.latencies, 50) * 1000:.1f} ms"),
        Result("http-api", f"smtp-receive under {bg}", smtp_loaded.rate, "msg/s",
               smtp_alone.rate, "the same, no API traffic",
               notes=f"API traffic reached {smtp_bg.rate:.0f} req/s"),
        Result("http-api", "smtp-receive final 250 p99 under API traffic",
               percentile(smtp_loaded.latencies, 99) * 1000, "ms",
               percentile(smtp_alone.latencies, 99) * 1000, "the same, no API traffic",
               higher_is_better=False),
        Result("http-api", f"imap-sync ({imap_sync.CLIENTS} clients) under API traffic",
               imap_ops / imap_time, "ops/s", imap_alone_ops / imap_alone_time,
               "the same, no API traffic",
               notes=f"API traffic reached {imap_bg.rate:.0f} req/s"),
        Result("http-api", "imap-sync p99 under API traffic",
               percentile(imap_shared.latencies, 99) * 1000, "ms",
               percentile(imap_alone_shared.latencies, 99) * 1000, "the same, no API traffic",
               higher_is_better=False),
    ]
