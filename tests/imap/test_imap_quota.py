"""QUOTA (RFC 9208) against the real server: GETQUOTAROOT and GETQUOTA for an account with
and without a limit, usage following APPEND and EXPUNGE, SETQUOTA refused, the DELETED and
DELETED-STORAGE STATUS items, NO [OVERQUOTA] on APPEND and COPY, and the one STATUS order."""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import re
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, Raw, status_of

_counter = itertools.count(1)
ROOT = b'"User quota"'


def _message(size: int, n: int = 1) -> bytes:
    """A message of exactly ``size`` octets."""
    head = f"From: a@example.org\r\nSubject: quota {n}\r\n\r\n".encode()
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


def _account(server: ServerThread, quota_bytes: int) -> str:
    address = f"quota{next(_counter)}@example.com"
    server.add_user(address, PASSWORD, quota_bytes=quota_bytes)
    return address


def _append(raw: Raw, data: bytes, mailbox: str = "INBOX") -> list[bytes]:
    raw.send(f"a APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    return raw.read_until_tag("a")


@pytest.fixture
def limited(server: ServerThread) -> Iterator[tuple[Raw, str]]:
    """A session of an account with a 10 KiB quota, and its address."""
    address = _account(server, 10 * 1024)
    raw = Raw(server.port("imap"), login=address)
    yield raw, address
    raw.close()


def test_capabilities_offer_quota_and_storage_but_not_quotaset(raw: Raw) -> None:
    caps = raw.command("CAPABILITY")[0].split()
    assert b"QUOTA" in caps and b"QUOTA=RES-STORAGE" in caps  # RFC 9208 §1, §5.1
    assert b"QUOTASET" not in caps  # §4.1.3: limits are the administrator's


def test_getquotaroot_and_getquota_report_storage_in_kibibytes(
    limited: tuple[Raw, str],
) -> None:
    raw, _ = limited
    assert status_of(_append(raw, _message(3000))) == b"OK"
    lines = raw.command("GETQUOTAROOT INBOX")
    # RFC 9208 §4.2.2 then §4.2.1: 3000 octets are 3 units of 1024 (rounded up), of 10.
    assert lines[:2] == [
        b'* QUOTAROOT "INBOX" ' + ROOT + b"\r\n",
        b"* QUOTA " + ROOT + b" (STORAGE 3 10)\r\n",
    ]
    assert lines[2].startswith(b"t") and status_of(lines) == b"OK"
    lines = raw.command('GETQUOTA "User quota"')
    assert lines[0] == b"* QUOTA " + ROOT + b" (STORAGE 3 10)\r\n" and len(lines) == 2
    # Every mailbox of the account is under the one root, even one not created yet
    # (§4.1.2: the name need not exist; the answer is the root it would be created under).
    for name in ("Drafts", "Later/Maybe"):
        lines = raw.command(f"GETQUOTAROOT {name}")
        assert lines[0] == f'* QUOTAROOT "{name}" '.encode() + ROOT + b"\r\n"
        assert lines[1] == b"* QUOTA " + ROOT + b" (STORAGE 3 10)\r\n"


def test_usage_follows_append_and_expunge_and_deleted_storage(
    limited: tuple[Raw, str],
) -> None:
    raw, _ = limited

    def usage() -> bytes:
        return raw.command('GETQUOTA "User quota"')[0]

    assert usage() == b"* QUOTA " + ROOT + b" (STORAGE 0 10)\r\n"
    assert status_of(_append(raw, _message(2048, 1))) == b"OK"
    assert status_of(_append(raw, _message(1500, 2))) == b"OK"
    assert usage() == b"* QUOTA " + ROOT + b" (STORAGE 4 10)\r\n"  # 3548 octets
    raw.command("SELECT INBOX")
    raw.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    # RFC 9208 §4.1.4: DELETED-STORAGE is what EXPUNGE would free, in octets like SIZE.
    lines = raw.command("STATUS INBOX (DELETED-STORAGE DELETED SIZE)")
    assert lines[0] == b'* STATUS "INBOX" (SIZE 3548 DELETED 1 DELETED-STORAGE 2048)\r\n'
    assert usage() == b"* QUOTA " + ROOT + b" (STORAGE 4 10)\r\n"  # flagged, not freed
    assert status_of(raw.command("EXPUNGE")) == b"OK"
    assert usage() == b"* QUOTA " + ROOT + b" (STORAGE 2 10)\r\n"
    lines = raw.command("STATUS INBOX (DELETED DELETED-STORAGE)")
    assert lines[0] == b'* STATUS "INBOX" (DELETED 0 DELETED-STORAGE 0)\r\n'


def test_account_without_limit_is_in_no_quota_root(raw: Raw) -> None:
    # RFC 9208 §4.2.2: a QUOTAROOT response with the mailbox alone, and no QUOTA after it.
    lines = raw.command("GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT "INBOX"\r\n'
    assert len(lines) == 2 and status_of(lines) == b"OK"
    lines = raw.command('GETQUOTA "User quota"')
    assert len(lines) == 1 and b"NO [NONEXISTENT]" in lines[0]
    # DELETED-STORAGE is there all the same: it is a property of the mailbox.
    lines = raw.command("STATUS INBOX (DELETED-STORAGE)")
    assert lines[0] == b'* STATUS "INBOX" (DELETED-STORAGE 0)\r\n'


def test_unknown_quota_root_is_no(limited: tuple[Raw, str]) -> None:
    raw, _ = limited
    for root in ('""', "INBOX", '"user quota"'):  # quota root names are exact (§3.2)
        lines = raw.command(f"GETQUOTA {root}")
        assert len(lines) == 1 and b"NO [NONEXISTENT]" in lines[0], root


def test_limit_set_by_the_administrator_shows_at_once(
    server: ServerThread, limited: tuple[Raw, str],
) -> None:
    raw, address = limited
    server.call(server.store.set_quota(address, 0))
    assert raw.command("GETQUOTAROOT INBOX")[0] == b'* QUOTAROOT "INBOX"\r\n'
    server.call(server.store.set_quota(address, 2 * 1024 * 1024))
    assert raw.command("GETQUOTAROOT INBOX")[1] == b"* QUOTA " + ROOT + b" (STORAGE 0 2048)\r\n"


def test_setquota_is_refused_and_changes_nothing(limited: tuple[Raw, str]) -> None:
    raw, _ = limited
    lines = raw.command('SETQUOTA "User quota" (STORAGE 100000)')
    assert len(lines) == 1 and re.match(rb"t\d+ NO \[NOPERM\] ", lines[0])
    assert raw.command('GETQUOTA "User quota"')[0].endswith(b"(STORAGE 0 10)\r\n")
    # Still parsed: a malformed SETQUOTA is BAD (RFC 9208 §7).
    assert status_of(raw.command('SETQUOTA "User quota" (STORAGE)')) == b"BAD"


def test_over_quota_append_and_copy_are_no_overquota(
    server: ServerThread,
) -> None:
    raw = Raw(server.port("imap"), login=_account(server, 6000))
    try:
        assert status_of(_append(raw, _message(4000, 1))) == b"OK"
        # RFC 9208 §4.3.1 (RFC 5530 §3): the tagged NO of APPEND and COPY.
        lines = _append(raw, _message(4000, 2))
        assert re.match(rb"a NO \[OVERQUOTA\] ", lines[-1]), lines
        assert status_of(raw.command("CREATE Saved")) == b"OK"
        raw.command("SELECT INBOX")
        lines = raw.command("COPY 1 Saved")
        assert re.match(rb"t\d+ NO \[OVERQUOTA\] ", lines[-1]), lines
        lines = raw.command("UID COPY 1 Saved")
        assert re.match(rb"t\d+ NO \[OVERQUOTA\] ", lines[-1]), lines
        # Nothing was stored by the refused commands; MOVE frees as much as it takes.
        assert raw.command("STATUS Saved (MESSAGES)")[0] == b'* STATUS "Saved" (MESSAGES 0)\r\n'
        assert status_of(raw.command("MOVE 1 Saved")) == b"OK"
        assert raw.command('GETQUOTA "User quota"')[0].endswith(b"(STORAGE 4 5)\r\n")
    finally:
        raw.close()


def test_status_and_list_status_answer_in_one_order(limited: tuple[Raw, str]) -> None:
    raw, _ = limited
    assert status_of(_append(raw, _message(500))) == b"OK"
    asked = "UNSEEN MAILBOXID DELETED-STORAGE UIDVALIDITY SIZE MESSAGES DELETED UIDNEXT RECENT"
    order = (
        rb"\(MESSAGES 1 SIZE 500 DELETED 0 DELETED-STORAGE 0 RECENT 1 UIDNEXT 2 "
        rb"UIDVALIDITY \d+ UNSEEN 1 MAILBOXID \([\w-]+\)\)"
    )
    line = raw.command(f"STATUS INBOX ({asked})")[0]
    assert re.fullmatch(rb'\* STATUS "INBOX" ' + order + rb"\r\n", line), line
    lines = raw.command(f'LIST "" INBOX RETURN (STATUS ({asked}))')
    assert re.fullmatch(rb'\* STATUS "INBOX" ' + order + rb"\r\n", lines[1]), lines
    # An item asked twice is answered once.
    line = raw.command("STATUS INBOX (MESSAGES UNSEEN MESSAGES)")[0]
    assert line == b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)\r\n'


def test_quota_commands_need_authentication_and_work_when_selected(
    server: ServerThread, limited: tuple[Raw, str],
) -> None:
    anonymous = Raw(server.port("imap"))
    try:
        lines = anonymous.command("GETQUOTAROOT INBOX")
        assert len(lines) == 1 and status_of(lines) == b"NO"
    finally:
        anonymous.close()
    raw, _ = limited
    raw.command("SELECT INBOX")
    assert status_of(raw.command("GETQUOTAROOT INBOX")) == b"OK"
    assert status_of(raw.command('GETQUOTA "User quota"')) == b"OK"


def test_imaplib_reads_the_answers(server: ServerThread) -> None:
    address = _account(server, 1024 * 1024)
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        c.login(address, PASSWORD)
        typ, data = c.getquotaroot("INBOX")
        assert typ == "OK"
        assert data == [[b'"INBOX" "User quota"'], [b'"User quota" (STORAGE 0 1024)']]
        typ, data = c.getquota('"User quota"')
        assert (typ, data) == ("OK", [b'"User quota" (STORAGE 0 1024)'])
        typ, data = c.setquota('"User quota"', "(STORAGE 1)")
        assert typ == "NO" and data[0].startswith(b"[NOPERM]")
    finally:
        with contextlib.suppress(imaplib.IMAP4.abort, OSError):
            c.logout()
