"""hostile-load: a normal client's round trips while the server is under attack.

mailstead runs as its own process (``serve``), the attack as another. From three loopback
addresses
(127.0.0.1-3), 60 SMTP connections (20 each, the per-address cap) send 45 MiB of DATA and
never finish it; 20 IMAP connections hold literals before login; one logged-in session
runs the worst LIST pattern (``%*`` fifty times and ``z``, which once hung the server) in
a loop; another FETCHes sections of a MIME bomb (100,000 parts, 4 MB) and SEARCHes its
text in a loop. Meanwhile a normal client on 127.0.0.4 keeps one SMTP, one IMAP and one
POP3 session open and times a NOOP on each, one after another, for the measurement
period, and sends a small message now and then.

Rows: the normal client's p99 round trip per protocol (target: under 100 ms), and the
server's peak resident size (target: under 300 MiB). Baseline in the same run: the same
round trips with no attack. ``--quick``: 6 DATA connections of 4.5 MiB, 10 s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any

from bench.harness import BenchEnv, Result, bench_store, percentile
from mailstead.auth.passwords import hash_password
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer

ADDRESS = "ann@example.org"
PASSWORD = "hostile load password"
ATTACKERS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
NORMAL = "127.0.0.4"
CHUNK = 256 * 1024


def _bomb(parts: int = 100_000) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n
                    for n in range(parts))
    return (b"From: x@example.net\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"--b--\r\n")


async def _prepare(data_dir: Path) -> None:
    store = bench_store(data_dir)
    async with store:
        await store.add_domain("example.org")
        user = await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        inbox = await store.get_mailbox(user.id, "INBOX")
        await store.append(inbox.id, _bomb())
        await store.append(inbox.id, b"Subject: small\r\n\r\nhello\r\n")


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def _open(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0),
                                         limit=1 << 22)


async def _until(reader: asyncio.StreamReader, prefix: bytes) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError(f"closed before {prefix!r}")
        if line.startswith(prefix):
            return line


# -- the attack ----------------------------------------------------------------------------
async def _unfinished_data(port: int, source: str, size: int, stop: asyncio.Event) -> int:
    """One SMTP session that sends ``size`` octets of DATA and holds. Returns octets sent."""
    reader, writer = await _open(port, source)
    sent = 0
    try:
        await _until(reader, b"220 ")
        writer.write(b"EHLO attacker\r\nMAIL FROM:<a@attacker.test>\r\n"
                     b"RCPT TO:<" + ADDRESS.encode() + b">\r\nDATA\r\n")
        await _until(reader, b"354")
        block = b"x" * (CHUNK - 2) + b"\r\n"
        while sent < size and not stop.is_set():
            writer.write(block)
            await writer.drain()
            sent += len(block)
        await stop.wait()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return sent


async def _pre_login_literal(port: int, source: str, stop: asyncio.Event) -> None:
    reader, writer = await _open(port, source)
    try:
        await _until(reader, b"* OK")
        writer.write(b"a LOGIN {16000}\r\n")
        await reader.readline()  # "+" (or a refusal)
        writer.write(b"x" * 8000)  # half of it, then nothing
        await stop.wait()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _imap_login(port: int, source: str
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _open(port, source)
    await _until(reader, b"* OK")
    writer.write(f'a LOGIN {ADDRESS} "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
    await _until(reader, b"a OK")
    await _until(reader, b"b OK")
    return reader, writer


async def _loop_commands(port: int, source: str, commands: list[bytes],
                         stop: asyncio.Event) -> int:
    """A logged-in session sending ``commands`` round and round; how many answered."""
    reader, writer = await _imap_login(port, source)
    done = 0
    try:
        while not stop.is_set():
            for n, command in enumerate(commands):
                tag = b"t%d" % n
                writer.write(tag + b" " + command + b"\r\n")
                await _until(reader, tag + b" ")
                done += 1
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return done


# -- the normal client ---------------------------------------------------------------------
async def _normal_client(server: SubprocessServer, seconds: float
                         ) -> tuple[dict[str, list[float]], int, int]:
    """NOOP round trips (ms) per protocol, and (messages delivered, refused)."""
    smtp_r, smtp_w = await _open(server.port("smtp"), NORMAL)
    await _until(smtp_r, b"220 ")
    smtp_w.write(b"EHLO normal.test\r\n")
    await _until(smtp_r, b"250 ")
    imap_r, imap_w = await _imap_login(server.port("imap"), NORMAL)
    pop_r, pop_w = await _open(server.port("pop3"), NORMAL)
    await _until(pop_r, b"+OK")
    pop_w.write(f"USER {ADDRESS}\r\nPASS {PASSWORD}\r\n".encode())
    await _until(pop_r, b"+OK")
    await _until(pop_r, b"+OK")
    times: dict[str, list[float]] = {"SMTP": [], "IMAP": [], "POP3": []}
    delivered = refused = 0
    deadline = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < deadline:
        for name, reader, writer, command, answer in (
            ("SMTP", smtp_r, smtp_w, b"NOOP\r\n", b"250 "),
            ("IMAP", imap_r, imap_w, b"n NOOP\r\n", b"n "),
            ("POP3", pop_r, pop_w, b"NOOP\r\n", b"+OK"),
        ):
            started = time.perf_counter()
            writer.write(command)
            await _until(reader, answer)
            times[name].append((time.perf_counter() - started) * 1000)
        rounds += 1
        if rounds % 20 == 0:
            smtp_w.write(b"MAIL FROM:<friend@example.net>\r\nRCPT TO:<" + ADDRESS.encode()
                         + b">\r\nDATA\r\n")
            await _until(smtp_r, b"354")
            smtp_w.write(b"Subject: hello\r\n\r\na small message\r\n.\r\n")
            reply = await smtp_r.readline()  # the one-line reply to the final dot
            if reply.startswith(b"250"):
                delivered += 1
            else:
                refused += 1
        await asyncio.sleep(0.01)
    for writer in (smtp_w, imap_w, pop_w):
        writer.close()
    return times, delivered, refused


async def _attack(smtp: int, imap: int, per_address: int, size: int,
                  stop_flag: Any) -> None:
    """Every attacking session at once, until ``stop_flag`` (a process-shared event)."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[object]] = []
    for source in ATTACKERS:
        for _ in range(per_address):
            tasks.append(asyncio.ensure_future(_unfinished_data(smtp, source, size, stop)))
    for n in range(20):
        tasks.append(asyncio.ensure_future(_pre_login_literal(imap, ATTACKERS[n % 3], stop)))
    tasks.append(asyncio.ensure_future(_loop_commands(
        imap, ATTACKERS[0], [b'LIST "" "' + b"%*" * 50 + b'z"'], stop)))
    tasks.append(asyncio.ensure_future(_loop_commands(
        imap, ATTACKERS[1], [b"FETCH 1 (BODY.PEEK[5000])", b"FETCH 1 (BODY.PEEK[9998])",
                             b"SEARCH BODY nothere"], stop)))
    await asyncio.to_thread(stop_flag.wait)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def _attack_process(smtp: int, imap: int, per_address: int, size: int, stop_flag: Any) -> None:
    asyncio.run(_attack(smtp, imap, per_address, size, stop_flag))


async def _measure(server: SubprocessServer, *, attack: bool, env: BenchEnv, pid: int
                   ) -> tuple[dict[str, list[float]], int, int, int]:
    """The normal client's round trips, with the attack running in a process of its own
    (in this one, its 80 busy sessions would delay the normal client's own event loop and
    the figures would measure the benchmark as much as the server)."""
    seconds = env.scale(30, 10)
    peak_before = _rss_kib(pid, "VmRSS")
    context = multiprocessing.get_context("spawn")
    stop_flag = context.Event()
    attacker = None
    if attack:
        attacker = context.Process(target=_attack_process, args=(
            server.port("smtp"), server.port("imap"), env.scale(20, 2),
            env.scale(45 * 1024 * 1024, 4_500_000), stop_flag), daemon=True)
        attacker.start()
        await asyncio.sleep(2.0)  # the attack under way before the clock starts
    try:
        times, delivered, refused = await _normal_client(server, seconds)
    finally:
        stop_flag.set()
        if attacker is not None:
            await asyncio.to_thread(attacker.join, 60)
            if attacker.is_alive():
                attacker.kill()
    return times, delivered, refused, peak_before


def run(env: BenchEnv) -> list[Result]:
    scratch = env.scratch("hostile-load")
    asyncio.run(_prepare(scratch / "data"))
    config = {"log": {"level": "info"}, "auth": {"allow_plaintext": True}}
    with SubprocessServer(scratch, config) as server:
        assert server.proc is not None
        pid = server.proc.pid
        calm, calm_ok, _, _ = asyncio.run(_measure(server, attack=False, env=env, pid=pid))
        before = _rss_kib(pid, "VmRSS")
        busy, busy_ok, busy_refused, _ = asyncio.run(
            _measure(server, attack=True, env=env, pid=pid))
        peak = _rss_kib(pid, "VmHWM")
    results = [
        Result("hostile-load", f"{name} NOOP p99 under attack", percentile(busy[name], 99),
               "ms", percentile(calm[name], 99), "no attack", higher_is_better=False,
               notes=f"median {percentile(busy[name], 50):.1f} ms, {len(busy[name])} round "
                     "trips; target < 100 ms")
        for name in ("SMTP", "IMAP", "POP3")
    ]
    results.append(Result(
        "hostile-load", "server peak RSS", peak / 1024, "MiB", None, "",
        higher_is_better=False,
        notes=f"{before / 1024:.0f} MiB before the attack; target < 300 MiB; small messages "
              f"during it: {busy_ok} stored, {busy_refused} refused for now "
              f"({calm_ok} stored without attack)"))
    return results
