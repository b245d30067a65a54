"""MULTIAPPEND (RFC 3502): several messages in one APPEND, all stored or none.

Against a real server with imaplib (raw lines where it has no API), imapclient's
``multiappend``, and the pure grammar. The failure cases prove atomicity from the outside:
after a refused second message, the mailbox's STATUS (MESSAGES, UIDNEXT) is what it was
before, so nothing of the first one was stored either."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from imapclient import IMAPClient

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.parse.commands import (
    MAX_APPEND_MESSAGES,
    Append,
    Command,
    parse_command,
)
from mailstead.imap.parse.errors import ParseError
from mailstead.testing.server import ServerThread
from mailstead.testing.waiting import poll_until

from .conftest import PASSWORD, SIMPLE_MESSAGE, Raw, connect, imap_config, status_of

MAX_SIZE = 64 * 1024
SPOOL_AT = 4096  # literals above this go to a spool file (limits.spool_threshold)


def message(n: int, size: int = 0) -> bytes:
    body = f"From: a@example.org\r\nSubject: part {n}\r\n\r\nbody {n}\r\n".encode()
    if size > len(body):
        body += b"y" * (size - len(body) - 2) + b"\r\n"
    return body


def parse(data: bytes) -> Command[Any]:
    return parse_command(data, GRAMMARS)


# -- grammar ------------------------------------------------------------------------------


def test_grammar_reads_every_message_with_its_own_flags_and_date() -> None:
    cmd = parse(
        b'a APPEND Drafts (\\Seen) {2}\r\nhi {3}\r\nabc'
        b' (\\Flagged $Work) " 5-Mar-2024 10:11:12 +0100" UTF8 (~{2}\r\nxy)'
    )
    args = cmd.args
    assert isinstance(args, Append)
    [first, second, third] = args.messages
    assert (first.flags, first.date, first.message) == (("\\Seen",), None, b"hi")
    assert (second.flags, second.date, second.message) == ((), None, b"abc")
    assert third.flags == ("\\Flagged", "$Work") and third.message == b"xy"
    assert third.date == datetime(2024, 3, 5, 9, 11, 12, tzinfo=UTC)


@pytest.mark.parametrize("frame", [
    b"a APPEND INBOX {2}\r\nhi{2}\r\nxy",  # no SP between messages
    b"a APPEND INBOX {2}\r\nhi x",  # an atom where a message belongs
    b"a APPEND INBOX {2}\r\nhi (\\Seen)",  # flags and no message
])
def test_grammar_refuses_a_malformed_second_message(frame: bytes) -> None:
    with pytest.raises(ParseError):
        parse(frame)


def test_grammar_bounds_the_number_of_messages() -> None:
    many = b"a APPEND INBOX" + b" {1}\r\nx" * MAX_APPEND_MESSAGES
    assert len(parse(many).args.messages) == MAX_APPEND_MESSAGES
    with pytest.raises(ParseError) as info:
        parse(many + b" {1}\r\nx")
    assert "messages in one APPEND" in info.value.reason


# -- a running server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = imap_config(max_message_size=MAX_SIZE, spool_threshold=SPOOL_AT)
    with ServerThread(tmp_path_factory.mktemp("multiappend"), config) as srv:
        yield srv


def multiappend(raw: Raw, mailbox: str, parts: list[tuple[str, bytes]], *,
                sync: bool = True, tag: str = "m1") -> list[bytes]:
    """One APPEND of ``parts`` (options before each literal, its octets): synchronising
    literals wait for each ``+`` as a client must; LITERAL+ ones go without waiting. Returns
    every line after the last continuation, the tagged reply last."""
    head = f"{tag} APPEND {mailbox}".encode()
    for i, (opts, data) in enumerate(parts):
        announce = b"%s {%d%s}\r\n" % (
            (b" " + opts.encode()) if opts else b"", len(data), b"" if sync else b"+")
        raw.send((head if i == 0 else b"") + announce)
        if sync:
            line = raw.readline()
            if not line.startswith(b"+"):  # refused before its octets were sent
                return [line]
        raw.send(data)
    raw.send(b"\r\n")
    return raw.read_until_tag(tag)


def mailbox_status(raw: Raw, mailbox: str = "INBOX") -> tuple[int, int]:
    lines = raw.command(f"STATUS {mailbox} (MESSAGES UIDNEXT)")
    m = re.search(rb"MESSAGES (\d+) UIDNEXT (\d+)", lines[0])
    assert m is not None, lines
    return int(m[1]), int(m[2])


def test_capability_advertises_multiappend(raw: Raw) -> None:
    assert b" MULTIAPPEND" in raw.command("CAPABILITY")[0]


@pytest.mark.parametrize("sync", [True, False], ids=["synchronising", "literal-plus"])
def test_all_messages_stored_with_one_appenduid(raw: Raw, client: imaplib.IMAP4,
                                                sync: bool) -> None:
    raw.command(b"APPEND INBOX {%d+}\r\n%s" % (len(SIMPLE_MESSAGE), SIMPLE_MESSAGE))
    parts = [
        ("(\\Seen)", message(1)),
        ('(\\Flagged $Work) "01-Feb-2024 10:00:00 +0000"', message(2)),
        ("", message(3)),
    ]
    lines = multiappend(raw, "INBOX", parts, sync=sync)
    assert status_of(lines) == b"OK", lines
    m = re.search(rb"\[APPENDUID (\d+) 2:4\]", lines[-1])
    assert m is not None, lines
    client.select("INBOX")
    typ, data = client.uid("FETCH", "2:4", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK"
    fetched = [d for d in data if isinstance(d, tuple)]
    assert [body for _, body in fetched] == [message(1), message(2), message(3)]
    assert b"\\Seen" in fetched[0][0] and b"\\Flagged" not in fetched[0][0]
    assert b"$Work" in fetched[1][0] and b"\\Flagged" in fetched[1][0]
    assert b'INTERNALDATE "01-Feb-2024 10:00:00 +0000"' in fetched[1][0]


def test_spooled_literals_are_stored_whole(raw: Raw, client: imaplib.IMAP4) -> None:
    """Literals past the spool threshold go to files as for APPEND, each one of them."""
    big = [message(n, size=SPOOL_AT * (n + 1) + 7) for n in range(3)]
    lines = multiappend(raw, "INBOX", [("", b) for b in big])
    assert status_of(lines) == b"OK", lines
    client.select("INBOX")
    typ, data = client.fetch("1:3", "(BODY.PEEK[])")
    assert typ == "OK"
    assert [d[1] for d in data if isinstance(d, tuple)] == big


def test_a_second_message_too_big_stores_nothing(server: ServerThread, raw: Raw) -> None:
    """The first literal is taken (into a spool file); the second is refused before its
    continuation (APPENDLIMIT, RFC 7889): the command ends there, the first is not stored,
    and its spool file is gone at once, not with the next command."""
    before = mailbox_status(raw)
    lines = multiappend(raw, "INBOX", [("", message(1, size=SPOOL_AT * 2)),
                                       ("", message(2, size=MAX_SIZE + 1))])
    assert lines[-1].startswith(b"m1 NO [TOOBIG]"), lines
    spool = server.data_dir / "spool"

    def spool_empty() -> bool | None:
        return True if not [p for p in spool.rglob("*") if p.is_file()] else None

    # Released by the refusal itself (on the server's loop, right after the reply), with
    # no further command from the client.
    poll_until(spool_empty, timeout=5, failure=lambda: f"spool files left: "
               f"{[p.name for p in spool.rglob('*') if p.is_file()]}")
    assert mailbox_status(raw) == before
    # The session is in step: a new command is read as a command.
    assert status_of(raw.command("NOOP")) == b"OK"


def test_an_empty_second_message_stores_nothing(raw: Raw) -> None:
    before = mailbox_status(raw)
    lines = multiappend(raw, "INBOX", [("(\\Seen)", message(1)), ("", b"")])
    assert status_of(lines) == b"NO", lines
    assert mailbox_status(raw) == before


def test_over_quota_together_stores_nothing(server: ServerThread) -> None:
    """Each message fits the quota alone; both do not: NO [OVERQUOTA], none stored."""
    address = "quota-multi@example.com"
    server.add_user(address, PASSWORD, quota_bytes=3000)
    raw = Raw(server.port("imap"), login=address)
    try:
        before = mailbox_status(raw)
        lines = multiappend(raw, "INBOX", [("", message(1, size=2000)),
                                           ("", message(2, size=2000))])
        assert lines[-1].startswith(b"m1 NO [OVERQUOTA]"), lines
        assert mailbox_status(raw) == before
        assert status_of(multiappend(raw, "INBOX", [("", message(3, size=2000))])) == b"OK"
    finally:
        raw.close()


def test_missing_mailbox_is_trycreate(raw: Raw) -> None:
    lines = multiappend(raw, "Nowhere", [("", message(1)), ("", message(2))])
    assert lines[-1].startswith(b"m1 NO [TRYCREATE]"), lines


def test_a_selected_session_sees_every_new_message(server: ServerThread, raw: Raw,
                                                   account: str) -> None:
    watcher = connect(server, account)
    try:
        watcher.select("INBOX")
        assert watcher.response("EXISTS") == ("EXISTS", [b"0"])
        assert status_of(multiappend(raw, "INBOX", [("", message(1)), ("", message(2))])) \
            == b"OK"
        assert watcher.noop()[0] == "OK"
        # One EXISTS for both: they were committed together.
        assert watcher.response("EXISTS") == ("EXISTS", [b"2"])
    finally:
        watcher.logout()


def test_imapclient_multiappend(server: ServerThread, account: str) -> None:
    with IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=30) as c:
        c.login(account, PASSWORD)
        assert b"MULTIAPPEND" in c.capabilities()
        when = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
        reply = c.multiappend("INBOX", [
            message(1),
            {"msg": message(2), "flags": ["\\Answered"], "date": when},
        ])
        assert reply[0] == "OK" and re.search(rb"\[APPENDUID \d+ 1:2\]", reply[1][0]), reply
        c.select_folder("INBOX")
        fetched = c.fetch([1, 2], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
        assert [fetched[u][b"BODY[]"] for u in (1, 2)] == [message(1), message(2)]
        assert set(fetched[2][b"FLAGS"]) - {b"\\Recent"} == {b"\\Answered"}
        assert fetched[2][b"INTERNALDATE"].astimezone(UTC) == when
