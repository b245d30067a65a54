"""Message data beyond a small threshold goes to a spool file, not memory.

A 41 MB message once cost 205 MB of memory to receive, and slow senders of unfinished large
messages held all of theirs in memory. Here the threshold is 16 KiB: a 600 KB message in
flight (SMTP DATA, BDAT, an IMAP APPEND literal) holds at most that much of the memory
budget, the rest is in data_dir/spool, and once the message is stored it is byte for byte
what was sent and its spool file is gone.
"""

from __future__ import annotations

import imaplib
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.core.budget import InputBudget
from mailstead.testing.server import ServerThread, SubprocessServer
from mailstead.testing.waiting import poll_until
from tests.server.line_client import LineClient

PASSWORD = "spool password"
THRESHOLD = 16 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    data_dir = tmp_path_factory.mktemp("spooling")
    leftover = data_dir / "spool" / "999999999-1.msg"  # a crash's, before start
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a message")
    config = {
        "auth": {"allow_plaintext": True},
        "limits": {"max_message_size": 1024 * 1024, "spool_threshold": THRESHOLD,
                   "max_spool_in_flight": 1536 * 1024},
    }
    with ServerThread(data_dir, config) as srv:
        srv.add_user("ann@example.org", PASSWORD)
        yield srv


def _spool_dir(server: ServerThread) -> Path:
    return server.services.settings.data_dir / "spool"


def _memory(server: ServerThread) -> InputBudget:
    budget = server.services.spools.memory
    assert budget is not None
    return budget


def _disk(server: ServerThread) -> InputBudget:
    budget = server.services.spools.disk
    assert budget is not None
    return budget


def _spooled_at_least(server: ServerThread, size: int) -> None:
    def enough() -> bool | None:
        files = list(_spool_dir(server).iterdir())
        return True if sum(f.stat().st_size for f in files) >= size else None

    poll_until(enough, timeout=10, failure=lambda: f"less than {size} octets spooled")


def _nothing_left(server: ServerThread) -> None:
    poll_until(
        lambda: True if not list(_spool_dir(server).iterdir()) and _memory(server).used == 0
        and _disk(server).used == 0 else None,
        timeout=10,
        failure=lambda: f"left: {list(_spool_dir(server).iterdir())}, memory "
                        f"{_memory(server).used}, disk {_disk(server).used}",
    )


def _message(size: int, subject: str = "spooled") -> bytes:
    head = f"Subject: {subject}\r\n\r\n".encode()
    line = b"0123456789" * 7 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    return head + body + b"." * 3 + b"\r\n"  # a line of dots: dot-stuffing round trip


def _smtp(server: ServerThread, connect: type[LineClient],
          source: str | None = None) -> LineClient:
    client = connect(server.port("smtp"), source)
    client.until(b"220 ")
    client.send(b"EHLO x\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\n")
    client.until(b"250 ")
    client.until(b"250 ")
    client.until(b"250 ")
    return client


def _imap(server: ServerThread, connect: type[LineClient]) -> LineClient:
    """A raw IMAP connection, logged in as ann (tag ``a`` used)."""
    client = connect(server.port("imap"))
    client.until(b"* OK")
    client.send(f'a LOGIN ann@example.org "{PASSWORD}"\r\n'.encode())
    client.until(b"a OK")
    return client


def _stored_last(server: ServerThread) -> bytes:
    messages = server.inbox_messages("ann@example.org")
    assert messages
    return messages[-1]


def test_leftovers_of_a_crash_are_gone_at_start(server: ServerThread) -> None:
    assert not (_spool_dir(server) / "999999999-1.msg").exists()


def test_smtp_data_in_flight_is_on_disk_not_in_memory(
        server: ServerThread, connect: type[LineClient]) -> None:
    message = _message(600_000)
    client = _smtp(server, connect)
    client.send(b"DATA\r\n")
    client.until(b"354")
    client.send(message.replace(b"\r\n...\r\n", b"\r\n....\r\n")[:500_000])  # unfinished
    _spooled_at_least(server, 400_000)
    assert _memory(server).used <= THRESHOLD + 64 * 1024  # the threshold and one read
    client.send(message.replace(b"\r\n...\r\n", b"\r\n....\r\n")[500_000:] + b".\r\n")
    assert client.until(b"250 ").startswith(b"250 2.0.0")
    stored = _stored_last(server)
    assert stored.endswith(b"\r\n" + message)  # after the trace headers, every octet
    _nothing_left(server)


def test_smtp_bdat_chunks_are_spooled(server: ServerThread, connect: type[LineClient]) -> None:
    message = _message(300_000, "chunked")
    client = _smtp(server, connect)
    client.send(b"BDAT 200000\r\n" + message[:200_000])
    client.until(b"250 2.0.0")
    _spooled_at_least(server, 150_000)
    assert _memory(server).used <= THRESHOLD + 64 * 1024
    rest = message[200_000:]
    client.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
    assert client.until(b"250 ").startswith(b"250 2.0.0")
    assert _stored_last(server).endswith(b"\r\n" + message)
    _nothing_left(server)


def test_smtp_rset_and_a_dropped_connection_remove_the_spool(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = _smtp(server, connect)
    client.send(b"BDAT 100000\r\n" + b"y" * 100_000)
    client.until(b"250 2.0.0")
    _spooled_at_least(server, 50_000)
    client.send(b"RSET\r\n")
    client.until(b"250 ")
    _nothing_left(server)
    dropped = _smtp(server, connect)
    dropped.send(b"DATA\r\n")
    dropped.until(b"354")
    dropped.send(_message(200_000))
    _spooled_at_least(server, 100_000)
    dropped.close()
    _nothing_left(server)


def test_the_disk_budget_refuses_for_now(
        server: ServerThread, connect: type[LineClient]) -> None:
    holder = _smtp(server, connect)
    holder.send(b"DATA\r\n")
    holder.until(b"354")
    holder.send(_message(1_000_000)[:-2])  # unfinished, most of the 1.5 MiB disk budget
    _spooled_at_least(server, 900_000)
    late = _smtp(server, connect)
    late.send(b"DATA\r\n")
    late.until(b"354")
    late.send(_message(800_000) + b".\r\n")
    assert late.until(b"4").startswith(b"451 4.3.2")
    holder.send(b"\r\n.\r\n")
    assert holder.until(b"250 ").startswith(b"250 2.0.0")
    _nothing_left(server)


def test_an_imap_append_literal_is_spooled(server: ServerThread) -> None:
    message = _message(400_000, "appended")
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login("ann@example.org", PASSWORD)
        typ, _ = imap.append("INBOX", "(\\Seen)", None, message)
        assert typ == "OK"
    assert _stored_last(server) == message
    _nothing_left(server)


def test_an_imap_literal_in_flight_is_on_disk(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = _imap(server, connect)
    message = _message(300_000, "held")
    client.send(b"b APPEND INBOX {%d}\r\n" % len(message))
    client.until(b"+")
    assert _disk(server).used >= len(message)  # reserved when announced
    client.send(message[:200_000])
    _spooled_at_least(server, 150_000)
    assert _memory(server).used <= THRESHOLD + 64 * 1024
    client.send(message[200_000:] + b"\r\n")
    assert client.until(b"b ").startswith(b"b OK [APPENDUID")
    assert _stored_last(server) == message
    _nothing_left(server)


def test_imap_spooled_literals_keep_the_literal_rules(
        server: ServerThread, connect: type[LineClient]) -> None:
    client = _imap(server, connect)
    with_nul = b"Subject: nul\r\n\r\n" + b"\x00" * 100_000 + b"\r\n"
    client.send(b"b APPEND INBOX {%d+}\r\n" % len(with_nul) + with_nul + b"\r\n")
    assert client.until(b"b ") == b"b BAD NUL in literal (use literal8)\r\n"
    client.send(b"c APPEND INBOX ~{%d+}\r\n" % len(with_nul) + with_nul + b"\r\n")
    assert client.until(b"c ").startswith(b"c OK")
    name = b"n" * 50_000  # a mailbox name is never a message
    client.send(b"d APPEND {%d+}\r\n" % len(name) + name + b" {5+}\r\nhello\r\n")
    assert client.until(b"d ").startswith(b"d BAD [TOOBIG]")
    _nothing_left(server)


def test_a_message_received_in_pieces_is_what_smtplib_sent(server: ServerThread) -> None:
    message = _message(700_000, "smtplib") + b".leading dot\r\n..two\r\n"
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as smtp:
        smtp.sendmail("s@remote.example", ["ann@example.org"], message)
    assert _stored_last(server).endswith(b"\r\n" + message)
    _nothing_left(server)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server where one client address may hold at most 1 MiB of the 8 MiB spool."""
    config = {"limits": {"max_message_size": 1024 * 1024, "spool_threshold": THRESHOLD,
                         "max_spool_per_client": 1024 * 1024,
                         "max_spool_in_flight": 8 * 1024 * 1024}}
    with ServerThread(tmp_path_factory.mktemp("shares"), config) as srv:
        srv.add_user("ann@example.org", PASSWORD)
        yield srv


def test_one_client_address_gets_only_its_share_of_the_spool(
        shared: ServerThread, connect: type[LineClient]) -> None:
    holder = _smtp(shared, connect, "127.0.0.2")
    holder.send(b"DATA\r\n")
    holder.until(b"354")
    holder.send(_message(900_000)[:-2])  # unfinished: most of 127.0.0.2's share
    _spooled_at_least(shared, 800_000)
    same = _smtp(shared, connect, "127.0.0.2")
    same.send(b"DATA\r\n")
    same.until(b"354")
    same.send(_message(400_000) + b".\r\n")
    assert same.until(b"4").startswith(b"451 4.3.2")  # over its address's share
    other = _smtp(shared, connect, "127.0.0.3")
    other.send(b"DATA\r\n")
    other.until(b"354")
    other.send(_message(400_000) + b".\r\n")
    assert other.until(b"250 ").startswith(b"250 2.0.0")  # the budget has room for it
    holder.send(b"\r\n.\r\n")
    assert holder.until(b"250 ").startswith(b"250 2.0.0")
    _nothing_left(shared)


@pytest.mark.slow
def test_a_message_cut_off_by_sigkill_leaves_nothing_behind(tmp_path: Path) -> None:
    """kill -9 in the middle of a large DATA: its spool file is on disk, nothing was
    acknowledged, and the next start removes the file; no part of it reaches a mailbox."""
    config = {"auth": {"allow_plaintext": True},
              "limits": {"max_message_size": 4 * 1024 * 1024, "spool_threshold": THRESHOLD}}
    server = SubprocessServer(tmp_path, config).start()
    try:
        client = LineClient(server.port("smtp"))
        client.until(b"220 ")
        client.send(b"EHLO x\r\nMAIL FROM:<s@remote.example>\r\n"
                    b"RCPT TO:<postmaster@localhost>\r\n")
        for _ in range(3):
            client.until(b"250 ")
        client.send(b"DATA\r\n")
        client.until(b"354")
        client.send(_message(2_000_000)[:1_500_000])
        spool = server.data_dir / "spool"
        poll_until(lambda: True if sum(f.stat().st_size for f in spool.iterdir()) > 1_000_000
                   else None, timeout=10, failure=lambda: "nothing spooled")
        server.kill()
        client.close()
        assert list(spool.iterdir())  # the crash left it
        again = SubprocessServer(tmp_path, config)
        again.log_path = tmp_path / "second.log"
        again.start()
        try:
            assert list(spool.iterdir()) == []
            assert "removed 1 unfinished message(s)" in again.log()
            with imaplib.IMAP4("127.0.0.1", again.port("imap")) as imap:
                password = _postmaster_password(server)
                imap.login("postmaster@localhost", password)
                typ, data = imap.select("INBOX", readonly=True)
                assert typ == "OK" and data == [b"0"]
        finally:
            again.kill()
    finally:
        server.kill()


def _postmaster_password(server: SubprocessServer) -> str:
    for line in server.first_run_path.read_text().splitlines():
        if line.split()[:1] == ["IMAP"]:
            return line.split()[-1]
    raise AssertionError("no first-run password printed")
