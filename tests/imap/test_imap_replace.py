"""REPLACE and UID REPLACE (RFC 8508) against a real server: the new message appended and
the old one expunged in one step, with APPENDUID in an untagged OK before the EXPUNGE (or
VANISHED once QRESYNC is on), into the selected mailbox or another one; and every refusal
leaving both mailboxes exactly as they were."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.parse.commands import Replace, parse_command
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.primitives import SequenceSet
from mailstead.testing.server import ServerThread

from .conftest import PASSWORD, Raw, imap_config, status_of

MAX_SIZE = 64 * 1024
SPOOL_AT = 4096


def message(n: int, size: int = 0) -> bytes:
    body = f"From: a@example.org\r\nSubject: draft {n}\r\n\r\nversion {n}\r\n".encode()
    if size > len(body):
        body += b"z" * (size - len(body) - 2) + b"\r\n"
    return body


# -- grammar ------------------------------------------------------------------------------


def test_grammar() -> None:
    cmd = parse_command(b'a UID REPLACE 42 Drafts (\\Draft) {2}\r\nhi', GRAMMARS)
    assert cmd.name == "UID REPLACE"
    assert isinstance(cmd.args, Replace)
    assert cmd.args.sequence == SequenceSet(((42, 42),))
    assert cmd.args.name == "Drafts" and cmd.args.message.flags == ("\\Draft",)
    star = parse_command(b"a REPLACE * INBOX {2}\r\nhi", GRAMMARS).args
    assert isinstance(star, Replace) and star.sequence == SequenceSet(((None, None),))


@pytest.mark.parametrize("frame", [
    b"a REPLACE 1:2 INBOX {2}\r\nhi",  # one message, not a set
    b"a REPLACE 1,2 INBOX {2}\r\nhi",
    b"a REPLACE $ INBOX {2}\r\nhi",
    b"a REPLACE 1 INBOX {2}\r\nhi {2}\r\nxy",  # no MULTIAPPEND in REPLACE
    b"a REPLACE 1 INBOX",
])
def test_grammar_refuses(frame: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(frame, GRAMMARS)


# -- a running server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = imap_config(max_message_size=MAX_SIZE, spool_threshold=SPOOL_AT)
    with ServerThread(tmp_path_factory.mktemp("replace"), config) as srv:
        yield srv


def put(raw: Raw, mailbox: str, data: bytes, flags: str = "") -> int:
    opts = f" {flags}" if flags else ""
    lines = raw.command(b"APPEND %s%s {%d+}\r\n%s" % (
        mailbox.encode(), opts.encode(), len(data), data))
    m = re.search(rb"APPENDUID \d+ (\d+)", lines[-1])
    assert m is not None, lines
    return int(m[1])


def replace(raw: Raw, command: str, data: bytes, tag: str = "r1") -> list[bytes]:
    """Send ``command`` with ``data`` as a synchronising literal; every line of the
    answer (just the tagged refusal when the literal is refused)."""
    raw.send(b"%s %s {%d}\r\n" % (tag.encode(), command.encode(), len(data)))
    line = raw.readline()
    if not line.startswith(b"+"):
        return [line]
    raw.send(data + b"\r\n")
    return raw.read_until_tag(tag)


def uids_and_bodies(raw: Raw, mailbox: str) -> list[tuple[int, bytes]]:
    raw.command(f"EXAMINE {mailbox}")
    lines = raw.command("FETCH 1:* (UID BODY.PEEK[])")
    found = []
    for line in lines[:-1]:
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) BODY\[\] \{\d+\}\r\n", line)
        assert m is not None, line
        found.append((int(m[1]), line[m.end():].rsplit(b")", 1)[0]))
    return found


def test_capability_advertises_replace(raw: Raw) -> None:
    assert b" REPLACE" in raw.command("CAPABILITY")[0]


def test_replace_in_the_selected_mailbox(raw: Raw) -> None:
    put(raw, "Drafts", message(0))
    old = put(raw, "Drafts", message(1))
    raw.command("SELECT Drafts")
    lines = replace(raw, "REPLACE 2 Drafts (\\Draft)", message(2))
    assert status_of(lines) == b"OK", lines
    m = re.match(rb"\* OK \[APPENDUID (\d+) (\d+)\] ", lines[0])
    assert m is not None and int(m[2]) == old + 1, lines
    # RFC 8508 §3 and its examples: APPENDUID, then the new message (EXISTS), then the
    # EXPUNGE of the old one, in the order the server did them; one RECENT after both
    # (an IMAP4rev1 session, RFC 3501 §7.3.2).
    assert lines[1:-1] == [b"* 3 EXISTS\r\n", b"* 2 EXPUNGE\r\n", b"* 2 RECENT\r\n"], lines
    assert uids_and_bodies(raw, "Drafts") == [(old - 1, message(0)), (old + 1, message(2))]
    flags = raw.command(f"UID FETCH {old + 1} FLAGS")[0]
    assert b"\\Draft" in flags


def test_uid_replace_into_another_mailbox(server: ServerThread, raw: Raw,
                                          account: str) -> None:
    """Across mailboxes: the old one leaves the selected mailbox; a session watching the
    other mailbox sees the new one arrive."""
    raw.command("CREATE Sent")
    old = put(raw, "INBOX", message(1), "(\\Seen)")
    watcher = Raw(server.port("imap"), login=account)
    try:
        watcher.command("SELECT Sent")
        raw.command("SELECT INBOX")
        lines = replace(raw, f"UID REPLACE {old} Sent", message(2, size=SPOOL_AT * 3))
        assert status_of(lines) == b"OK", lines
        assert re.match(rb"\* OK \[APPENDUID \d+ 1\] ", lines[0]), lines
        # (RECENT too: this is an IMAP4rev1 session, RFC 3501 §7.3.2.)
        assert lines[1:-1] == [b"* 1 EXPUNGE\r\n", b"* 0 RECENT\r\n"], lines
        assert b"* 1 EXISTS\r\n" in watcher.command("NOOP")
    finally:
        watcher.close()
    assert uids_and_bodies(raw, "INBOX") == []
    assert uids_and_bodies(raw, "Sent") == [(1, message(2, size=SPOOL_AT * 3))]


def test_with_qresync_the_old_message_vanishes(raw: Raw) -> None:
    raw.command("ENABLE QRESYNC")
    old = put(raw, "INBOX", message(1))
    raw.command("SELECT INBOX")
    lines = replace(raw, f"UID REPLACE {old} INBOX", message(2))
    assert status_of(lines) == b"OK", lines
    assert re.match(rb"\* OK \[APPENDUID \d+ %d\] " % (old + 1), lines[0]), lines
    assert lines[1:-1] == [
        b"* 2 EXISTS\r\n", b"* VANISHED %d\r\n" % old, b"* 1 RECENT\r\n"], lines


def test_imapclient_sees_the_replacement(server: ServerThread, raw: Raw,
                                         account: str) -> None:
    """imapclient has no REPLACE: a raw session replaces, an imapclient session watching
    the mailbox gets the expunge and the arrival as any client would."""
    old = put(raw, "INBOX", message(1))
    with IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=30) as c:
        c.login(account, PASSWORD)
        assert b"REPLACE" in c.capabilities()
        c.select_folder("INBOX")
        raw.command("SELECT INBOX")
        assert status_of(replace(raw, f"UID REPLACE {old} INBOX", message(2))) == b"OK"
        seen = sorted(r for r in c.noop()[1] if r[1] != b"RECENT")
        assert seen == [(1, b"EXISTS"), (1, b"EXPUNGE")]
        assert c.search() == [old + 1]
        assert c.fetch([old + 1], ["BODY.PEEK[]"])[old + 1][b"BODY[]"] == message(2)


# -- refusals leave everything as it was ------------------------------------------------------


def test_missing_uid_is_no_and_appends_nothing(raw: Raw) -> None:
    put(raw, "INBOX", message(1))
    raw.command("SELECT INBOX")
    lines = replace(raw, "UID REPLACE 999 INBOX", message(2))
    assert status_of(lines) == b"NO", lines
    assert [u for u, _ in uids_and_bodies(raw, "INBOX")] == [1]
    assert b"UIDNEXT 2" in raw.command("STATUS INBOX (UIDNEXT)")[0]


def test_sequence_number_out_of_range_is_bad(raw: Raw) -> None:
    put(raw, "INBOX", message(1))
    raw.command("SELECT INBOX")
    assert status_of(replace(raw, "REPLACE 5 INBOX", message(2))) == b"BAD"
    assert [u for u, _ in uids_and_bodies(raw, "INBOX")] == [1]


def test_missing_target_mailbox_keeps_the_old_message(raw: Raw) -> None:
    put(raw, "INBOX", message(1))
    raw.command("SELECT INBOX")
    lines = replace(raw, "REPLACE 1 Nowhere", message(2))
    assert lines[-1].startswith(b"r1 NO [TRYCREATE]"), lines
    assert uids_and_bodies(raw, "INBOX") == [(1, message(1))]


def test_too_big_is_refused_before_the_literal(raw: Raw) -> None:
    put(raw, "INBOX", message(1))
    raw.command("SELECT INBOX")
    lines = replace(raw, "REPLACE 1 INBOX", message(2, size=MAX_SIZE + 1))
    assert len(lines) == 1 and lines[0].startswith(b"r1 NO [TOOBIG]"), lines
    assert uids_and_bodies(raw, "INBOX") == [(1, message(1))]


def test_read_only_selection_is_refused(raw: Raw) -> None:
    put(raw, "INBOX", message(1))
    raw.command("EXAMINE INBOX")
    lines = replace(raw, "REPLACE 1 INBOX", message(2))
    assert lines[-1].startswith(b"r1 NO [READ-ONLY]"), lines
    assert uids_and_bodies(raw, "INBOX") == [(1, message(1))]


def test_over_quota_keeps_the_old_message(server: ServerThread) -> None:
    """The old message's bytes count as freed: a replacement of the same size fits at the
    quota, a bigger one does not and changes nothing."""
    address = "quota-replace@example.com"
    server.add_user(address, PASSWORD, quota_bytes=3000)
    raw = Raw(server.port("imap"), login=address)
    try:
        put(raw, "INBOX", message(1, size=2500))
        raw.command("SELECT INBOX")
        lines = replace(raw, "REPLACE 1 INBOX", message(2, size=3001))
        assert lines[-1].startswith(b"r1 NO [OVERQUOTA]"), lines
        assert uids_and_bodies(raw, "INBOX") == [(1, message(1, size=2500))]
        raw.command("SELECT INBOX")
        assert status_of(replace(raw, "REPLACE 1 INBOX", message(3, size=2900))) == b"OK"
        assert uids_and_bodies(raw, "INBOX") == [(2, message(3, size=2900))]
    finally:
        raw.close()


def test_a_message_expunged_elsewhere_is_not_replaced(server: ServerThread, raw: Raw,
                                                      account: str) -> None:
    """Another session expunged it and this one has not announced it yet (no EXPUNGE
    during a command that may not send one): NO, nothing appended. The store makes the
    same check inside its transaction for a race closer than that (the contract test
    ``test_replace_of_a_gone_message_stores_nothing``)."""
    put(raw, "INBOX", message(1))
    raw.command("SELECT INBOX")
    other = Raw(server.port("imap"), login=account)
    try:
        other.command("SELECT INBOX")
        other.command("STORE 1 +FLAGS (\\Deleted)")
        assert status_of(other.command("EXPUNGE")) == b"OK"
    finally:
        other.close()
    lines = replace(raw, "UID REPLACE 1 INBOX", message(2))
    assert lines[-1].startswith(b"r1 NO [EXPUNGEISSUED]"), lines
    assert b"UIDNEXT 2" in raw.command("STATUS INBOX (UIDNEXT)")[0]
