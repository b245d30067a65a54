"""One memory budget for the message data all connections hold at once.

60 unauthenticated SMTP connections holding unfinished 45 MiB DATA took the server to
2.8 GB in 20 s. Here the budget is 64 KiB, a message at most 48 KiB: one connection holds
40 KiB of an unfinished message, and another's message no longer fits beside it. It gets a
temporary refusal, the first goes on, and once nothing is in flight the budget is whole
again, whatever way each message ended.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailstead.core.budget import InputBudget, Reservation
from mailstead.testing.server import ServerThread
from mailstead.testing.waiting import poll_until
from tests.server.line_client import LineClient

PASSWORD = "budget password"
HELD = 40_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {
        "auth": {"allow_plaintext": True},
        "limits": {"max_message_size": 48 * 1024, "max_input_in_flight": 64 * 1024},
    }
    with ServerThread(tmp_path_factory.mktemp("budget"), config) as srv:
        srv.add_user("ann@example.org", PASSWORD)
        yield srv


def _budget(server: ServerThread) -> InputBudget:
    budget = server.services.spools.memory
    assert budget is not None
    return budget


def _held_at_least(server: ServerThread, size: int) -> None:
    poll_until(lambda: True if _budget(server).used >= size else None, timeout=10,
               failure=lambda: f"the server holds {_budget(server).used} octets, not {size}")


def _all_given_back(server: ServerThread) -> None:
    poll_until(lambda: True if _budget(server).used == 0 else None, timeout=10,
               failure=lambda: f"{_budget(server).used} octets still held")


def _smtp(server: ServerThread, connect: type[LineClient]) -> LineClient:
    client = connect(server.port("smtp"))
    client.until(b"220 ")
    client.send(b"EHLO x\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\n")
    client.until(b"250 ")  # EHLO's last line
    client.until(b"250 ")
    client.until(b"250 ")
    return client


def _message(size: int) -> bytes:
    return b"Subject: budget\r\n\r\n" + b"x" * (size - 21) + b"\r\n"


def test_smtp_data_beyond_the_budget_is_refused_for_now(
        server: ServerThread, connect: type[LineClient]) -> None:
    holder = _smtp(server, connect)
    holder.send(b"DATA\r\n")
    holder.until(b"354")
    holder.send(_message(HELD)[:-2])  # unfinished
    _held_at_least(server, HELD - 100)
    late = _smtp(server, connect)
    late.send(b"DATA\r\n")
    late.until(b"354")
    late.send(_message(HELD) + b".\r\n")
    assert late.until(b"4") == b"451 4.3.2 Too much mail arriving at once, please try again " \
        b"later\r\n"
    holder.send(b"\r\n.\r\n")
    assert holder.until(b"250 ").startswith(b"250 2.0.0")
    _all_given_back(server)
    late.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\nDATA\r\n")
    late.until(b"354")
    late.send(_message(HELD) + b".\r\n")  # now it fits
    assert late.until(b"250 2.0.0")
    _all_given_back(server)


def test_smtp_bdat_chunks_hold_the_budget_until_the_transaction_ends(
        server: ServerThread, connect: type[LineClient]) -> None:
    holder = _smtp(server, connect)
    holder.send(b"BDAT %d\r\n" % HELD + b"y" * HELD)
    holder.until(b"250 2.0.0")
    _held_at_least(server, HELD)
    late = _smtp(server, connect)
    late.send(b"BDAT %d LAST\r\n" % HELD + _message(HELD))
    assert late.until(b"4").startswith(b"451 4.3.2")
    holder.send(b"RSET\r\n")  # the held chunks go, and with them what they held
    holder.until(b"250 ")
    _all_given_back(server)
    late.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<ann@example.org>\r\n"
              b"BDAT %d LAST\r\n" % HELD + _message(HELD))
    late.until(b"250 ")
    late.until(b"250 ")
    assert late.until(b"250 2.0.0 ")  # stored
    _all_given_back(server)


def test_smtp_a_dropped_connection_gives_its_chunks_back(
        server: ServerThread, connect: type[LineClient]) -> None:
    holder = _smtp(server, connect)
    holder.send(b"BDAT %d\r\n" % HELD + b"y" * HELD)
    holder.until(b"250 2.0.0")
    _held_at_least(server, HELD)
    holder.close()
    _all_given_back(server)


def test_imap_a_literal_beyond_the_budget_is_refused_for_now(
        server: ServerThread, connect: type[LineClient]) -> None:
    holder, late = connect(server.port("imap")), connect(server.port("imap"))
    for client in (holder, late):
        client.until(b"* OK")
        client.send(f'a LOGIN ann@example.org "{PASSWORD}"\r\n'.encode())
        client.until(b"a OK")
    holder.send(b"b APPEND INBOX {%d}\r\n" % HELD)
    holder.until(b"+")
    holder.send(_message(HELD)[:1000])  # the literal is announced: all of it is counted
    late.send(b"c APPEND INBOX {%d}\r\n" % HELD)
    assert late.until(b"c ") == b"c NO [UNAVAILABLE] Too much data arriving at once, " \
        b"try again later\r\n"
    holder.send(_message(HELD)[1000:] + b"\r\n")
    assert holder.until(b"b ").startswith(b"b OK")
    _all_given_back(server)
    late.send(b"d APPEND INBOX {%d+}\r\n" % HELD + _message(HELD) + b"\r\n")
    assert late.until(b"d ").startswith(b"d OK")
    _all_given_back(server)


def test_a_reservation_takes_until_refused_and_gives_everything_back() -> None:
    budget = InputBudget(100)
    first, second = Reservation(budget), Reservation(budget)
    assert first.take(60) and first.take(20)
    assert not second.take(30) and second.refused
    assert not second.take(1)  # refused once, refused for the rest of its message
    assert second.size == 0 and budget.used == 80
    first.close()
    first.close()  # twice is harmless
    assert budget.used == 0
    second.close()  # its message is over: the next one starts afresh
    assert second.take(30) and budget.used == 30
    assert Reservation(None).take(10**12)  # no budget: nothing to refuse
