"""imap-idle: 10,000 concurrent authenticated IDLE connections (1,000 under --quick).

mailstead runs as its own process (``serve``). The connections come from separate client
processes (``python -m bench.imap_idle client ...``, asyncio, plain IMAP on 127.0.0.1); each
connection does ``LOGIN``, ``SELECT INBOX`` (10 messages) and ``IDLE``, all on one account,
as many devices of one user would. Measured:

- **server RSS per connection**: the ``Rss`` of the server process and any processes under
  it (``/proc/<pid>/smaps_rollup``) with every connection idling, minus the same sum before
  they connected (after one warm-up session, so imported modules are not counted), divided
  by the number of connections. The issue's target is under 50 KiB.
- **time for one new message to reach all of them**: a message is delivered over SMTP (MX
  listener) and the clients note when each connection reads its ``* 11 EXISTS``; the time
  is from just before the SMTP transaction to the last connection's EXISTS
  (``time.monotonic()`` is one clock for every process on the machine).

Baseline in the same run ("bare asyncio server"): ``python -m bench.imap_idle bare``, a
minimal asyncio server in its own process that answers the same commands with canned
replies and, when told, writes ``* 11 EXISTS`` to every idling connection - one
StreamReader/StreamWriter pair and one task per connection, nothing else. Its RSS per
connection and its fan-out time are the floor for a Python asyncio server.

With ``--peers`` (``make bench-peers``), Dovecot from Debian is measured in the same run by
the same client processes doing the same commands (tests/interop/dovecot.py: a private
instance on 127.0.0.1, plain LOGIN, the same 10 messages in a Maildir, ``mail_fsync`` at its
default). It keeps its default model: a login process per connection being set up, then an
``imap`` process per connection (``imap_hibernate_timeout = 0``); only limits are raised so
that every connection is accepted (``mail_max_userip_connections``, ``process_limit``,
``default_client_limit``). Its memory is the ``Rss`` summed over the master and every
process under it (login, imap, auth, log, anvil, stats, config), measured like mailstead's;
that sum counts the pages the processes share once per process, so the notes also give the
``Pss`` (shared pages split between their processes). The new message is delivered as an
MDA would: written into ``Maildir/tmp`` and renamed into ``Maildir/new``; each ``imap``
process sees it through its own inotify watch and, after Dovecot's fixed 500 ms delay for
batching changes (``NOTIFY_DELAY_MSECS``), syncs the Maildir and sends ``* 11 EXISTS``. The
clock is the same as mailstead's, from just before the delivery to the last EXISTS.

Dovecot takes ``DOVECOT_CONNECTIONS`` (1,000) connections in the full run as in
``--quick``, and those rows compare it with mailstead measured again at that count. Memory
per connection hardly depends on the count, but Dovecot's fan-out grows faster than the
count: every ``imap`` process syncs the one Maildir and its indexes itself, waiting for the
same locks. On the 2-core machine: about 4 s for 1,000 connections, 10 s for 2,000, 39 s
for 4,000 (one run each); 10,000 took about 7 GiB of processes and 80 s to set up, and the
fan-out was erratic: 10 s once, but in three other runs most connections had no EXISTS
after 120 s, their processes queued on the write lock of ``dovecot.list.index.log``.

Every ``imap`` process holds an inotify instance for IDLE and takes a second one while it
waits for the ``dovecot-uidlist.lock`` dotlock, all as one user. Past
``fs.inotify.max_user_instances`` (Linux defaults to 128) Dovecot logs "Inotify instance
limit ... exceeded" and those processes poll instead: for new mail, every
``mailbox_idle_check_interval`` (30 s). ``bench/peers.sh`` raises the limit; the rows'
notes say when it is below twice the connections.

RLIMIT_NOFILE is raised to the hard limit here, so both servers and clients inherit it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import smtplib
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchEnv, Result
from bench.imap_fetch import ADDRESS, PASSWORD, SERVER_CONFIG, corpus_messages, populate
from mailstead.core.log import ConnectionLog
from mailstead.net.deflate import Deflate
from mailstead.testing.server import SubprocessServer, deep_merge, free_port

CLIENT_PROCESSES = 2
#: Dovecot's connection count (full run and --quick): a process per connection, and a
#: fan-out that grows faster than the count (see the module docstring).
DOVECOT_CONNECTIONS = 1_000
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


def process_tree(root: int) -> list[int]:
    """``root`` and every live process under it (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def memory_kib(root: int) -> tuple[int, int]:
    """(Rss, Pss) in KiB, summed over ``root`` and every process under it."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            if pid == root:
                raise
    return rss, pss


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


@dataclass(frozen=True)
class Idle:
    """One server under ``connections`` idling connections."""

    connections: int
    rss: float  # KiB per connection
    pss: float  # KiB per connection
    first: float  # seconds from the delivery to the first EXISTS
    last: float  # ... to the last EXISTS
    received: int  # connections that got their EXISTS


def _measure(server_pid: int, port: int, connections: int,
             fire: Callable[[], None], settle: float = 0.3) -> Idle:
    _warm_up(port)
    time.sleep(settle)
    before = memory_kib(server_pid)
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
        after = memory_kib(server_pid)
        started = time.monotonic()
        fire()
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
    first = min((r["first"] for r in reports if r["received"]), default=started)
    last = max((r["last"] for r in reports if r["received"]), default=started)
    return Idle(connections, (after[0] - before[0]) / connections,
                (after[1] - before[1]) / connections, first - started, last - started,
                received)


def _mailstead(env: BenchEnv, connections: int) -> Idle:
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


def _bare(connections: int) -> Idle:
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


def inotify_instances() -> int | None:
    """``fs.inotify.max_user_instances``: inotify instances one user may hold."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    except (OSError, ValueError):
        return None


def _dovecot(connections: int) -> Idle | None:
    """Dovecot (process per connection) under the same load, or None if not installed."""
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    limit = connections + 100
    # Only limits: Dovecot's defaults would refuse the 11th connection of one user from one
    # IP, and cap imap processes at 1,024, login processes and other services' clients at
    # default_process_limit (100) and default_client_limit (1,000).
    extra = f"""mail_max_userip_connections = {limit}
default_process_limit = {limit}
default_client_limit = {2 * limit}
service imap {{
  process_limit = {limit}
}}
"""
    with Dovecot([(ADDRESS, PASSWORD)], mail_fsync="optimized", extra_config=extra) as dovecot:
        assert dovecot.proc is not None
        maildir = dovecot.root / "Maildir" / ADDRESS
        dovecot.deliver(corpus_messages(MAILBOX_SIZE), user=ADDRESS)

        def deliver() -> None:
            # As an MDA does: the whole file in tmp/, then one rename into new/.
            name = f"{time.time_ns()}.P{os.getpid()}.bench"
            path = maildir / "tmp" / name
            path.write_bytes(NEW_MESSAGE)
            os.chown(path, dovecot.mail_uid, dovecot.mail_gid)
            path.rename(maildir / "new" / name)

        # Settle longer: the warm-up's imap process must have exited before "before".
        return _measure(dovecot.proc.pid, dovecot.port, connections, deliver, settle=1.0)


def _rows(case: str, measured: Idle, baseline: Idle, baseline_name: str, rss_notes: str,
          fanout_notes: str) -> list[Result]:
    got = f"{measured.received:,}/{measured.connections:,} got EXISTS"
    if baseline.received != baseline.connections:
        got += f" ({baseline_name}: {baseline.received:,}/{baseline.connections:,})"
    return [
        Result("imap-idle", case, measured.rss, "KiB/conn", baseline.rss, baseline_name,
               higher_is_better=False, notes=rss_notes),
        Result("imap-idle", case, measured.last * 1000, "ms to all", baseline.last * 1000,
               baseline_name, higher_is_better=False,
               notes=f"{got}, first after {measured.first * 1000:.0f} ms" + fanout_notes),
    ]


class _Sink:
    """A writer that keeps nothing (what compressed_kib's codec writes is not the point)."""

    def write(self, data: bytes) -> None:
        pass


def compressed_kib() -> float:
    """What COMPRESS=DEFLATE adds to one idle connection, in KiB: the memory
    ``tracemalloc`` sees held by the compression layer (mailstead.net.deflate) after a
    first exchange, a compressed command in and untagged responses out (zlib allocates
    its inflate window at the first input). Decision 0024 records the figure."""

    async def measure() -> float:
        reader = asyncio.StreamReader()
        client = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)  # zlib's defaults
        reader.feed_data(client.compress(b"a1 IDLE\r\n") + client.flush(zlib.Z_SYNC_FLUSH))
        log = ConnectionLog(logging.getLogger("bench"), "bench", "-")
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            codec = Deflate(reader, _Sink(), log)  # type: ignore[arg-type]
            await codec.read(65536)
            codec.write(b"* 11 EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\n" * 40)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return held / 1024

    return asyncio.run(measure())


def run(env: BenchEnv) -> list[Result]:
    raise_nofile()
    connections = env.scale(10_000, 1_000)
    measured = _mailstead(env, connections)
    bare = _bare(connections)
    case = f"{connections:,} IDLE connections"
    results = _rows(case, measured, bare, "bare asyncio server",
                    f"target < 50 KiB; COMPRESS=DEFLATE adds {compressed_kib():.0f} KiB/conn"
                    " (tracemalloc)", " (SMTP delivery included)")
    if env.peers:
        count = min(connections, DOVECOT_CONNECTIONS)
        peer = _dovecot(count)
        if peer is not None:
            if count != connections:
                measured = _mailstead(env, count)
            rss_notes = (f"a process per connection; PSS {peer.pss:.0f} KiB/conn"
                         f" (mailstead {measured.pss:.1f})")
            fanout = (f"; Dovecot's first after {peer.first * 1000:.0f} ms"
                      " (its 500 ms notify delay)")
            instances = inotify_instances()
            if instances is not None and instances < 2 * count + 100:
                fanout += (f"; fs.inotify.max_user_instances = {instances} is too low:"
                           " some of Dovecot's connections poll every 30 s")
            if count != connections:
                rss_notes += f"; Dovecot at {count:,}, not {connections:,}: see bench/imap_idle.py"
            results += _rows(f"{count:,} IDLE connections", measured, peer,
                             "Dovecot (Debian)", rss_notes, fanout)
    return results


if __name__ == "__main__":
    raise_nofile()
    if sys.argv[1] == "client":
        asyncio.run(_client_main(int(sys.argv[2]), int(sys.argv[3])))
    elif sys.argv[1] == "bare":
        asyncio.run(_bare_main(int(sys.argv[2])))
    else:
        raise SystemExit("usage: python -m bench.imap_idle client PORT N | bare PORT")
