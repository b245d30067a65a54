"""imap-fetch: SELECT a big INBOX, then ``UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)``.

The mailbox (10,000 messages, and 100,000 in the full run) is filled before the server
starts, through the store API against the data dir: each distinct body of the SpamAssassin
public corpus is appended once (stored, parsed, fsynced as in real delivery), then the rows
are copied with ``Store.copy`` until the mailbox holds the wanted count (the 100,000-message
mailbox grows from the 10,000 one). Bodies (about 5,300 distinct) are therefore cycled;
every message still costs its own row, its own structure read and its own FETCH line.

mailstead runs as its own process (``serve``); the client is a small blocking reader in the
bench process that counts FETCH responses (skipping literals) until the tagged OK. Timed:
SELECT + UID FETCH, after one untimed warm-up of the same two commands (page cache, SQLite
cache), best of ``repeats``.

Baseline in the same run ("SQLite+JSON floor"): the least any server built on this store
could do, in one Python process without IMAP and without a socket - one SQL query joining
the message rows with their stored structures, the envelope string read from each structure
(``StoredStructure.envelope``, as mailstead does) and the ``* n FETCH (UID FLAGS ENVELOPE
RFC822.SIZE)`` line built from it. Ratio = floor / mailstead.

With ``--peers`` (``make bench-peers``), Dovecot from Debian serves the same messages from a
Maildir (tests/interop/dovecot.py, plain TCP on 127.0.0.1) and the same client measures it
the same way: after a warm-up, so Dovecot's index cache is built (mailstead parsed at
delivery). That row's baseline is Dovecot.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sqlite3
import time
from pathlib import Path

from bench.harness import BenchEnv, Result, bench_store
from mailstead.auth.passwords import hash_password
from mailstead.imap import response
from mailstead.mime.stored import StoredStructure
from mailstead.testing.paths import SHARED
from mailstead.testing.server import TEST_PASSWORD_POLICY, SubprocessServer

CORPUS = SHARED / "corpus/bulk/spamassassin-public-corpus/data"
ADDRESS = "bench@example.org"
PASSWORD = "bench-password"
FETCH_ITEMS = "(FLAGS ENVELOPE RFC822.SIZE)"
#: Server settings for every IMAP scenario: plaintext LOGIN on loopback, quiet log ("info"
#: is not needed: SubprocessServer waits for the pid file).
SERVER_CONFIG = {"auth": {"allow_plaintext": True}, "log": {"level": "warning"}}


def corpus_messages(limit: int | None = None) -> list[bytes]:
    """Corpus bodies as delivered: the mbox ``From_`` line stripped, CRLF line endings."""
    out: list[bytes] = []
    for path in sorted(CORPUS.glob("*/*")):
        data = path.read_bytes()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if data.strip():
            out.append(data)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise RuntimeError(f"no corpus messages under {CORPUS}")
    return out


async def populate(data_dir: Path, count: int, seeds: list[bytes],
                   flags_every: int = 3) -> None:
    """``count`` messages in INBOX of ADDRESS: the seeds appended (with \\Seen on every
    ``flags_every``-th), then rows copied round. On an existing data dir it only grows the
    mailbox to ``count``."""
    store = bench_store(data_dir)
    await store.open()
    try:
        user = await store.find_user(ADDRESS)
        if user is None:
            await store.add_domain("example.org")
            user = await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        inbox = await store.get_mailbox(user.id, "INBOX")
        if inbox.message_count == 0:
            pending = list(enumerate(seeds[:count]))

            async def writer() -> None:
                while pending:
                    n, data = pending.pop(0)
                    flags = ["\\Seen"] if n % flags_every == 0 else []
                    await store.append(inbox.id, data, flags)

            await asyncio.gather(*(writer() for _ in range(32)))
        uids = [m.uid for m in await store.list_messages(inbox.id)]
        have = len(uids)
        while have < count:
            chunk = uids[: count - have]
            await store.copy(inbox.id, chunk, inbox.id)
            have += len(chunk)
        assert (await store.get_mailbox_by_id(inbox.id)).message_count == count
    finally:
        await store.close()


class WireClient:
    """Just enough IMAP to time big responses: tagged commands, literals skipped."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=300)
        self.buf = bytearray()
        self.pos = 0
        self.consumed = 0  # octets taken from the stream so far
        self.tags = 0
        self._response()  # greeting

    def _fill(self) -> None:
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = bytes(self.buf[self.pos : end + 2])
        self.consumed += end + 2 - self.pos
        self.pos = end + 2
        return line

    def _skip(self, n: int) -> None:
        while len(self.buf) - self.pos < n:
            self._fill()
        self.pos += n
        self.consumed += n

    def _response(self) -> bytes:
        """One response; returns its first line (literals and continuations skipped)."""
        first = line = self._line()
        while line.endswith(b"}\r\n"):
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if m is None:
                break
            self._skip(int(m.group(1)))
            line = self._line()
        return first

    def command(self, text: str) -> tuple[int, int]:
        """Run one command; returns (untagged FETCH responses, octets received)."""
        self.tags += 1
        tag = b"b%d " % self.tags
        self.sock.sendall(tag + text.encode() + b"\r\n")
        fetches = 0
        start = self.consumed
        while True:
            first = self._response()
            if first.startswith(tag):
                received = self.consumed - start
                if not first[len(tag):].startswith(b"OK"):
                    raise RuntimeError(f"{text!r} -> {first!r}")
                return fetches, received
            if first.startswith(b"* ") and b" FETCH (" in first[:32]:
                fetches += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"z LOGOUT\r\n")
        self.sock.close()


def measure_fetch(port: int, user: str, password: str, count: int,
                  repeats: int) -> tuple[float, int]:
    """Best (seconds, octets) of SELECT + UID FETCH, after one untimed warm-up."""
    client = WireClient(port)
    try:
        client.command(f'LOGIN "{user}" "{password}"')
        best = float("inf")
        octets = 0
        for attempt in range(repeats + 1):
            started = time.perf_counter()
            client.command("SELECT INBOX")
            fetches, octets = client.command(f"UID FETCH 1:* {FETCH_ITEMS}")
            elapsed = time.perf_counter() - started
            if fetches != count:
                raise RuntimeError(f"got {fetches} FETCH responses, expected {count}")
            if attempt:
                best = min(best, elapsed)
            client.command("UNSELECT")
        return best, octets
    finally:
        client.close()


def floor_fetch(db_path: Path, count: int, repeats: int) -> float:
    """The baseline: SQL + the envelope string read from the stored structure (the same
    read mailstead's FETCH does, ``StoredStructure.envelope``) + the same FETCH line per
    message, best of repeats."""
    best = float("inf")
    for _ in range(repeats + 1):
        started = time.perf_counter()
        conn = sqlite3.connect(db_path)
        try:
            rows = conn.execute(
                "SELECT m.uid, m.flags, m.size, b.structure FROM messages m"
                " JOIN blobs b ON b.id = m.blob_id JOIN mailboxes x ON x.id = m.mailbox_id"
                " WHERE x.name = 'INBOX' ORDER BY m.uid"
            ).fetchall()
        finally:
            conn.close()
        out = []
        for seq, (uid, flags, size, structure) in enumerate(rows, 1):
            envelope = StoredStructure(structure).envelope.encode("utf-8", "surrogateescape")
            out.append(
                b"* %d FETCH (UID %d FLAGS %s ENVELOPE %s RFC822.SIZE %d)\r\n"
                % (seq, uid, response.flag_list(flags.split()), envelope, size)
            )
        elapsed = time.perf_counter() - started
        assert len(out) == count
        best = min(best, elapsed)
    return best


def dovecot_fetch(messages: list[bytes], count: int, repeats: int) -> float | None:
    """Dovecot serving the same ``count`` messages (cycled the same way) from a Maildir."""
    from tests.interop.dovecot import PASSWORD as DOVECOT_PASSWORD
    from tests.interop.dovecot import USER as DOVECOT_USER
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    cycled = [messages[n % len(messages)] for n in range(count)]
    with Dovecot() as dovecot:
        dovecot.deliver(cycled)
        seconds, _ = measure_fetch(dovecot.port, DOVECOT_USER, DOVECOT_PASSWORD, count,
                                   repeats)
    return seconds


def run(env: BenchEnv) -> list[Result]:
    results: list[Result] = []
    seeds = corpus_messages()
    counts = [10_000, 100_000] if not env.quick else [2_000]
    scratch = env.scratch("imap-fetch")
    for count in counts:
        repeats = 2 if count <= 10_000 else 1
        # One data dir: the 100,000-message mailbox grows from the 10,000 one.
        asyncio.run(populate(scratch / "data", count, seeds))
        with SubprocessServer(scratch, SERVER_CONFIG) as server:
            seconds, octets = measure_fetch(server.port("imap"), ADDRESS, PASSWORD, count,
                                            repeats)
        floor = floor_fetch(scratch / "data" / "mailstead.db", count, repeats)
        case = f"{count:,} messages"
        notes = f"SELECT + UID FETCH, {octets / 1e6:.1f} MB"
        results.append(Result(
            "imap-fetch", case, seconds, "s", floor, "SQLite+JSON floor",
            higher_is_better=False, notes=notes,
        ))
        results.append(Result(
            "imap-fetch", case, count / seconds, "msg/s", count / floor, "SQLite+JSON floor",
        ))
        if env.peers:
            dovecot = dovecot_fetch(seeds, count, repeats)
            if dovecot is not None:
                results.append(Result(
                    "imap-fetch", case, seconds, "s", dovecot, "Dovecot (Debian)",
                    higher_is_better=False, notes="same client, warm index",
                ))
    return results
