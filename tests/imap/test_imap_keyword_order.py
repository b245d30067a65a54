"""A new keyword reaches a session as FLAGS before any FETCH shows it (RFC 9051 §7.3.5,
§7.5.2), whichever session created it and whenever it was created."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import Raw, append, connect, status_of

_FETCH_FLAGS = re.compile(rb"^\* \d+ FETCH \(.*?FLAGS \(([^)]*)\)")
_FLAGS = re.compile(rb"^\* FLAGS \(([^)]*)\)")


class KeywordWatch:
    """Follows one session's responses: the keywords FLAGS told it of, and every FETCH
    that showed a keyword before that."""

    def __init__(self) -> None:
        self.announced: set[bytes] = set()
        self.violations: list[bytes] = []

    def see(self, lines: list[bytes]) -> None:
        for line in lines:
            if m := _FLAGS.match(line):
                self.announced = {f for f in m.group(1).split() if not f.startswith(b"\\")}
            elif m := _FETCH_FLAGS.match(line):
                shown = {f for f in m.group(1).split() if not f.startswith(b"\\")}
                if shown - self.announced:
                    self.violations.append(line)


def _with_a_keyword_added_meanwhile(
    server: ServerThread, account: str, monkeypatch: pytest.MonkeyPatch, keyword: str,
    command: str,
) -> tuple[list[bytes], KeywordWatch, Raw, imaplib.IMAP4]:
    """Run ``command`` in a session while another session's STORE of ``keyword`` commits
    after the flush that starts the command and before it reads the flags. Made
    deterministic by running the other STORE from inside the store read the command makes.
    Returns the command's lines (the watch has seen them) and both sessions, still open."""
    other = connect(server, account)
    append(other)
    other.select("INBOX")
    raw = Raw(server.port("imap"), login=account)
    watch = KeywordWatch()
    watch.see(raw.command("SELECT INBOX"))
    store = server.store
    original: Callable[..., Awaitable[Any]] = store.list_messages
    armed = threading.Event()
    armed.set()

    async def list_messages(*args: Any, **kwargs: Any) -> Any:
        if armed.is_set():
            armed.clear()
            typ, _ = await asyncio.to_thread(other.store, "1", "+FLAGS", f"({keyword})")
            assert typ == "OK"
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "list_messages", list_messages)
    lines = raw.command(command)
    assert not armed.is_set() and status_of(lines) == b"OK"
    watch.see(lines)
    return lines, watch, raw, other


def test_fetch_after_a_keyword_created_meanwhile_gets_flags_first(
    server: ServerThread, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines, watch, raw, other = _with_a_keyword_added_meanwhile(
        server, account, monkeypatch, "$Meanwhile", "FETCH 1 (FLAGS)")
    assert watch.violations == []
    flags_at = next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS "))
    fetch_at = next(i for i, line in enumerate(lines) if b"FETCH" in line)
    assert b"$Meanwhile" in lines[flags_at] and flags_at < fetch_at
    assert lines[flags_at + 1].startswith(b"* OK [PERMANENTFLAGS (")
    assert b"$Meanwhile" in lines[flags_at + 1]
    # Announced once: the change event that follows is no news.
    more = raw.command("NOOP")
    assert not any(line.startswith(b"* FLAGS") for line in more)
    raw.close()
    other.logout()


def test_store_shows_a_keyword_another_session_added_meanwhile_after_flags(
    server: ServerThread, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STORE answers with the message's flags as the store has them after the change,
    which may include another session's new keyword."""
    lines, watch, raw, other = _with_a_keyword_added_meanwhile(
        server, account, monkeypatch, "$Elsewhere", "STORE 1 +FLAGS (\\Seen)")
    assert watch.violations == [] and b"$Elsewhere" in b"".join(lines)
    raw.close()
    other.logout()


def test_many_sessions_never_see_an_unannounced_keyword(
    server: ServerThread, account: str
) -> None:
    """Several sessions create keywords and read flags as fast as they can for a few
    seconds; every response of every session is checked."""
    seed = connect(server, account)
    for _ in range(5):
        append(seed)
    seed.logout()
    clients = 6
    stop = time.monotonic() + 3.0
    watches = [KeywordWatch() for _ in range(clients)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        raw = Raw(server.port("imap"), login=account)
        watch = watches[n]
        try:
            watch.see(raw.command("SELECT INBOX"))
            i = 0
            while time.monotonic() < stop:
                i += 1
                watch.see(raw.command(f"STORE {i % 5 + 1} +FLAGS.SILENT (k{n}x{i})"))
                watch.see(raw.command("FETCH 1:* (FLAGS)"))
                watch.see(raw.command(f"UID STORE {(i + n) % 5 + 1} +FLAGS (\\Seen)"))
                watch.see(raw.command("NOOP"))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                raw.command("LOGOUT")
            raw.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [w.violations[:3] for w in watches] == [[]] * clients
    # The load did what it is for: every session saw keywords of the others.
    assert all(len(w.announced) > clients for w in watches)


def test_imaplib_untagged_flags_name_the_new_keyword(server: ServerThread,
                                                     account: str) -> None:
    """The same through imaplib: the FLAGS it keeps names the keyword."""
    a: imaplib.IMAP4 = connect(server, account)
    b: imaplib.IMAP4 = connect(server, account)
    append(a)
    a.select("INBOX")
    b.select("INBOX")
    assert a.store("1", "+FLAGS", "($Shared)")[0] == "OK"
    typ, data = b.fetch("1", "(FLAGS)")
    assert typ == "OK" and b"$Shared" in data[-1]
    assert any(b"$Shared" in f for f in b.untagged_responses.get("FLAGS", []))
    a.logout()
    b.logout()
