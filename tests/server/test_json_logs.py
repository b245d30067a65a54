"""``log.format = "json"``: every line the server writes is one JSON object."""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from mailstead.core.log import ConnectionLog, JSONFormatter
from mailstead.testing.server import SubprocessServer
from mailstead.testing.waiting import poll_until

KEYS = {"time", "level", "logger", "message"}


def parse_lines(text: str) -> list[dict[str, str]]:
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # fails the test on any line that is not one JSON object
        assert isinstance(entry, dict), line
        assert entry.keys() >= KEYS, line
        moment = datetime.fromisoformat(entry["time"])
        assert entry["time"].endswith("Z") and moment.utcoffset() == UTC.utcoffset(None)
        entries.append(entry)
    return entries


def test_a_real_server_writes_only_json_lines(tmp_path: Path) -> None:
    forged = "2026-01-01T00:00:00 WARNING mailstead.auth auth failed: bob from 203.0.113.9"
    with SubprocessServer(tmp_path, {"log": {"format": "json", "level": "debug"}}) as server:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
            smtp.ehlo("client.example")
            smtp.mail("a@example.net")
            code, _ = smtp.rcpt("nobody@nowhere.example")
            assert code >= 500
        value = f"x\r\n{forged}".encode()
        with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30) as sock:
            replies = sock.makefile("rb")
            replies.readline()
            sock.sendall(b'a ID ("name" {%d}\r\n' % len(value))
            replies.readline()
            sock.sendall(value + b")\r\nb LOGOUT\r\n")
            while not replies.readline().startswith(b"b "):
                pass
        poll_until(lambda: True if "client id:" in server.log() else None, timeout=10,
                   failure=lambda: "the ID was not logged")
        server.terminate()
        assert server.wait() == 0
    entries = parse_lines(server.log())
    messages = [e["message"] for e in entries]
    assert any(m.startswith("mailstead ready") for m in messages)
    assert messages[-1] == "mailstead stopped"
    smtp_lines = [e for e in entries if e.get("session", "").startswith("smtp-")]
    assert smtp_lines, messages
    assert all(e["peer"].startswith("127.0.0.1") and not e["message"].startswith("[")
               for e in smtp_lines)
    [client_id] = [e for e in entries if "client id:" in e["message"]]
    assert f"x\r\n{forged}" in client_id["message"]  # kept inside the one JSON string
    assert client_id["session"].startswith("imap-")


def test_a_traceback_is_one_escaped_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("mailstead.t", logging.ERROR, __file__, 1, "bad %s",
                                   ("a\nb",), sys.exc_info())
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "bad a\nb"
    assert entry["level"] == "error" and entry["logger"] == "mailstead.t"
    assert entry["exc"].startswith("Traceback") and entry["exc"].endswith("ValueError: boom")


def test_connection_fields_come_from_the_adapter() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("mailstead.test.jsonlog")
    logger.addHandler(Keep())
    logger.propagate = False
    adapter = ConnectionLog(logger, "pop3-7", "192.0.2.1:4000")
    adapter.user = "bob@example.org"
    adapter.warning("auth failed")
    entry = json.loads(JSONFormatter().format(records[0]))
    assert entry | {"time": ""} == {
        "time": "", "level": "warning", "logger": "mailstead.test.jsonlog",
        "message": "auth failed", "session": "pop3-7", "peer": "192.0.2.1:4000",
        "user": "bob@example.org",
    }
