"""imap-search: text SEARCH over a big INBOX, answered from the full-text index (decision 0027).

The mailbox (10,000 messages, 100,000 in the full run, 2,000 with ``--quick``) is filled as
imap-fetch fills it, from the SpamAssassin public corpus, but through a store with the
full-text indexer, as the server stores mail: each distinct body (about 5,300) is appended
and indexed once, then rows are copied round. A copy shares its body and so its index row;
every message still costs its own row in the join and its own number in the answer.

Timed, each after one untimed warm-up, ``repeats`` times: ``SEARCH BODY mortgage`` (a word in
about 2% of the messages), ``SEARCH TEXT uarantee`` (a substring in the header or body) and
``SEARCH FROM otmail.co`` (part of a domain). Reported: p50 and p95 per query, in ms.

Baseline: with ``--peers``, Dovecot from Debian with its default configuration (no FTS
plugin: it reads the messages from its Maildir for every text search, with its index cache
warm after the warm-up) answers the same programs through the same client. Without
``--peers`` there is no baseline row. A further row reports the index's size: bytes of the
FTS5 tables per byte of text indexed (``dbstat``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from bench.harness import BenchEnv, Result, percentile
from bench.imap_fetch import (
    ADDRESS,
    PASSWORD,
    SERVER_CONFIG,
    WireClient,
    corpus_messages,
    populate,
)
from mailstead.testing.server import SubprocessServer

QUERIES = ("BODY mortgage", "TEXT uarantee", "FROM otmail.co")
#: Mailbox sizes of the full and the ``--quick`` run; the bigger mailbox grows from the other.
FULL_COUNTS = (10_000, 100_000)
QUICK_COUNTS = (2_000,)


def _search(client: WireClient, program: str) -> int:
    """Run one SEARCH; returns how many messages it found."""
    client.tags += 1
    tag = b"b%d " % client.tags
    client.sock.sendall(tag + f"SEARCH {program}".encode() + b"\r\n")
    found = 0
    while True:
        first = client._response()
        if first.startswith(tag):
            if not first[len(tag) :].startswith(b"OK"):
                raise RuntimeError(f"SEARCH {program!r} -> {first!r}")
            return found
        if first.startswith(b"* SEARCH"):
            found = len(first.split()) - 2


def measure(
    port: int, user: str, password: str, repeats: int
) -> dict[str, tuple[list[float], int]]:
    """Per query: the seconds of each timed run and the number of messages found."""
    client = WireClient(port)
    try:
        client.command(f'LOGIN "{user}" "{password}"')
        client.command("SELECT INBOX")
        out: dict[str, tuple[list[float], int]] = {}
        for program in QUERIES:
            found = _search(client, program)  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                again = _search(client, program)
                times.append(time.perf_counter() - started)
                if again != found:
                    raise RuntimeError(f"SEARCH {program}: {again} then {found}")
            out[program] = (times, found)
        return out
    finally:
        client.close()


def index_overhead(db_path: Path) -> tuple[float, int, int]:
    """(index bytes per text byte, index bytes, text bytes): the FTS5 tables' pages and the
    body map against the UTF-8 text the index holds."""
    conn = sqlite3.connect(db_path)
    try:
        index = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search_text%'"
            " OR name LIKE 'search_bodies%' OR name LIKE 'sqlite_autoindex_search_bodies%'"
        ).fetchone()[0]
        text = conn.execute(
            "SELECT sum(length(CAST(subject AS BLOB)) + length(CAST(addr_from AS BLOB))"
            " + length(CAST(addr_to AS BLOB)) + length(CAST(addr_cc AS BLOB))"
            " + length(CAST(addr_bcc AS BLOB)) + length(CAST(hvalues AS BLOB))"
            " + length(CAST(headers AS BLOB)) + length(CAST(body AS BLOB))) FROM search_text"
        ).fetchone()[0]
    finally:
        conn.close()
    return index / text, index, text


def dovecot_search(
    messages: list[bytes], count: int, repeats: int
) -> dict[str, tuple[list[float], int]] | None:
    """Dovecot, default configuration, serving the same ``count`` messages."""
    from tests.interop.dovecot import PASSWORD as DOVECOT_PASSWORD
    from tests.interop.dovecot import USER as DOVECOT_USER
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    cycled = [messages[n % len(messages)] for n in range(count)]
    with Dovecot() as dovecot:
        dovecot.deliver(cycled)
        return measure(dovecot.port, DOVECOT_USER, DOVECOT_PASSWORD, repeats)


def run(env: BenchEnv) -> list[Result]:
    results: list[Result] = []
    seeds = corpus_messages()
    counts = FULL_COUNTS if not env.quick else QUICK_COUNTS
    scratch = env.scratch("imap-search")
    for count in counts:
        repeats = 20 if count <= 10_000 else 10
        asyncio.run(populate(scratch / "data", count, seeds))
        with SubprocessServer(scratch, SERVER_CONFIG) as server:
            ours = measure(server.port("imap"), ADDRESS, PASSWORD, repeats)
        theirs = dovecot_search(seeds, count, repeats) if env.peers else None
        case = f"{count:,} messages"
        for program, (times, found) in ours.items():
            notes = f"{found:,} found"
            if theirs is not None and theirs[program][1] != found:
                notes += f" (Dovecot {theirs[program][1]:,})"
            for pct in (50, 95):
                baseline = None
                if theirs is not None:
                    baseline = percentile(theirs[program][0], pct) * 1000
                results.append(
                    Result(
                        "imap-search",
                        f"{case}, {program}",
                        percentile(times, pct) * 1000,
                        f"ms p{pct}",
                        baseline,
                        "Dovecot (Debian, no FTS)" if theirs else "",
                        higher_is_better=False,
                        notes=notes,
                    )
                )
        ratio, index, text = index_overhead(scratch / "data" / "mailstead.db")
        results.append(
            Result(
                "imap-search",
                f"{case}, index size",
                ratio,
                "B/B text",
                notes=f"{index / 1e6:.1f} MB index for {text / 1e6:.1f} MB text",
            )
        )
    return results
