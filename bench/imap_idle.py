"""imap-idle: 10,000 concurrent authenticated IDLE connections (1,000 under --quick).

mailstead runs as its own process (``serve``). The connections come from separate client
processes (``python -m bench.imap_idle client ...``, asyncio, plain IMAP on 127.0.0.1); each
connection does ``LOGIN``, ``SELECT INBOX`` (10 messages) and ``IDLE``, all on one account,
as many devices of one user would. Measured:

- **server RSS per connection**: ``VmRSS`` of the server process (``/proc/<pid>/status``)
  with every connection idling, minus ``VmRSS`` before they connected (after one warm-up
  session, so imported modules are not counted), divided by the number of connections.
  The issue's target is under 50 KiB.
- **time for one new message to reach all of them**: a message is delivered over SMTP (MX
  listener) and the clients note when each connection reads its ``* 11 EXISTS``; the time
  is from just before the SMTP transaction to the last connection's EXISTS
  (``time.monotonic()`` is one clock for every process on the machine).

Baseline in the same run ("bare asyncio server"): ``python -m bench.imap_idle bare``, a
minimal asyncio server in its own process that answers the same commands with canned
replies and, when told, writes ``* 11 EXISTS`` to every idling connection - one
StreamReader/StreamWriter pair and one task per connection, nothing else. Its RSS per
connection and its fan-out time are the floor for a Python asyncio server.

RLIMIT_NOFILE is raised to the hard limit here, so both servers and clients inherit it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BenchEnv, Result
from bench.imap_fetch import ADDRESS, PASSWORD, SERVER_CONFIG, corpus_messages, populate
from mailstead.testing.server import SubprocessServer, deep_merge, free_port

CLIENT_PROCESSES = 2
CONNECT_CONCURRENCY = 200  # connections being set up at once, per client process
MAILBOX_SIZE = 10
NEW_MESSAGE = (
    b"From: Bench <sender@example.net>\r\nTo: bench@example.org\r\n"
    b"Subject: wake up\r\nMessage-ID: <idle@bench>\r\n"
    b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nnew mail for every device\r\n"
)
REPO = Path(__file__).resolve().parent.parent


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# -- the client processes -------------------------------------------------------------------


async def _idle_connection(port: int, ready: asyncio.Semaphore,
                           got_exists: list[float]) -> asyncio.Task[None]:
    """Log in, select, IDLE; returns the task that waits for the EXISTS push."""
    async with ready:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()  # greeting
        for tag, text in ((b"a", f'LOGIN "{ADDRESS}" "{PASSWORD}"'.encode()),
                          (b"b", b"SELECT INBOX")):
            writer.write(tag + b" " + text + b"\r\n")
            while not (line := await reader.readline()).startswith(tag + b" "):
                if not line:
                    raise ConnectionError("closed during set-up")
            if not line.startswith(tag + b" OK"):
                raise RuntimeError(f"{text!r} -> {line!r}")
        writer.write(b"c IDLE\r\n")
        while not (line := await reader.readline()).startswith(b"+"):
            if not line:
                raise ConnectionError("closed before IDLE")

    async def wait_exists() -> None:
        while line := await reader.readline():
            if line.endswith(b" EXISTS\r\n") and line != b"* %d EXISTS\r\n" % MAILBOX_SIZE:
                got_exists.append(time.monotonic())
                break
        writer.close()

    return asyncio.create_task(wait_exists())


async def _client_main(port: int, count: int) -> None:
    ready = asyncio.Semaphore(CONNECT_CONCURRENCY)
    got: list[float] = []
    tasks = await asyncio.gather(*(_idle_connection(port, ready, got) for _ in range(count)))
    print(f"READY {len(tasks)}", flush=True)
    _, pending = await asyncio.wait(tasks, timeout=120)
    print(json.dumps({"received": len(got), "first": min(got, default=0.0),
                      "last": max(got, default=0.0), "missing": len(pending)}), flush=True)
    for task in pending:
        task.cancel()


# -- the baseline server ----------------------------------------------------------------------


async def _bare_main(port: int) -> None:
    idlers: set[asyncio.StreamWriter] = set()
    fired = asyncio.Event()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK ready\r\n")
        while line := await reader.readline():
            tag, _, rest = line.partition(b" ")
            verb = rest.split(b" ", 1)[0].strip().upper()
            if verb == b"FIRE":
                for idler in idlers:
                    idler.write(b"* %d EXISTS\r\n" % (MAILBOX_SIZE + 1))
                writer.write(tag + b" OK fired\r\n")
            elif verb == b"IDLE":
                idlers.add(writer)
                writer.write(b"+ idling\r\n")
            elif verb == b"SELECT":
                writer.write(b"* %d EXISTS\r\n%s OK [READ-WRITE] done\r\n"
                             % (MAILBOX_SIZE, tag))
            elif verb == b"STOP":
                fired.set()
            else:
                writer.write(tag + b" OK done\r\n")
            await writer.drain()
        idlers.discard(writer)
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=1024)
    print(f"PID {os.getpid()}", flush=True)
    async with server:
        await fired.wait()


# -- the measurement ---------------------------------------------------------------------------


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "bench.imap_idle", *args], cwd=REPO,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            text=True)


def _warm_up(port: int) -> None:
    asyncio.run(_warm_up_session(port))


async def _warm_up_session(port: int) -> None:
    got: list[float] = []
    task = await _idle_connection(port, asyncio.Semaphore(1), got)
    task.cancel()
    await asyncio.sleep(0.2)


def _measure(server_pid: int, port: int, connections: int,
             fire: object) -> tuple[float, float, float, int]:
    """(RSS KiB per connection, seconds to the first and to the last EXISTS, connections
    that got it)."""
    _warm_up(port)
    time.sleep(0.3)
    before = rss_kib(server_pid)
    per_process = [connections // CLIENT_PROCESSES] * CLIENT_PROCESSES
    per_process[0] += connections - sum(per_process)
    clients = [_spawn("client", str(port), str(n)) for n in per_process]
    try:
        for client in clients:
            assert client.stdout is not None
            line = client.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"client failed to set up: {line!r}")
        time.sleep(0.5)  # let the last sessions settle into IDLE
        after = rss_kib(server_pid)
        started = time.monotonic()
        fire()  # type: ignore[operator]
        reports = []
        for client in clients:
            assert client.stdout is not None
            reports.append(json.loads(client.stdout.readline()))
        for client in clients:
            client.wait(30)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
    received = sum(r["received"] for r in reports)
    first = min(r["first"] for r in reports)
    last = max(r["last"] for r in reports)
    return (after - before) / connections, first - started, last - started, received


def _mailstead(env: BenchEnv, connections: int) -> tuple[float, float, float, int]:
    scratch = env.scratch("imap-idle")
    asyncio.run(populate(scratch / "data", MAILBOX_SIZE, corpus_messages(MAILBOX_SIZE)))
    limit = connections + 100
    config = deep_merge(SERVER_CONFIG, {
        "limits": {"max_connections": limit, "max_connections_per_ip": limit},
    })
    with SubprocessServer(scratch, config) as server:
        assert server.proc is not None
        smtp_port = server.port("smtp")

        def deliver() -> None:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
                smtp.sendmail("sender@example.net", [ADDRESS], NEW_MESSAGE)

        return _measure(server.proc.pid, server.port("imap"), connections, deliver)


def _bare(connections: int) -> tuple[float, float, float, int]:
    port = free_port()
    server = _spawn("bare", str(port))
    try:
        assert server.stdout is not None
        pid = int(server.stdout.readline().split()[1])

        def fire() -> None:
            import socket

            with socket.create_connection(("127.0.0.1", port)) as sock:
                f = sock.makefile("rwb")
                f.readline()
                f.write(b"f FIRE\r\n")
                f.flush()
                f.readline()

        return _measure(pid, port, connections, fire)
    finally:
        server.kill()
        server.wait()


def run(env: BenchEnv) -> list[Result]:
    raise_nofile()
    connections = env.scale(10_000, 1_000)
    rss, first, seconds, received = _mailstead(env, connections)
    base_rss, _, base_seconds, base_received = _bare(connections)
    case = f"{connections:,} IDLE connections"
    return [
        Result("imap-idle", case, rss, "KiB/conn", base_rss, "bare asyncio server",
               higher_is_better=False, notes="target < 50 KiB"),
        Result("imap-idle", case, seconds * 1000, "ms to all", base_seconds * 1000,
               "bare asyncio server", higher_is_better=False,
               notes=f"{received:,}/{connections:,} got EXISTS, first after {first * 1000:.0f} ms"
               " (SMTP delivery included)"
               + ("" if base_received == connections else f"; baseline {base_received:,}")),
    ]


if __name__ == "__main__":
    raise_nofile()
    if sys.argv[1] == "client":
        asyncio.run(_client_main(int(sys.argv[2]), int(sys.argv[3])))
    elif sys.argv[1] == "bare":
        asyncio.run(_bare_main(int(sys.argv[2])))
    else:
        raise SystemExit("usage: python -m bench.imap_idle client PORT N | bare PORT")
