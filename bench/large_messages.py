"""large-messages: what receiving and serving large messages costs the server in memory.

mailstead runs as its own process (``serve``) with the default limits. Each case starts
from the server's resident size at rest (the peak is reset through
``/proc/PID/clear_refs``) and reports how far the peak rose above it:

- one 41 MB message received over SMTP (smtplib, DATA);
- eight 40 MB messages received at once (eight SMTP connections);
- a 41 MB message appended over IMAP (one literal);
- the 30 MB attachment of that message fetched as ``BINARY[2]`` and as ``BODY[2]``.

Each message is checked after it is stored (its size in the mailbox), so a row never
measures a refusal. No baseline in the same run: the figures before the change that
spooled message data are in the decision record 0010 (the same script, run against that
commit). ``--quick``: 4 MB messages, two at once.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import smtplib
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store
from mailstead.auth.passwords import hash_password
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer

ADDRESS = "ann@example.org"
PASSWORD = "large messages password"


def _message(size: int, subject: str) -> bytes:
    """A multipart message of about ``size`` octets: text, then a base64 attachment."""
    raw_size = (size - 400) * 3 // 4
    attachment = base64.encodebytes(bytes(range(256)) * (raw_size // 256 + 1))
    attachment = attachment.replace(b"\n", b"\r\n")
    return (f"From: a@example.net\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + attachment + b"--b--\r\n"


async def _prepare(data_dir: Path) -> None:
    store = bench_store(data_dir)
    async with store:
        await store.add_domain("example.org")
        await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status size in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _rise(pid: int, action: Callable[[], None]) -> tuple[float, str]:
    """MiB the server's peak resident size rose above its size at rest during
    ``action()``, and a note saying what that was."""
    time.sleep(0.5)  # settle: the last case's memory given back where it will be
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from now
    rest = _status(pid, "VmRSS")
    action()
    return (_status(pid, "VmHWM") - rest) / 1024, f"peak above {rest / 1024:.0f} MiB at rest"


def _send(port: int, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
        smtp.sendmail("a@example.net", [ADDRESS], message)


def _send_many(port: int, messages: list[bytes]) -> None:
    async def all_at_once() -> None:
        await asyncio.gather(*(asyncio.to_thread(_send, port, m) for m in messages))

    asyncio.run(all_at_once())


def _imap(server: SubprocessServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=300)
    client.login(ADDRESS, PASSWORD)
    return client


def _stored_sizes(server: SubprocessServer) -> list[int]:
    client = _imap(server)
    try:
        client.select("INBOX", readonly=True)
        typ, data = client.fetch("1:*", "(RFC822.SIZE)")
        assert typ == "OK"
        return [int(bytes(d).split(b"RFC822.SIZE ")[1].rstrip(b")"))
                for d in data if isinstance(d, bytes)]
    finally:
        client.logout()


def run(env: BenchEnv) -> list[Result]:
    size = env.scale(41_000_000, 4_100_000)
    many = env.scale(8, 2)
    scratch = env.scratch("large-messages")
    asyncio.run(_prepare(scratch / "data"))
    one = _message(size, "one")
    several = [_message(size * 40 // 41, f"many {n}") for n in range(many)]
    appended = _message(size, "appended")
    config = {"log": {"level": "info"}, "auth": {"allow_plaintext": True}}
    rows: list[tuple[str, tuple[float, str]]] = []
    with SubprocessServer(scratch, config) as server:
        assert server.proc is not None
        pid = server.proc.pid
        smtp = server.port("smtp")
        rows.append((f"receive one {size / 1e6:.0f} MB message (SMTP)",
                     _rise(pid, lambda: _send(smtp, one))))
        rows.append((f"receive {many} x {size * 40 // 41 / 1e6:.0f} MB at once (SMTP)",
                     _rise(pid, lambda: _send_many(smtp, several))))

        def append() -> None:
            client = _imap(server)
            try:
                typ, _ = client.append("INBOX", "", None, appended)
                assert typ == "OK"
            finally:
                client.logout()

        rows.append((f"append one {size / 1e6:.0f} MB message (IMAP)", _rise(pid, append)))
        stored = _stored_sizes(server)
        assert len(stored) == 2 + many, f"not every message was stored: {stored}"

        def fetch(item: str) -> None:
            client = _imap(server)
            try:
                client.select("INBOX", readonly=True)
                typ, data = client.fetch("1", f"({item})")
                assert typ == "OK" and len(data[0][1]) > size // 2  # type: ignore[index]
            finally:
                client.logout()

        for item in ("BINARY.PEEK[2]", "BODY.PEEK[2]"):
            rows.append((f"serve the attachment as {item.replace('.PEEK', '')}",
                         _rise(pid, partial(fetch, item))))
    return [
        Result("large-messages", case, value, "MiB", None, "", higher_is_better=False,
               notes=note)
        for case, (value, note) in rows
    ]
