"""Logs say who did what on which connection, and never contain a password."""

from __future__ import annotations

import base64
import logging
import poplib
import socket
import sys
from pathlib import Path

import pytest

from mailstead.core.log import SafeFormatter, escape_controls
from mailstead.testing.server import ServerThread, SubprocessServer
from mailstead.testing.waiting import poll_until

SECRET = "Very$ecret-Passw0rd"


def test_pop3_logins_log_the_user_but_never_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ServerThread(tmp_path) as server:
        server.add_user("alice@example.org", SECRET)
        port = server.port("pop3s")
        client = poplib.POP3_SSL("127.0.0.1", port, context=server.client_ssl_context())
        client.user("alice@example.org")
        client.pass_(SECRET)
        client.quit()
        client = poplib.POP3_SSL("127.0.0.1", port, context=server.client_ssl_context())
        plain = base64.b64encode(f"\0alice@example.org\0{SECRET}".encode()).decode()
        client._shortcmd(f"AUTH PLAIN {plain}")
        client.quit()
        bad = poplib.POP3_SSL("127.0.0.1", port, context=server.client_ssl_context())
        bad.user("alice@example.org")
        with pytest.raises(poplib.error_proto):
            bad.pass_(SECRET + "-wrong")
        bad.close()
    text = caplog.text
    assert SECRET not in text
    assert plain not in text
    assert "alice@example.org" in text  # the user is named on the session's lines
    connects = [r for r in caplog.records if "connect" in r.getMessage()]
    assert connects and all(r.getMessage().startswith("[pop3s-") for r in connects)


def test_control_characters_from_a_client_cannot_forge_a_log_line(tmp_path: Path) -> None:
    """An IMAP ID literal with CRLF once wrote a whole forged line ("auth failed … from
    203.0.113.9") that fail2ban would act on, before any login."""
    forged = "2026-01-01T00:00:00 WARNING mailstead.auth auth failed: bob from 203.0.113.9"
    value = f"x\r\n{forged}\u2028{forged}".encode()
    with SubprocessServer(tmp_path, {"log": {"level": "info"}}) as server:
        with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30) as sock:
            replies = sock.makefile("rb")
            replies.readline()
            sock.sendall(b'a ID ("name" {%d}\r\n' % len(value))
            assert replies.readline().startswith(b"+")
            sock.sendall(value + b")\r\n")
            assert replies.readline() == b"* ID NIL\r\n"
            assert replies.readline().startswith(b"a OK")
            sock.sendall(b"b LOGOUT\r\n")
            while not replies.readline().startswith(b"b "):
                pass
        poll_until(lambda: True if "client id:" in server.log() else None, timeout=10,
                   failure=lambda: "the ID was not logged")
        lines = server.log().splitlines()
    assert not any(line.startswith("2026-01-01") for line in lines)
    assert not any("mailstead.auth auth failed" in line and "client id" not in line
                   for line in lines)
    [logged] = [line for line in lines if "client id:" in line]
    assert "x\\x0d\\x0a2026-01-01" in logged and "\\u20282026-01-01" in logged


def test_the_formatter_escapes_the_message_and_keeps_a_traceback_readable() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "bad %s", ("a\nb\x1b[31m",),
                                   sys.exc_info())
    text = formatter.format(record)
    first, *rest = text.splitlines()
    assert first == "ERROR bad a\\x0ab\\x1b[31m"
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"
    assert escape_controls("tab\tstays\x85") == "tab\tstays\\x85"
