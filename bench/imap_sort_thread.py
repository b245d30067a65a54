"""imap-sort-thread: SORT (DATE), SORT (FROM), SORT (SUBJECT) and THREAD=REFERENCES over a
whole big INBOX.

The mailbox is filled as imap-fetch fills it (:func:`bench.imap_fetch.populate`: the
distinct bodies of the SpamAssassin public corpus appended once, parsed as in delivery,
then rows copied round up to 10,000 and 100,000 messages; 2,000 in quick mode). The
corpus is real mailing-list mail of 2002: References chains, Re:/Fwd:/[list] subjects,
encoded words, missing and broken Date: fields, so both the keys and the threading do
real work.

mailstead runs as its own process (``serve``); one client (:class:`WireClient`) SELECTs
INBOX and times each command, after one untimed warm-up of every command (SQLite and page
cache; Dovecot builds its sort and thread index there), taking the median of
``repeats``, in two ways:

- *repeated*: the same command again over the same messages (a client re-opening a
  mailbox): mailstead answers from the answer it kept (decision 0031), Dovecot from its
  up-to-date index;
- *after a delivery*: one new message APPENDed before each timed command, so mailstead
  must read the keys and order everything again, and Dovecot must add one message to its
  index.

Each answer is checked: a SORT names every message once, a THREAD answer names every
message.

The baseline is Dovecot from Debian serving the same messages (cycled the same way) from a
Maildir, measured by the same client the same way; it is only measured under ``--peers``
(``make bench-peers``). Without it the rows have no baseline.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time

from bench.harness import BenchEnv, Result
from bench.imap_fetch import (
    ADDRESS,
    PASSWORD,
    SERVER_CONFIG,
    WireClient,
    corpus_messages,
    populate,
)
from mailstead.testing.server import SubprocessServer

#: What is timed, by row name: each over the whole mailbox (``ALL``).
COMMANDS = {
    "SORT (DATE)": "SORT (DATE) UTF-8 ALL",
    "SORT (FROM)": "SORT (FROM) UTF-8 ALL",
    "SORT (SUBJECT)": "SORT (SUBJECT) UTF-8 ALL",
    "THREAD=REFERENCES": "THREAD REFERENCES UTF-8 ALL",
}
_NUMBER = re.compile(rb"\d+")


class SortClient(WireClient):
    """The imap-fetch client, keeping the untagged SORT or THREAD line to check it."""

    def answer(self, text: str) -> bytes:
        """Run one command; returns its ``* SORT`` or ``* THREAD`` line."""
        self.tags += 1
        tag = b"b%d " % self.tags
        self.sock.sendall(tag + text.encode() + b"\r\n")
        found = b""
        while True:
            first = self._response()
            if first.startswith(tag):
                if not first[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(f"{text!r} -> {first!r}")
                return found
            if first.startswith((b"* SORT", b"* THREAD")):
                found = first


def _check(name: str, line: bytes, count: int) -> None:
    numbers = [int(n) for n in _NUMBER.findall(line)]
    if sorted(numbers) != list(range(1, count + 1)):
        raise RuntimeError(f"{name}: the answer does not name each of {count} messages once")


#: The two ways each command is timed (see the module docstring).
REPEATED = "repeated"
DELIVERED = "after a delivery"
_NEW = (
    b"From: New Sender <new@example.org>\r\nTo: bench@example.org\r\n"
    b"Subject: Re: a new message\r\nDate: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <new-%d@example.org>\r\n\r\nHello\r\n"
)


def measure(
    port: int, user: str, password: str, count: int, repeats: int
) -> dict[tuple[str, str], float]:
    """Median seconds per (command, way), after one untimed warm-up of each command. The
    mailbox grows by ``repeats`` messages per command (the deliveries)."""
    client = SortClient(port)
    try:
        client.command(f'LOGIN "{user}" "{password}"')
        client.command("SELECT INBOX")
        for name, text in COMMANDS.items():
            _check(name, client.answer(text), count)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):
            for name, text in COMMANDS.items():
                started = time.perf_counter()
                client.answer(text)
                times.setdefault((name, REPEATED), []).append(time.perf_counter() - started)
        for n in range(repeats):
            for name, text in COMMANDS.items():
                count += 1
                message = _NEW % count
                # LITERAL+ (RFC 7888), which both servers offer: no continuation round trip.
                client.command(f"APPEND INBOX {{{len(message)}+}}\r\n" + message.decode())
                client.command("NOOP")  # the new message is announced
                started = time.perf_counter()
                line = client.answer(text)
                times.setdefault((name, DELIVERED), []).append(time.perf_counter() - started)
                if n == 0:
                    _check(name, line, count)
        return {key: statistics.median(t) for key, t in times.items()}
    finally:
        client.close()


def dovecot_sort(
    messages: list[bytes], count: int, repeats: int
) -> dict[tuple[str, str], float] | None:
    """Dovecot serving the same ``count`` messages (cycled the same way) from a Maildir."""
    from tests.interop.dovecot import PASSWORD as DOVECOT_PASSWORD
    from tests.interop.dovecot import USER as DOVECOT_USER
    from tests.interop.dovecot import Dovecot, dovecot_binary

    if dovecot_binary() is None:
        return None
    cycled = [messages[n % len(messages)] for n in range(count)]
    with Dovecot() as dovecot:
        dovecot.deliver(cycled)
        return measure(dovecot.port, DOVECOT_USER, DOVECOT_PASSWORD, count, repeats)


def run(env: BenchEnv, counts: list[int] | None = None) -> list[Result]:
    results: list[Result] = []
    seeds = corpus_messages()
    if counts is None:
        counts = [10_000, 100_000] if not env.quick else [2_000]
    scratch = env.scratch("imap-sort-thread")
    for count in counts:
        repeats = 3 if count <= 10_000 else 2
        # One data dir: the 100,000-message mailbox grows from the 10,000 one.
        asyncio.run(populate(scratch / "data", count, seeds))
        with SubprocessServer(scratch, SERVER_CONFIG) as server:
            ours = measure(server.port("imap"), ADDRESS, PASSWORD, count, repeats)
        theirs = dovecot_sort(seeds, count, repeats) if env.peers else None
        for (name, way), seconds in ours.items():
            baseline = theirs.get((name, way)) if theirs is not None else None
            results.append(
                Result(
                    "imap-sort-thread",
                    f"{name}, {count:,} messages, {way}",
                    seconds,
                    "s",
                    baseline,
                    "Dovecot (Debian)" if baseline is not None else "",
                    higher_is_better=False,
                    notes=f"median of {repeats}" + (", same client" if baseline else ""),
                )
            )
    return results
