"""OBJECTID (RFC 8474) against the real server: MAILBOXID on CREATE, SELECT, STATUS and
across RENAME; EMAILID shared by copies of the same content; THREADID from References."""

from __future__ import annotations

import re

from mailstead.testing.server import ServerThread
from tests.imap.conftest import Raw, status_of

_ID = rb"\(([A-Za-z0-9_-]+)\)"


def _message(subject: str, message_id: str, *extra: str) -> bytes:
    lines = ["From: a@example.org", f"Subject: {subject}", f"Message-ID: {message_id}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode()


def _append(raw: Raw, data: bytes, mailbox: str = "INBOX") -> None:
    raw.send(f"a APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    assert status_of(raw.read_until_tag("a")) == b"OK"


def _one(pattern: bytes, lines: list[bytes]) -> bytes:
    for line in lines:
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise AssertionError(lines)


def test_mailboxid_is_stable_across_rename_and_new_for_a_recreated_name(
    server: ServerThread, account: str
) -> None:
    raw = Raw(server.port("imap"), login=account)
    assert b" OBJECTID" in raw.command("CAPABILITY")[0]
    created = _one(rb"OK \[MAILBOXID " + _ID + rb"\]", raw.command("CREATE Projects"))
    assert _one(rb"\* OK \[MAILBOXID " + _ID, raw.command("SELECT Projects")) == created
    status = raw.command("STATUS Projects (MAILBOXID MESSAGES)")
    assert status[0] == b'* STATUS "Projects" (MESSAGES 0 MAILBOXID (%s))\r\n' % created
    raw.command("UNSELECT")
    assert status_of(raw.command("RENAME Projects Work")) == b"OK"
    assert _one(rb"MAILBOXID " + _ID, raw.command("STATUS Work (MAILBOXID)")) == created
    listed = raw.command('LIST "" Work RETURN (STATUS (MAILBOXID))')
    assert _one(rb"MAILBOXID " + _ID, listed) == created
    raw.command("DELETE Work")
    again = _one(rb"OK \[MAILBOXID " + _ID + rb"\]", raw.command("CREATE Work"))
    assert again != created
    inbox = _one(rb"MAILBOXID " + _ID, raw.command("STATUS INBOX (MAILBOXID)"))
    assert inbox not in (created, again)
    raw.close()


def test_emailid_follows_content_and_threadid_follows_references(
    server: ServerThread, account: str
) -> None:
    raw = Raw(server.port("imap"), login=account)
    root = _message("plans", "<root@example.org>")
    reply = _message("Re: plans", "<r1@example.org>", "In-Reply-To: <root@example.org>",
                     "References: <root@example.org>")
    deeper = _message("Re: plans", "<r2@example.org>", "In-Reply-To: <r1@example.org>",
                      "References: <ROOT@example.org> <r1@example.org>")
    other = _message("elsewhere", "<x@example.org>")
    for data in (root, reply, deeper, other):
        _append(raw, data)
    raw.command("SELECT INBOX")
    lines = raw.command("FETCH 1:4 (EMAILID THREADID)")
    ids = [re.match(rb"\* (\d) FETCH \(EMAILID " + _ID + rb" THREADID " + _ID + rb"\)", line)
           for line in lines[:-1]]
    assert all(ids), lines
    emails = [m.group(2) for m in ids if m]
    threads = [m.group(3) for m in ids if m]
    assert len(set(emails)) == 4
    assert threads[0] == threads[1] == threads[2] != threads[3]
    # A copy is the same content: same EMAILID, same THREADID.
    raw.command("CREATE Kept")
    raw.command("COPY 2 Kept")
    raw.command("SELECT Kept")
    copied = raw.command("FETCH 1 (EMAILID THREADID)")[0]
    assert copied == b"* 1 FETCH (EMAILID (%s) THREADID (%s))\r\n" % (emails[1], threads[1])
    raw.command("SELECT INBOX")
    assert raw.command(f"SEARCH THREADID {threads[0].decode()}")[0] == b"* SEARCH 1 2 3\r\n"
    assert raw.command(f"SEARCH EMAILID {emails[3].decode()}")[0] == b"* SEARCH 4\r\n"
    assert raw.command("UID SEARCH EMAILID Enothing")[0] == b"* SEARCH\r\n"
    raw.close()


def test_threadid_is_per_account(server: ServerThread, account: str) -> None:
    """The same Message-ID in two accounts is not one thread: ids never leak across them."""
    other_account = "objectid-other@example.com"
    server.add_user(other_account, "correct horse")
    data = _message("hello", "<same@example.org>")
    threads = []
    for who in (account, other_account):
        raw = Raw(server.port("imap"), login=who)
        _append(raw, data)
        raw.command("SELECT INBOX")
        threads.append(_one(rb"THREADID " + _ID, raw.command("FETCH 1 THREADID")))
        raw.close()
    assert threads[0] != threads[1]
