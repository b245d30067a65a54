"""swaks (Debian package ``swaks``), a real SMTP client, against all three SMTP listeners."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.store.models import User
from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed"),
]

PASSWORD = "swaks and mailstead"
MESSAGE = (
    b"From: Sender <sender@remote.example>\r\nTo: alice@example.org\r\n"
    b"Subject: from swaks\r\nMessage-ID: <swaks-1@remote.example>\r\n\r\n"
    b".a line that starts with a dot\r\nand a second line\r\n"
)
#: What alice submits carries her own From: (submission refuses anyone else's).
SUBMITTED = MESSAGE.replace(b"<sender@remote.example>", b"<alice@example.org>")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(tmp_path) as srv:
        srv.add_user("alice@example.org", PASSWORD)
        yield srv


def swaks(port: int, *args: str, data: bytes = MESSAGE) -> subprocess.CompletedProcess[str]:
    # swaks ends the data with its own CRLF before the final dot.
    data = data.removesuffix(b"\r\n")
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "swaks.example",
         "--timeout", "20", "--data", "-", *args],
        input=data.decode(), capture_output=True, text=True, timeout=60,
    )


def delivered(srv: ServerThread, address: str = "alice@example.org") -> list[bytes]:
    user: User | None = srv.call(srv.store.find_user(address))
    assert user is not None
    box = srv.call(srv.store.get_mailbox(user.id, "INBOX"))
    return [srv.call(srv.store.read_blob(m.blob_id))
            for m in srv.call(srv.store.list_messages(box.id))]


def body_of(stored: bytes) -> bytes:
    """Drop the three trace headers the server added (Return-Path, Delivered-To, Received)."""
    index = stored.index(b"From: Sender")
    return stored[index:]


@pytest.mark.parametrize("extra", [[], ["--pipeline"]])
def test_swaks_to_mx(server: ServerThread, extra: list[str]) -> None:
    result = swaks(server.port("smtp"), "--from", "sender@remote.example",
                   "--to", "alice@example.org", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    [stored] = delivered(server)
    assert body_of(stored) == MESSAGE
    assert stored.startswith(b"Return-Path: <sender@remote.example>\r\n")
    assert b"Received: from swaks.example ([127.0.0.1])" in stored


def test_swaks_starttls_auth_submission(server: ServerThread) -> None:
    result = swaks(server.port("submission"), "--tls", "--auth", "PLAIN",
                   "--auth-user", "alice@example.org", "--auth-password", PASSWORD,
                   "--from", "alice@example.org", "--to", "alice@example.org", "--pipeline",
                   data=SUBMITTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "235 2.7.0" in result.stdout
    [stored] = delivered(server)
    assert b"with ESMTPSA (TLSv1." in stored
    assert body_of(stored) == SUBMITTED


def test_swaks_implicit_tls_auth_login_to_remote_is_queued(server: ServerThread) -> None:
    result = swaks(server.port("submissions"), "--tls-on-connect", "--auth", "LOGIN",
                   "--auth-user", "alice@example.org", "--auth-password", PASSWORD,
                   "--from", "alice@example.org", "--to", "friend@remote.example",
                   data=SUBMITTED)
    assert result.returncode == 0, result.stdout + result.stderr
    [queued] = server.call(server.store.list_queue())
    assert [r.address for r in queued.envelope.recipients] == ["friend@remote.example"]


def test_swaks_relay_attempt_is_refused(server: ServerThread) -> None:
    result = swaks(server.port("smtp"), "--from", "alice@example.org",
                   "--to", "victim@remote.example")
    assert result.returncode != 0
    assert "554 5.7.1" in result.stdout
    assert server.call(server.store.list_queue()) == []


def test_swaks_wrong_password(server: ServerThread) -> None:
    result = swaks(server.port("submission"), "--tls", "--auth", "PLAIN",
                   "--auth-user", "alice@example.org", "--auth-password", "nope",
                   "--from", "alice@example.org", "--to", "alice@example.org")
    assert result.returncode != 0
    assert "535 5.7.8" in result.stdout
