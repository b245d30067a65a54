"""Total deadlines: an anonymous connection must log in in time, and a message's data must
arrive in time, however steadily a client keeps the connection busy.

The attack these stop: SMTP DATA and an IMAP APPEND literal sent at one byte per 10 s were
still open after 33 minutes, and an unauthenticated IMAP connection lived 30 minutes, each
holding a connection slot and memory. Here both deadlines are 1 second (the idle timers
stay at their defaults of 5 to 30 minutes), so every test ends by a deadline or not at all
(the suite's timeout).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.server.line_client import LineClient

PASSWORD = "deadline password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {
        "auth": {"allow_plaintext": True},
        "limits": {"login_timeout_seconds": 1, "transfer_timeout_seconds": 1},
    }
    with ServerThread(tmp_path_factory.mktemp("deadlines"), config) as srv:
        srv.add_user("ann@example.org", PASSWORD)
        yield srv


def test_imap_anonymous_connections_must_log_in_in_time(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = connect(server.port("imap"))
    client.line()
    client.send(b"a NOOP\r\n")
    assert client.until(b"a ").startswith(b"a OK")
    assert client.until(b"* BYE") == b"* BYE Autologout; authentication took too long\r\n"
    assert client.closed()


def test_imap_a_literal_that_trickles_is_cut_off(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = connect(server.port("imap"))
    client.line()
    client.send(f'a LOGIN ann@example.org "{PASSWORD}"\r\n'.encode())
    assert client.until(b"a ").startswith(b"a OK")
    client.send(b"b APPEND INBOX {100}\r\n")
    assert client.line().startswith(b"+")
    client.send(b"Subject: slow\r\n")  # and then the rest never comes
    assert client.until(b"* BYE") == (
        b"* BYE Autologout; the command's data took too long to arrive\r\n")
    assert client.closed()


def test_imap_commands_before_login_are_a_few_kib(
        server: ServerThread, connect: type[LineClient]) -> None:
    """Stacked literals before login once let an anonymous client park ~50 MiB."""
    client = connect(server.port("imap"))
    client.line()
    client.send(b'a ID ("name" {20000}\r\n')
    assert client.line().startswith(b"a NO [TOOBIG]")
    client.send(b'b ID ("name" {20000+}\r\n' + b"x" * 100)
    assert client.until(b"* BYE").startswith(b"* BYE [TOOBIG]")
    assert client.closed()


def test_smtp_data_that_trickles_is_cut_off(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = connect(server.port("smtp"))
    client.line()
    client.send(b"EHLO x\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\n"
                b"DATA\r\n")
    assert client.until(b"354")
    client.send(b"Subject: slow\r\n")
    assert client.until(b"421 ") == b"421 4.4.2 Timeout exceeded, closing connection\r\n"
    assert client.closed()


def test_smtp_bdat_chunks_share_one_deadline(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = connect(server.port("smtp"))
    client.line()
    client.send(b"EHLO x\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\n"
                b"BDAT 6\r\nhello\n")
    assert client.until(b"250 2.0.0 6 octets")
    # Each chunk would come in time on its own; the message as a whole does not.
    client.send(b"BDAT 100\r\nmore")
    assert client.until(b"421 ") == b"421 4.4.2 Timeout exceeded, closing connection\r\n"
    assert client.closed()


def test_smtp_submission_must_log_in_in_time(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = connect(server.port("submission"))
    client.line()
    client.send(b"EHLO x\r\n")
    assert client.until(b"250 ")
    assert client.until(b"421 ") == b"421 4.4.2 Timeout exceeded, closing connection\r\n"
    assert client.closed()


def test_smtp_mx_sessions_have_no_login_deadline(
        server: ServerThread, connect: type[LineClient]) -> None:
    """On port 25 nobody logs in; the idle timer and the data deadline are what apply.
    Both ends of a full transaction, after the login deadline has passed twice over."""
    client = connect(server.port("smtp"))
    client.line()
    client.send(b"EHLO x\r\n")
    client.until(b"250 ")
    probe = connect(server.port("submission"))  # wait as long as a submission deadline
    probe.line()
    probe.until(b"421 ")
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\nDATA\r\n")
    client.until(b"354")
    client.send(b"Subject: in time\r\n\r\nhello\r\n.\r\n")
    assert client.until(b"250 2.0.0")


def test_pop3_anonymous_connections_must_log_in_in_time(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = connect(server.port("pop3"))
    assert client.line().startswith(b"+OK")
    client.send(b"CAPA\r\n")
    assert client.until(b".\r\n")
    assert client.closed()  # RFC 1939 §3: the server just closes
