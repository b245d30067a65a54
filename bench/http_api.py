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
   (10 sessions, BDAT pipelined) and the imap-sync mix (50 clients) run alone, then while
   another process sends an admin's API traffic at 10 and at 50 requests a second (four
   reads to one write, started on schedule). A ratio near 1.0 means the API costs the
   mail protocols nothing measurable at that rate.

Also reported: the server's CPU time per API request (from /proc), against ``/health``'s:
what one request takes from the one event loop every protocol shares.

``--quick``: shorter periods and fewer messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import imap_sync, smtp_receive
from bench.harness import BenchEnv, Result, bench_store, median, percentile
from bench.imap_fetch import ADDRESS, corpus_messages, populate
from bench.store_append import make_message
from mailstead.admin.actors import command_line
from mailstead.cli.serve import build_admin
from mailstead.testing.server import SubprocessServer, build_settings, settings_dict_for_tests

CLIENTS = 10
DOMAIN = "example.org"
#: Requests a second of the background admin traffic in part 3 (a busy admin, heavy
#: automation), and its read share.
BACKGROUND_RATES = (10, 50)
BACKGROUND_READS = 4  # reads per write
#: Times each of the part 3 conditions runs (in turn); the rows give the median.
ROUNDS = 3
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
    async with bench_store(data_dir) as store:
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
    async with bench_store(data_dir) as store:
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


async def _background(base: str, token: str, rate: int, stop: Any, counts: Any) -> None:
    """An admin's steady traffic at ``rate`` a second, until ``stop`` is set: requests start
    on schedule whether or not earlier ones were answered (an open loop, as independent
    admin tools are), at most MAX_IN_FLIGHT at a time."""
    interval = 1.0 / rate
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


def _background_process(base: str, token: str, rate: int, stop: Any, counts: Any) -> None:
    asyncio.run(_background(base, token, rate, stop, counts))


class Background:
    """The admin traffic of part 3, in its own process (its own GIL, like a real admin)."""

    def __init__(self, base: str, token: str, rate: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.target = rate
        self.stop = context.Event()
        self.counts = context.Array("i", 2)
        self.process = context.Process(target=_background_process,
                                       args=(base, token, rate, self.stop, self.counts))
        self.started = 0.0
        self._sent_before = 0
        self.rate = 0.0

    def __enter__(self) -> Background:
        self.process.start()
        # Starting Python and importing takes a while: measure only once it sends.
        deadline = time.monotonic() + 60
        while self.counts[0] < self.target and self.process.is_alive():
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


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(server: SubprocessServer, run_load: Any) -> tuple[Load, float]:
    """A load and the server's CPU milliseconds per request while it ran."""
    assert server.proc is not None
    before = _cpu_seconds(server.proc.pid)
    load: Load = run_load()
    used = _cpu_seconds(server.proc.pid) - before
    return load, used * 1000 / max(1, load.requests)


def run(env: BenchEnv) -> list[Result]:
    seconds = env.scale(10, 3)
    smtp_count = env.scale(200, 30)
    imap_seconds = env.scale(8, 3)
    count = env.scale(2000, 300)
    scratch = env.scratch("http-api")
    server = SubprocessServer(scratch, {
        "auth": {"allow_plaintext": True}, "log": {"level": "warning"},
        "limits": {"max_connections_per_ip": imap_sync.CLIENTS + 40}})
    token = asyncio.run(_prepare(server.data_dir, count))
    base = f"http://127.0.0.1:{server.port('http')}"
    messages = [make_message(n, smtp_receive.SIZE)[:-2] + b"\r\n" for n in range(64)]
    imap_messages = corpus_messages()[:400]
    smtp_runs: dict[int, list[smtp_receive.Run]] = {}
    imap_runs: dict[int, list[tuple[int, float, imap_sync.Shared]]] = {}
    reached: dict[str, list[float]] = {}
    with server:
        health, health_cpu = _measured(
            server, lambda: asyncio.run(_loop(base, None, seconds, _health)))
        reads, reads_cpu = _measured(
            server, lambda: asyncio.run(_loop(base, token, seconds, _reads)))
        writes, writes_cpu = _measured(
            server, lambda: asyncio.run(_loop(base, token, seconds, _writes)))
        smtp_port, imap_port = server.port("smtp"), server.port("imap")
        top_uid = count
        # Rounds of every condition in turn, each round starting one condition later, so
        # that drift (the mailboxes grow by every SMTP run, a warming cache, the machine's
        # other load) falls on all of them alike: each takes each place once.
        conditions = (0, *BACKGROUND_RATES)
        for round_number in range(ROUNDS):
            shift = round_number % len(conditions)
            for rate in conditions[shift:] + conditions[:shift]:
                traffic = Background(base, token, rate) if rate else contextlib.nullcontext()
                with traffic:
                    smtp_runs.setdefault(rate, []).append(asyncio.run(smtp_receive.load(
                        smtp_port, "bdat", smtp_count, messages, smtp_receive.WINDOW)))
                if isinstance(traffic, Background):
                    reached.setdefault(f"smtp{rate}", []).append(traffic.rate)
                traffic = Background(base, token, rate) if rate else contextlib.nullcontext()
                with traffic:
                    imap = asyncio.run(imap_sync._imap_load(
                        imap_port, top_uid, imap_messages, imap_seconds))
                    imap_runs.setdefault(rate, []).append(imap)
                if isinstance(traffic, Background):
                    reached.setdefault(f"imap{rate}", []).append(traffic.rate)
                top_uid = imap[2].top_uid
        server.terminate()
        server.wait()
    store_writes = asyncio.run(_store_writes(server.data_dir, seconds))
    for load, name in ((health, "health"), (reads, "reads"), (writes, "writes")):
        if load.errors:
            raise RuntimeError(f"{load.errors} of {load.requests} {name} failed")

    def p99(load: Load) -> float:
        return percentile(load.latencies, 99) * 1000

    clients = f"{CLIENTS} clients, {seconds}s"
    results = [
        Result("http-api", f"admin reads (GET /users), {clients}", reads.rate, "req/s",
               health.rate, "GET /health, same clients", notes=f"{reads.requests:,} requests"),
        Result("http-api", "admin reads p99", p99(reads), "ms", p99(health),
               "GET /health, same clients", higher_is_better=False,
               notes=f"median {percentile(reads.latencies, 50) * 1000:.1f} ms"),
        Result("http-api", "admin read: server CPU per request", reads_cpu, "ms",
               health_cpu, "GET /health", higher_is_better=False),
        Result("http-api", f"admin writes (POST /aliases), {clients}", writes.rate, "req/s",
               store_writes.rate, "Store API add_alias, no HTTP",
               notes="each: a commit with its audit record"),
        Result("http-api", "admin writes p99", p99(writes), "ms", p99(store_writes),
               "Store API add_alias, no HTTP", higher_is_better=False,
               notes=f"median {percentile(writes.latencies, 50) * 1000:.1f} ms"),
        Result("http-api", "admin write: server CPU per request", writes_cpu, "ms",
               health_cpu, "GET /health", higher_is_better=False),
    ]
    def smtp_rate(rate: int) -> float:
        return median([run.rate for run in smtp_runs[rate]])

    def smtp_p99(rate: int) -> float:
        return percentile([x for run in smtp_runs[rate] for x in run.latencies], 99) * 1000

    def imap_rate(rate: int) -> float:
        return median([ops / elapsed for ops, elapsed, _ in imap_runs[rate]])

    def imap_p99(rate: int) -> float:
        return percentile([x for _, _, shared in imap_runs[rate] for x in shared.latencies],
                          99) * 1000

    alone = "the same, no API traffic"
    for rate in BACKGROUND_RATES:
        traffic = f"{rate} API req/s ({BACKGROUND_READS}:1 reads:writes)"
        results += [
            Result("http-api", f"smtp-receive under {traffic}", smtp_rate(rate), "msg/s",
                   smtp_rate(0), alone, notes=f"median of {ROUNDS}; API traffic reached "
                   f"{median(reached[f'smtp{rate}']):.0f} req/s"),
            Result("http-api", f"smtp-receive final 250 p99 under {rate} API req/s",
                   smtp_p99(rate), "ms", smtp_p99(0), alone, higher_is_better=False),
            Result("http-api", f"imap-sync ({imap_sync.CLIENTS} clients) under {rate} API req/s",
                   imap_rate(rate), "ops/s", imap_rate(0), alone,
                   notes=f"median of {ROUNDS}; API traffic reached "
                   f"{median(reached[f'imap{rate}']):.0f} req/s"),
            Result("http-api", f"imap-sync p99 under {rate} API req/s", imap_p99(rate), "ms",
                   imap_p99(0), alone, higher_is_better=False),
        ]
    return results
