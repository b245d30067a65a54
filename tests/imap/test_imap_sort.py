"""SORT and THREAD (RFC 5256) against the real server, with imaplib, imapclient and the
raw line client: the capabilities, every sort key, UID forms, search programs, both
threading algorithms, and the errors a client gets for what it got wrong."""

from __future__ import annotations

import imaplib
from datetime import UTC, datetime

import pytest
from imapclient import IMAPClient

from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, Raw, append, status_of


def _message(
    subject: str, date: str | None, *, frm: str, to: str, cc: str | None = None,
    mid: str, refs: str | None = None, body: str = "x",
) -> bytes:
    head = [f"From: {frm}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{mid}>"]
    if date is not None:
        head.append(f"Date: {date}")
    if cc is not None:
        head.append(f"Cc: {cc}")
    if refs is not None:
        head.append(f"References: {refs}")
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


#: Five messages: 1 starts a thread, 3 answers it, 5 answers 3 without References but
#: with In-Reply-To; 2 and 4 stand alone (4 without a Date:, so its INTERNALDATE counts).
MESSAGES = [
    _message("Lunch", "Mon, 1 Jan 2024 12:00:00 +0000", frm="Zoe <zoe@example.org>",
             to="bob@example.com", cc="Mary <mary@example.net>", mid="m1", body="x" * 50),
    _message("[list] apples", "Sun, 31 Dec 2023 09:00:00 +0000", frm="adam@example.org",
             to="carl@example.com", mid="m2", body="x" * 10),
    _message("Re: Lunch", "Mon, 1 Jan 2024 13:00:00 +0100", frm="bob@example.com",
             to="zoe@example.org", mid="m3", refs="<m1>", body="x" * 30),
    _message("=?utf-8?q?Bananas?=", None, frm="Mia <mia@example.org>",
             to="Al <al@example.com>", cc="ann@example.net", mid="m4", body="x" * 5),
    _message("Re: Re: Lunch", "Tue, 2 Jan 2024 08:00:00 +0000", frm="zoe@example.org",
             to="bob@example.com", mid="m5", refs=None, body="x" * 20).replace(
                 b"\r\n\r\n", b"\r\nIn-Reply-To: <m3>\r\n\r\n", 1),
]
#: INTERNALDATEs: 4's falls between 2 (Dec 31) and 1 (Jan 1 12:00).
ARRIVALS = [
    datetime(2024, 2, 5, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC),
    datetime(2024, 2, 3, tzinfo=UTC), datetime(2024, 1, 1, 6, tzinfo=UTC),
    datetime(2024, 2, 2, tzinfo=UTC),
]


@pytest.fixture
def filled(server: ServerThread, account: str) -> str:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    c.login(account, PASSWORD)
    for message, arrival in zip(MESSAGES, ARRIVALS, strict=True):
        typ, data = c.append("INBOX", None, imaplib.Time2Internaldate(arrival), message)
        assert typ == "OK", data
    c.logout()
    return account


def test_capabilities_announce_sort_and_both_algorithms(raw: Raw) -> None:
    caps = raw.command("CAPABILITY")[0].split()
    for cap in (b"SORT", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
        assert cap in caps


SORTS = [
    ("(ARRIVAL)", "4 2 5 3 1"),
    ("(DATE)", "2 4 1 3 5"),  # 3 is 12:00 UTC, the same instant as 1: then by sequence
    ("(REVERSE DATE)", "5 1 3 4 2"),
    ("(SIZE)", "4 2 5 3 1"),
    ("(SUBJECT)", "2 4 1 3 5"),  # apples, Bananas, Lunch x3 (ties by sequence)
    ("(SUBJECT REVERSE ARRIVAL)", "2 4 1 3 5"),
    ("(FROM)", "2 3 4 1 5"),  # adam, bob, mia, zoe, zoe
    ("(TO)", "4 1 5 2 3"),  # al, bob, bob, carl, zoe: 1 before 5 by sequence
    ("(CC)", "2 3 5 4 1"),  # no Cc sorts first; ann before mary
    ("(REVERSE CC DATE)", "1 4 2 3 5"),
]


@pytest.mark.parametrize(("criteria", "expected"), SORTS)
def test_sort_by_each_key(server: ServerThread, filled: str, criteria: str,
                          expected: str) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        c.login(filled, PASSWORD)
        c.select("INBOX", readonly=True)
        typ, data = c.sort(criteria, "UTF-8", "ALL")
        assert typ == "OK"
        assert data == [expected.encode()]
    finally:
        c.logout()


def test_uid_sort_and_search_programs(server: ServerThread, filled: str) -> None:
    with IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=30) as c:
        c.login(filled, PASSWORD)
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        assert c.sort(["DATE"]) == [uids[i - 1] for i in (2, 4, 1, 3, 5)]
        assert c.sort(["SUBJECT"], ["FROM", "zoe"]) == [uids[0], uids[4]]
        assert c.sort(["REVERSE", "SIZE"], ["NOT", "SUBJECT", "lunch"]) == [uids[1], uids[3]]
        assert c.sort(["ARRIVAL"], ["BODY", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]) == [
            uids[0]
        ]


def test_thread_references_and_orderedsubject(server: ServerThread, filled: str) -> None:
    raw = Raw(server.port("imap"), login=filled)
    try:
        raw.command("SELECT INBOX")
        # 1 <- 3 (References) <- 5 (In-Reply-To); 2 and 4 alone; by sent date.
        lines = raw.command("THREAD REFERENCES UTF-8 ALL")
        assert lines[0] == b"* THREAD (2)(4)(1 3 5)\r\n"
        lines = raw.command("THREAD ORDEREDSUBJECT UTF-8 ALL")
        assert lines[0] == b"* THREAD (2)(4)(1 (3)(5))\r\n"
        # 3 is left out: 5 joins 1 by its subject (§5 step 5), a reply under the original.
        lines = raw.command("THREAD REFERENCES UTF-8 NOT 3")
        assert lines[0] == b"* THREAD (2)(4)(1 5)\r\n"
        lines = raw.command("UID THREAD REFERENCES US-ASCII 1:3")
        assert lines[0] == b"* THREAD (2)(1 3)\r\n"  # UIDs equal sequence numbers here
        assert raw.command("THREAD REFERENCES UTF-8 SUBJECT nothing")[0] == b"* THREAD\r\n"
        assert raw.command("SORT (DATE) UTF-8 SUBJECT nothing")[0] == b"* SORT\r\n"
    finally:
        raw.close()


def test_thread_with_imapclient(server: ServerThread, filled: str) -> None:
    with IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=30) as c:
        c.login(filled, PASSWORD)
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        threads = c.thread("REFERENCES")
        assert threads == ((uids[1],), (uids[3],), (uids[0], uids[2], uids[4]))


ERRORS = [
    ("SORT (DATE) KOI8-R ALL", b"NO", b"[BADCHARSET (UTF-8 US-ASCII)]"),
    ("THREAD REFERENCES ISO-2022-JP ALL", b"NO", b"[BADCHARSET (UTF-8 US-ASCII)]"),
    ("SORT (COLOUR) UTF-8 ALL", b"BAD", b"unknown sort key COLOUR"),
    ("SORT (REVERSE) UTF-8 ALL", b"BAD", b"expected a space"),
    ("SORT () UTF-8 ALL", b"BAD", b"expected a sort key"),
    ("SORT DATE UTF-8 ALL", b"BAD", b"expected '('"),
    ("SORT (DATE) ALL", b"BAD", b""),  # the charset is required: ALL is taken as one
    ("SORT (DATE) UTF-8", b"BAD", b"expected a space"),
    ("SORT (" + " ".join(["DATE"] * 17) + ") UTF-8 ALL", b"BAD", b"more than 16"),
    ("THREAD SUBJECTS UTF-8 ALL", b"BAD", b"unknown threading algorithm SUBJECTS"),
    ("THREAD REFERENCES UTF-8 FROOB", b"BAD", b"unknown search key FROOB"),
]


@pytest.mark.parametrize(("command", "status", "text"), ERRORS)
def test_errors_name_what_is_wrong(
    server: ServerThread, filled: str, command: str, status: bytes, text: bytes
) -> None:
    raw = Raw(server.port("imap"), login=filled)
    try:
        raw.command("SELECT INBOX")
        lines = raw.command(command)
        assert status_of(lines) == status, lines
        assert text in lines[-1], lines
        assert len(lines) == 1  # one line, no untagged answer
    finally:
        raw.close()


def test_sort_needs_a_selected_mailbox(raw: Raw) -> None:
    lines = raw.command("SORT (DATE) UTF-8 ALL")
    assert status_of(lines) == b"NO" and len(lines) == 1


def test_a_message_appended_later_is_sorted_too(
    server: ServerThread, client: imaplib.IMAP4
) -> None:
    for subject in ("b", "a"):
        append(client, f"Subject: {subject}\r\n\r\nx\r\n".encode())
    client.select("INBOX")
    assert client.sort("(SUBJECT)", "UTF-8", "ALL")[1] == [b"2 1"]
    append(client, b"Subject: Re: A\r\n\r\nx\r\n")
    client.noop()
    assert client.sort("(SUBJECT)", "UTF-8", "ALL")[1] == [b"2 3 1"]


def test_expunge_is_held_back_and_reported_as_for_search(
    server: ServerThread, account: str
) -> None:
    """SORT and THREAD answer in sequence numbers: while another session's expunge is
    pending they send no EXPUNGE and say EXPUNGEISSUED (RFC 9051 §7.5.1, §7.1); the UID
    forms may send it after their answer."""
    other = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    other.login(account, PASSWORD)
    for subject in ("c", "b", "a"):
        append(other, f"Subject: {subject}\r\n\r\nx\r\n".encode())
    raw = Raw(server.port("imap"), login=account)
    try:
        raw.command("SELECT INBOX")
        other.select("INBOX")
        other.store("2", "+FLAGS", "(\\Deleted)")
        other.expunge()
        for command, answer in (
            ("SORT (SUBJECT) UTF-8 ALL", b"* SORT 3 1\r\n"),
            ("THREAD ORDEREDSUBJECT UTF-8 ALL", b"* THREAD (1)(3)\r\n"),  # by arrival
        ):
            lines = raw.command(command)
            assert lines[0] == answer, lines
            assert b"OK [EXPUNGEISSUED]" in lines[-1], lines
            assert not any(b" EXPUNGE" in line for line in lines), lines
        lines = raw.command("UID SORT (SUBJECT) UTF-8 ALL")
        assert lines[:2] == [b"* SORT 3 1\r\n", b"* 2 EXPUNGE\r\n"]
        assert raw.command("SORT (SUBJECT) UTF-8 ALL")[-1].split()[1:3] == [b"OK", b"SORT"]
    finally:
        raw.close()
        other.logout()
