"""CATENATE (RFC 4469) over a real socket: APPEND (and MULTIAPPEND, REPLACE) of messages
made of TEXT literals and IMAP URLs (RFC 5092) to the user's own messages.

imaplib cannot send several literals in one command, so the commands go through the raw
line client with LITERAL+ literals (``{n+}``); imaplib reads back what was stored.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import (
    MULTIPART_MESSAGE,
    SIMPLE_MESSAGE,
    Raw,
    append,
    connect,
    imap_config,
    status_of,
)

Part = tuple[str, bytes | str]  # ("TEXT" | "TEXT8", octets) or ("URL", url)


def _command(mailbox: str, *messages: tuple[str, list[Part]]) -> bytes:
    """``APPEND mailbox [opts] CATENATE (...) ...`` with non-synchronising literals."""
    out = b"APPEND " + mailbox.encode()
    for opts, parts in messages:
        out += (b" " + opts.encode() if opts else b"") + b" CATENATE ("
        items = []
        for kind, value in parts:
            if kind == "URL":
                assert isinstance(value, str)
                items.append(b'URL "' + value.encode() + b'"')
            else:
                assert isinstance(value, bytes)
                tilde = b"~" if kind == "TEXT8" else b""
                items.append(b"TEXT " + tilde + b"{%d+}\r\n" % len(value) + value)
        out += b" ".join(items) + b")"
    return out


def _uid(lines: list[bytes]) -> int:
    m = re.search(rb"APPENDUID \d+ (\d+)", lines[-1])
    assert m is not None, lines
    return int(m.group(1))


def _body(c: imaplib.IMAP4, uid: int, section: str = "") -> bytes:
    typ, data = c.uid("FETCH", str(uid), f"BODY.PEEK[{section}]")
    assert typ == "OK", data
    item = data[0]
    assert isinstance(item, tuple), data
    return item[1]


@pytest.fixture
def pair(server: ServerThread, account: str) -> Iterator[tuple[Raw, imaplib.IMAP4]]:
    r = Raw(server.port("imap"), login=account)
    c = connect(server, account)
    c.select("INBOX")
    yield r, c
    r.close()
    c.logout()


def test_advertised(server: ServerThread) -> None:
    r = Raw(server.port("imap"))
    assert b" CATENATE " in r.greeting
    r.close()


def test_text_and_url_parts_make_the_message(pair: tuple[Raw, imaplib.IMAP4], account: str) -> None:
    r, c = pair
    uid = append(c, MULTIPART_MESSAGE)
    uidvalidity = int(
        re.findall(rb"UIDVALIDITY (\d+)", c.status("INBOX", "(UIDVALIDITY)")[1][0])[0]
    )
    intro = b"Content-Type: text/plain\r\n\r\nForwarded below.\r\n"
    user = account.replace("@", "%40")  # RFC 5092 §3: "@" in a user name is encoded
    lines = r.command(
        _command(
            "INBOX",
            (
                "(\\Seen)",
                [
                    ("URL", f"/INBOX;UIDVALIDITY={uidvalidity}/;UID={uid}/;SECTION=HEADER"),
                    ("TEXT", b"--XX\r\n" + intro + b"--XX\r\n"),
                    ("URL", f"imap://{user};AUTH=*@localhost/INBOX/;UID={uid}/;SECTION=1.MIME"),
                    ("URL", f"/INBOX/;UID={uid}/;section=1"),
                    ("TEXT", b"\r\n--XX--\r\n"),
                ],
            ),
        )
    )
    assert status_of(lines) == b"OK", lines
    new = _uid(lines)
    expected = (
        _body(c, uid, "HEADER")
        + b"--XX\r\n"
        + intro
        + b"--XX\r\n"
        + _body(c, uid, "1.MIME")
        + _body(c, uid, "1")
        + b"\r\n--XX--\r\n"
    )
    assert _body(c, new) == expected
    _typ, data = c.uid("FETCH", str(new), "(FLAGS BODYSTRUCTURE)")
    assert b"\\Seen" in data[0] and b'"mixed"' in data[0].lower()


def test_relative_urls_read_against_the_selected_mailbox(
    server: ServerThread, account: str
) -> None:
    c = connect(server, account)
    c.create("Drafts")
    uid = append(c, SIMPLE_MESSAGE, mailbox="Drafts")
    r = Raw(server.port("imap"), login=account)
    # Without a selected mailbox ";UID=" names no mailbox.
    assert b"[BADURL ;UID=" in r.command(_command("INBOX", ("", [("URL", f";UID={uid}")])))[-1]
    r.command("SELECT Drafts")
    lines = r.command(
        _command(
            "INBOX",
            ("", [("URL", f";UID={uid}/;SECTION=TEXT"), ("URL", f"./;UID={uid}/;PARTIAL=0.4")]),
        )
    )
    assert status_of(lines) == b"OK", lines
    c.select("INBOX")
    assert _body(c, _uid(lines)) == b"Shall we meet at noon?\r\n" + SIMPLE_MESSAGE[:4]
    r.close()
    c.logout()


def test_header_fields_and_missing_parts(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, c = pair
    uid = append(c, MULTIPART_MESSAGE)
    lines = r.command(
        _command(
            "INBOX",
            (
                "",
                [
                    ("URL", f"/INBOX/;UID={uid}/;SECTION=HEADER.FIELDS%20(Subject%20From)"),
                    ("TEXT", b"body\r\n"),
                ],
            ),
        )
    )
    assert status_of(lines) == b"OK", lines
    assert _body(c, _uid(lines)) == _body(c, uid, "HEADER.FIELDS (Subject From)") + b"body\r\n"
    missing = r.command(_command("INBOX", ("", [("URL", f"/INBOX/;UID={uid}/;SECTION=7")])))
    assert b"NO [BADURL /INBOX/;UID=" in missing[-1]


@pytest.mark.parametrize(
    "url",
    [
        "/INBOX;UIDVALIDITY=1/;UID={uid}",  # another UIDVALIDITY
        "/INBOX/;UID={missing}",  # no such message
        "/Nowhere/;UID={uid}",  # no such mailbox
        "imap://someone@example.com@localhost/INBOX/;UID={uid}",
        "imap://other%40example.com@localhost/INBOX/;UID={uid}",  # another user's
        "imap://{user}@mail.example.net/INBOX/;UID={uid}",  # another server
        "imap://localhost/INBOX/;UID={uid}",  # anonymous
        "/INBOX/;UID={uid};URLAUTH=anonymous:internal:1234",  # URLAUTH
        "/INBOX/;UID={uid}/;SECTION=NOPE",
        "http://localhost/INBOX/;UID={uid}",
        "/INBOX",
    ],
)
def test_bad_urls_store_nothing(pair: tuple[Raw, imaplib.IMAP4], account: str, url: str) -> None:
    r, c = pair
    uid = append(c)
    url = url.format(uid=uid, missing=uid + 10, user=account.replace("@", "%40"))
    lines = r.command(_command("INBOX", ("", [("TEXT", b"Subject: x\r\n\r\n"), ("URL", url)])))
    assert status_of(lines) == b"NO", lines
    assert lines[-1].split()[2] == b"[BADURL", lines
    assert int(c.select("INBOX")[1][0]) == 1


def test_bad_url_echo_cannot_close_the_response_code(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, _ = pair
    lines = r.command(_command("INBOX", ("", [("URL", "/IN]BOX/;UID=1")])))
    assert b" NO [BADURL /IN%5DBOX/;UID=1] " in lines[-1], lines


def test_multiappend_with_catenate_is_atomic(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, c = pair
    uid = append(c)
    good = ("", [("TEXT", b"Subject: one\r\n\r\n"), ("URL", f"/INBOX/;UID={uid}/;SECTION=TEXT")])
    bad = ("", [("URL", f"/INBOX/;UID={uid + 5}")])
    lines = r.command(_command("INBOX", good, bad))
    assert b"[BADURL" in lines[-1]
    assert int(c.select("INBOX")[1][0]) == 1  # neither stored
    r.command("NOOP")
    lines = r.command(
        _command("INBOX", good, ("(\\Flagged)", [("TEXT", b"Subject: two\r\n\r\nx\r\n")]))
    )
    assert status_of(lines) == b"OK" and re.search(rb"APPENDUID \d+ \d+:\d+", lines[-1]), lines
    assert int(c.select("INBOX")[1][0]) == 3


def test_plain_and_catenate_messages_in_one_multiappend(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, c = pair
    uid = append(c)
    data = b"Subject: plain\r\n\r\nplain\r\n"
    body = _command("INBOX", ("", [("URL", f"/INBOX/;UID={uid}")]))
    body += b" {%d+}\r\n" % len(data) + data
    lines = r.command(body)
    assert status_of(lines) == b"OK", lines
    assert int(c.select("INBOX")[1][0]) == 3
    assert _body(c, uid + 1) == SIMPLE_MESSAGE and _body(c, uid + 2) == data


def test_replace_with_catenate_of_the_replaced_message(server: ServerThread, account: str) -> None:
    """A drafts autosave: the new draft reuses the old one's attachment by URL."""
    c = connect(server, account)
    uid = append(c, MULTIPART_MESSAGE)
    c.select("INBOX")
    r = Raw(server.port("imap"), login=account)
    r.command("SELECT INBOX")
    new_text = b"Content-Type: text/plain\r\n\r\nnew draft text\r\n"
    command = _command(
        "INBOX",
        (
            "(\\Draft)",
            [
                ("URL", f";UID={uid}/;SECTION=HEADER"),
                ("TEXT", b"--XX\r\n" + new_text + b"--XX\r\n"),
                ("URL", f";UID={uid}/;SECTION=2.MIME"),
                ("URL", f";UID={uid}/;SECTION=2"),
                ("TEXT", b"\r\n--XX--\r\n"),
            ],
        ),
    )
    expected = (
        _body(c, uid, "HEADER") + b"--XX\r\n" + new_text + b"--XX\r\n" + _body(c, uid, "2.MIME")
    )
    expected += _body(c, uid, "2") + b"\r\n--XX--\r\n"
    lines = r.command(b"UID REPLACE %d " % uid + command[len(b"APPEND ") :])
    assert status_of(lines) == b"OK", lines
    assert any(line.endswith(b"EXPUNGE\r\n") for line in lines), lines
    new = int(re.search(rb"APPENDUID \d+ (\d+)", b"".join(lines)).group(1))  # type: ignore[union-attr]
    c.select("INBOX")
    assert _body(c, new) == expected
    assert c.uid("SEARCH", "ALL")[1][0].split() == [str(new).encode()]
    r.close()
    c.logout()


def test_literal8_text_part_may_hold_nul(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, c = pair
    data = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\r\n"
    lines = r.command(_command("INBOX", ("", [("TEXT8", data)])))
    assert status_of(lines) == b"OK", lines
    typ, got = c.uid("FETCH", str(_uid(lines)), "BINARY.PEEK[1]")
    assert typ == "OK" and got[0][1] == b"\x00\x01\x02\r\n"  # type: ignore[index]
    refused = r.command(_command("INBOX", ("", [("TEXT", data)])))  # {n}: no NUL allowed
    assert status_of(refused) == b"BAD", refused


def test_synchronising_literals_and_an_empty_text_part(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, c = pair
    r.send(b"s1 APPEND INBOX CATENATE (TEXT {0}\r\n")
    assert r.readline().startswith(b"+"), "an empty TEXT part does not cancel the APPEND"
    r.send(b" TEXT {20}\r\n")
    assert r.readline().startswith(b"+")
    r.send(b"Subject: s\r\n\r\nbody\r\n)\r\n")
    lines = r.read_until_tag("s1")
    assert status_of(lines) == b"OK", lines
    assert _body(c, _uid(lines)) == b"Subject: s\r\n\r\nbody\r\n"
    assert b"NO" in r.command(_command("INBOX", ("", [("TEXT", b"")])))[-1]  # empty message


def test_url_given_as_a_literal(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, c = pair
    uid = append(c)
    url = f"/INBOX/;UID={uid}".encode()
    lines = r.command(b"APPEND INBOX CATENATE (URL {%d+}\r\n%s)" % (len(url), url))
    assert status_of(lines) == b"OK", lines
    assert _body(c, _uid(lines)) == SIMPLE_MESSAGE


def test_syntax_errors_are_bad(pair: tuple[Raw, imaplib.IMAP4]) -> None:
    r, _ = pair
    for body in (
        b"APPEND INBOX CATENATE ()",
        b"APPEND INBOX CATENATE (FOO x)",
        b'APPEND INBOX CATENATE (TEXT "quoted")',
        b"APPEND INBOX CATENATE URL x",
        _command("INBOX", ("", [("URL", "/INBOX/;UID=1")] * 257)),
    ):
        assert status_of(r.command(body)) == b"BAD", body[:60]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """APPENDLIMIT 10000, and spool files from 4096 octets on."""
    config = imap_config(max_message_size=10000, spool_threshold=4096)
    with ServerThread(tmp_path_factory.mktemp("catenate-small"), config) as srv:
        srv.add_user("small@example.com", "correct horse")
        yield srv


def test_the_size_limit_is_the_assembled_messages(small: ServerThread) -> None:
    c = connect(small, "small@example.com")
    big = b"Subject: big\r\n\r\n" + b"x" * 5500 + b"\r\n"
    uid = append(c, big)
    r = Raw(small.port("imap"), login="small@example.com")
    lines = r.command(
        _command(
            "INBOX",
            ("", [("URL", f"/INBOX/;UID={uid}"), ("URL", f"/INBOX/;UID={uid}/;SECTION=TEXT")]),
        )
    )
    assert status_of(lines) == b"NO" and b"[TOOBIG]" in lines[-1], lines
    assert int(c.select("INBOX")[1][0]) == 1
    # Below the limit, through a spool file (past the 4096-octet threshold).
    lines = r.command(
        _command("INBOX", ("", [("URL", f"/INBOX/;UID={uid}"), ("TEXT", b"y" * 4200 + b"\r\n")]))
    )
    assert status_of(lines) == b"OK", lines
    assert _body(c, _uid(lines)) == big + b"y" * 4200 + b"\r\n"
    r.close()
    c.logout()


def test_replace_with_a_bad_url_keeps_the_old_message(server: ServerThread, account: str) -> None:
    c = connect(server, account)
    uid = append(c)
    r = Raw(server.port("imap"), login=account)
    r.command("SELECT INBOX")
    command = _command("INBOX", ("", [("URL", f";UID={uid}"), ("URL", f";UID={uid + 1}")]))
    lines = r.command(b"UID REPLACE %d " % uid + command[len(b"APPEND ") :])
    assert b"NO [BADURL ;UID=" in lines[-1], lines
    assert not any(b"EXPUNGE" in line or b"EXISTS" in line for line in lines), lines
    c.select("INBOX")
    assert c.uid("SEARCH", "ALL")[1][0].split() == [str(uid).encode()]
    r.close()
    c.logout()
