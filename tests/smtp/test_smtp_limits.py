"""Limits in the read loop, SMTP smuggling, storage failures and the error budget."""

from __future__ import annotations

import errno
import smtplib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mailstead.core import sanity
from mailstead.core.errors import StorageUnavailable
from mailstead.store.blobs import BlobFiles
from mailstead.store.sql.writer import without_events
from tests.smtp.conftest import Connect, Mailserver, MakeServer, RawClient, message, strip_trace


def test_over_long_command_line_is_500_and_the_session_goes_on(raw: Connect) -> None:
    client = raw()
    client.send(b"NOOP " + b"x" * 10000 + b"\r\n")
    assert client.reply() == (500, [b"5.5.2 Line too long"])
    assert client.command(b"NOOP")[0] == 250


def test_long_data_lines_are_kept_whole(server: Mailserver, raw: Connect) -> None:
    # RFC 5321 §4.5.3.1.6 asks for 1000; longer lines are accepted, the size limit bounds
    # memory.
    client = raw()
    client.command(b"EHLO x")
    client.command(b"MAIL FROM:<s@remote.example>")
    client.command(b"RCPT TO:<alice@example.org>")
    assert client.command(b"DATA")[0] == 354
    client.send(b"y" * 10000 + b"\r\n.\r\n")
    assert client.reply()[0] == 250
    [stored] = server.messages(server.alice)
    assert strip_trace(stored) == b"y" * 10000 + b"\r\n"


def test_bare_lf_in_data_is_refused_by_default(server: Mailserver, raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    client.command(b"MAIL FROM:<s@remote.example>")
    client.command(b"RCPT TO:<alice@example.org>")
    client.command(b"DATA")
    client.send(b"Subject: a\n\nbody\r\n.\r\n")
    assert client.reply() == (550, [b"5.5.2 Bare <LF> line endings are not accepted"])
    assert server.messages(server.alice) == []


def test_smtp_smuggling_is_not_executed(server: Mailserver, raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    client.command(b"MAIL FROM:<s@remote.example>")
    client.command(b"RCPT TO:<alice@example.org>")
    client.command(b"DATA")
    smuggled = (b"Subject: outer\r\n\r\nouter\r\n\n.\r\nMAIL FROM:<admin@example.org>\r\n"
                b"RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n")
    client.send(smuggled)
    code, _ = client.reply()
    assert code == 550  # the bare LF gave it away; nothing inside ran as a command
    assert client.command(b"NOOP")[0] == 250
    assert server.messages(server.bob) == []


def test_bare_lf_normalised_when_allowed(make_server: MakeServer) -> None:
    server = make_server({"smtp": {"reject_bare_lf": False}})
    client = RawClient(server.port())
    client.reply()
    client.command(b"EHLO x")
    client.command(b"MAIL FROM:<s@remote.example>")
    client.command(b"RCPT TO:<alice@example.org>")
    client.command(b"DATA")
    client.send(b"Subject: a\n\nbody\n.\nstill data\r\n.\r\n")
    assert client.reply()[0] == 250
    client.close()
    [stored] = server.messages(server.alice)
    assert strip_trace(stored) == b"Subject: a\r\n\r\nbody\r\n\r\nstill data\r\n"


def test_error_budget_closes_the_connection(make_server: MakeServer) -> None:
    server = make_server({"limits": {"max_errors_per_session": 3}})
    client = RawClient(server.port())
    client.reply()
    client.send(b"BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n")
    assert [code for code, _ in client.replies(4)] == [500, 500, 500, 421]
    assert client.closed()
    client.close()


def test_command_budget(make_server: MakeServer) -> None:
    server = make_server({"limits": {"max_commands_per_session": 3}})
    client = RawClient(server.port())
    client.reply()
    client.send(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n")
    assert [code for code, _ in client.replies(4)] == [250, 250, 250, 421]
    assert client.closed()
    client.close()


def test_idle_timeout_says_421(make_server: MakeServer) -> None:
    server = make_server({"limits": {"smtp_idle_timeout_seconds": 1}})
    client = RawClient(server.port())
    client.reply()
    # No sleep: the read itself waits for the 421 (up to the client's own deadline). The
    # reply says which limit closed the session; how long it took is not asserted.
    assert client.reply() == (421, [b"4.4.2 Timeout exceeded, closing connection"])
    assert client.closed()
    client.close()


def test_connections_per_ip_cap_says_421(make_server: MakeServer) -> None:
    server = make_server({"limits": {"max_connections_per_ip": 1}})
    first = RawClient(server.port())
    assert first.reply()[0] == 220
    second = RawClient(server.port())
    code, lines = second.reply()
    assert (code, lines[0][:5]) == (421, b"4.7.0")
    first.close()
    second.close()


def test_too_many_recipients_is_452(make_server: MakeServer) -> None:
    server = make_server({"smtp": {"max_recipients": 2}})
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("s@remote.example")
        assert client.rcpt("alice@example.org")[0] == 250
        assert client.rcpt("bob@example.org")[0] == 250
        assert client.rcpt("alice@example.org") == (452, b"4.5.3 Too many recipients")


def test_storage_failure_is_451_and_nothing_is_visible(server: Mailserver) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("disk on fire")

    store = server.store
    original = store.deliver
    store.deliver = broken  # type: ignore[method-assign]
    try:
        with smtplib.SMTP("127.0.0.1", server.port()) as client:
            client.ehlo()
            client.mail("s@remote.example")
            client.rcpt("alice@example.org")
            assert client.data(message("lost")) == (
                451, b"4.3.0 Temporary failure, please try again later")
    finally:
        store.deliver = original  # type: ignore[method-assign]
    assert server.messages(server.alice) == []


def _limit_database_growth(server: Mailserver, pages: int | None) -> None:
    """Let the database file grow by at most ``pages`` pages (None: no limit): SQLite then
    fails a write with SQLITE_FULL, exactly as on a full disk."""
    def limit(conn: sqlite3.Connection) -> None:
        count = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {count + pages if pages is not None else 2**31}")

    server.call(server.store._db.write(without_events(limit)))


def test_a_full_disk_is_452_4_3_1_and_nothing_is_visible(server: Mailserver) -> None:
    """RFC 3463 X.3.1 "mail system full"; it was answered as a generic 451 4.3.0."""
    big = message("full") + b"x" * 250_000 + b"\r\n"  # kept in the database, not a file
    _limit_database_growth(server, 0)
    try:
        with smtplib.SMTP("127.0.0.1", server.port()) as client:
            client.ehlo()
            client.mail("s@remote.example")
            client.rcpt("alice@example.org")
            assert client.data(big) == (
                452, b"4.3.1 Insufficient system storage, try again later")
    finally:
        _limit_database_growth(server, None)
    assert server.messages(server.alice) == []
    with smtplib.SMTP("127.0.0.1", server.port()) as client:  # space again: mail flows
        assert client.sendmail("s@remote.example", ["alice@example.org"], big) == {}
    assert len(server.messages(server.alice)) == 1


def test_a_full_disk_for_a_body_file_is_452_too(
        server: Mailserver, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(self: BlobFiles, data: bytes) -> tuple[str, set[Path]]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BlobFiles, "write", no_space)
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("s@remote.example")
        client.rcpt("alice@example.org")
        assert client.data(message("file") + b"x" * 400_000 + b"\r\n")[:1] == (452,)
    assert server.messages(server.alice) == []


def test_a_bug_never_shows_a_traceback(
    server: Mailserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What production does with a bug (the sanity flag is off): 451, no detail, and the
    session carries on."""

    async def buggy(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("internal detail")

    monkeypatch.delenv(sanity.ENV_VAR)
    monkeypatch.setattr(server.srv.services.router, "resolve", buggy)
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("s@remote.example")
        code, text = client.rcpt("alice@example.org")
        assert (code, text) == (451, b"4.3.0 Temporary failure, please try again later")
        assert client.noop()[0] == 250


def test_quota_full_is_452_422_and_over_quota_data_is_refused(server: Mailserver) -> None:
    small = server.srv.add_user("small@example.org", "pw", quota_bytes=600)
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("s@remote.example", ["SIZE=5000"])
        assert client.rcpt("small@example.org") == (452, b"4.2.2 Mailbox full")
        client.rset()
        client.mail("s@remote.example")
        client.rcpt("small@example.org")
        client.rcpt("alice@example.org")
        assert client.data(b"x" * 1000 + b"\r\n") == (452, b"4.2.2 Mailbox full")
        assert client.sendmail("s@remote.example", ["small@example.org"], b"fits\r\n") == {}
    # All or nothing: Alice did not get the refused message either.
    assert server.messages(server.alice) == []
    assert len(server.messages(small)) == 1
