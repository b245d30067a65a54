"""CONDSTORE (RFC 7162 §3.1) against the real server: HIGHESTMODSEQ on SELECT and STATUS,
the MODSEQ FETCH item, FETCH (CHANGEDSINCE), STORE (UNCHANGEDSINCE) with MODIFIED, SEARCH
MODSEQ, the enabling commands, and MODSEQ in unsolicited FETCH once enabled."""

from __future__ import annotations

import re

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import SIMPLE_MESSAGE, Raw, status_of

_HIGHEST = re.compile(rb"\* OK \[HIGHESTMODSEQ (\d+)\]")
_MODSEQ = re.compile(rb"MODSEQ \((\d+)\)")


def _append(raw: Raw, count: int, mailbox: str = "INBOX") -> None:
    for _ in range(count):
        raw.send(f"a APPEND {mailbox} {{{len(SIMPLE_MESSAGE)}+}}\r\n".encode() + SIMPLE_MESSAGE
                 + b"\r\n")
        assert status_of(raw.read_until_tag("a")) == b"OK"


def _highest(lines: list[bytes]) -> int:
    found = [int(m.group(1)) for line in lines if (m := _HIGHEST.match(line))]
    assert len(found) == 1, lines
    return found[0]


def _modseqs(lines: list[bytes]) -> dict[int, int]:
    """seq -> MODSEQ from untagged FETCH lines."""
    out = {}
    for line in lines:
        m = re.match(rb"\* (\d+) FETCH .*MODSEQ \((\d+)\)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


@pytest.fixture
def selected(server: ServerThread, account: str) -> Raw:
    raw = Raw(server.port("imap"), login=account)
    _append(raw, 3)
    raw.command("SELECT INBOX")
    return raw


def test_capability_and_highestmodseq_on_every_select(server: ServerThread, account: str) -> None:
    raw = Raw(server.port("imap"), login=account)
    assert b" CONDSTORE" in raw.command("CAPABILITY")[0]
    empty = _highest(raw.command("SELECT INBOX"))
    _append(raw, 2)
    lines = raw.command("EXAMINE INBOX")
    assert _highest(lines) > empty
    # Order as James sends it: after PERMANENTFLAGS, before UIDNEXT.
    codes = [re.match(rb"\* OK \[(\w+)", line) for line in lines]
    names = [m.group(1) for m in codes if m]
    assert names.index(b"PERMANENTFLAGS") < names.index(b"HIGHESTMODSEQ") < names.index(
        b"UIDNEXT"
    )


def test_modseq_grows_with_each_change_and_status_reports_it(selected: Raw) -> None:
    raw = selected
    start = _modseqs(raw.command("FETCH 1:3 MODSEQ"))
    assert sorted(start) == [1, 2, 3]
    assert start[1] < start[2] < start[3]  # each append is its own change
    lines = raw.command("STORE 2 +FLAGS (\\Flagged)")
    after = _modseqs(lines)
    assert after[2] > start[3]
    assert re.match(rb"\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\) UID 2 MODSEQ \(\d+\)\)", lines[0])
    status = raw.command("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
    assert status[0] == b'* STATUS "INBOX" (MESSAGES 3 HIGHESTMODSEQ %d)\r\n' % after[2]
    assert status_of(status) == b"OK"


def test_fetch_changedsince_returns_only_later_changes(selected: Raw) -> None:
    raw = selected
    base = _modseqs(raw.command("FETCH 3 MODSEQ"))[3]
    raw.command("STORE 1 +FLAGS.SILENT (\\Seen)")
    lines = raw.command(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {base})")
    assert len(lines) == 2, lines
    assert re.match(rb"\* 1 FETCH \(FLAGS \(\\Recent \\Seen\) MODSEQ \(\d+\)\)", lines[0])
    uid_lines = raw.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base})")
    assert re.match(rb"\* 1 FETCH \(FLAGS \(\\Recent \\Seen\) UID 1 MODSEQ \(\d+\)\)", uid_lines[0])
    assert status_of(raw.command("FETCH 1:* FLAGS (CHANGEDSINCE 0)")) == b"BAD"
    assert status_of(raw.command("FETCH 1:* FLAGS (VANISHED)")) == b"BAD"


def test_unchangedsince_refuses_messages_changed_meanwhile(
    server: ServerThread, account: str, selected: Raw
) -> None:
    raw = selected
    known = _modseqs(raw.command("FETCH 1:3 MODSEQ"))
    other = Raw(server.port("imap"), login=account)
    other.command("SELECT INBOX")
    other.command("STORE 2 +FLAGS (\\Answered)")  # the conflicting change
    lines = raw.command(f"STORE 1:3 (UNCHANGEDSINCE {known[3]}) +FLAGS (\\Deleted)")
    assert lines[-1].startswith(b"t") and b"OK [MODIFIED 2]" in lines[-1], lines
    fetched = {int(line.split()[1]) for line in lines if b" FETCH (" in line and b"Deleted" in line}
    assert fetched == {1, 3}
    # UID STORE reports UIDs; .SILENT still reports the new MODSEQ of what changed.
    answered = _modseqs(raw.command("FETCH 2 MODSEQ"))[2]  # below what the STORE above set
    lines = raw.command(f"UID STORE 1:3 (UNCHANGEDSINCE {answered}) +FLAGS.SILENT (\\Seen)")
    assert b"OK [MODIFIED 1,3]" in lines[-1], lines
    assert re.match(rb"\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)", lines[0]), lines
    assert len(lines) == 2
    # UNCHANGEDSINCE 0 fails for every message (RFC 7162 §3.1.3).
    assert b"[MODIFIED 1:3]" in raw.command("STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Draft)")[-1]
    other.close()


def test_search_modseq_and_esearch_modseq(selected: Raw) -> None:
    raw = selected
    base = _modseqs(raw.command("FETCH 3 MODSEQ"))[3]
    raw.command("STORE 1,3 +FLAGS (\\Flagged)")
    high = _highest(raw.command("SELECT INBOX"))
    lines = raw.command(f"SEARCH MODSEQ {base + 1}")
    assert lines[0] == b"* SEARCH 1 3 (MODSEQ %d)\r\n" % high
    lines = raw.command(f'SEARCH MODSEQ "/flags/\\\\draft" all {base + 1}')
    assert lines[0] == b"* SEARCH 1 3 (MODSEQ %d)\r\n" % high
    lines = raw.command(f"UID SEARCH RETURN (MIN COUNT) MODSEQ {base + 1}", tag="e1")
    assert lines[0] == b'* ESEARCH (TAG "e1") UID MIN 1 COUNT 2 MODSEQ %d\r\n' % high
    lines = raw.command(f"SEARCH RETURN (MIN) MODSEQ {base + 1}", tag="e2")
    min_modseq = _modseqs(raw.command("FETCH 1 MODSEQ"))[1]
    assert lines[0] == b'* ESEARCH (TAG "e2") MIN 1 MODSEQ %d\r\n' % min_modseq
    assert raw.command(f"SEARCH MODSEQ {high + 1}")[0] == b"* SEARCH\r\n"


def test_first_enabling_command_while_selected_sends_highestmodseq(
    server: ServerThread, account: str
) -> None:
    raw = Raw(server.port("imap"), login=account)
    _append(raw, 2)
    select = raw.command("SELECT INBOX")
    lines = raw.command("FETCH 1 (FLAGS MODSEQ)")
    assert _highest(lines) == _highest(select)
    assert _HIGHEST.match(lines[0]), "the code comes before the FETCH data"
    assert not any(_HIGHEST.match(line) for line in raw.command("FETCH 1 MODSEQ"))
    enable = Raw(server.port("imap"), login=account)
    assert enable.command("ENABLE CONDSTORE")[0] == b"* ENABLED CONDSTORE\r\n"
    assert enable.command("ENABLE CONDSTORE")[0] == b"* ENABLED\r\n"
    enable.command("SELECT INBOX (CONDSTORE)")
    enable.close()
    raw.close()


def test_unsolicited_fetch_carries_uid_and_modseq_once_enabled(
    server: ServerThread, account: str, selected: Raw
) -> None:
    raw = selected
    other = Raw(server.port("imap"), login=account)
    other.command("SELECT INBOX")
    other.command("STORE 2 +FLAGS (\\Flagged)")
    plain = raw.command("NOOP")
    assert plain[0] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    raw.command("FETCH 1 MODSEQ")  # enables CONDSTORE (ENABLE is not valid once selected)
    other.command("STORE 3 +FLAGS (\\Flagged)")
    lines = raw.command("NOOP")
    changed = rb"\* 3 FETCH \(FLAGS \(\\Flagged \\Recent\) UID 3 MODSEQ \((\d+)\)\)"
    assert re.match(changed, lines[0]), lines
    # A FETCH that sets \Seen reports FLAGS, UID and MODSEQ with its data.
    lines = raw.command("FETCH 1 BODY[TEXT]")
    seen = rb"\* 1 FETCH \(FLAGS \(\\Recent \\Seen\) BODY\[TEXT\] .* UID 1 MODSEQ \(\d+\)\)"
    assert re.match(seen, lines[0], re.S), lines
    other.close()


def test_select_parameters_are_checked(server: ServerThread, account: str) -> None:
    raw = Raw(server.port("imap"), login=account)
    assert status_of(raw.command("SELECT INBOX (QRESYNC (1 2))")) == b"BAD"
    assert status_of(raw.command("SELECT INBOX ()")) == b"OK"
    assert status_of(raw.command("EXAMINE INBOX (CONDSTORE)")) == b"OK"
    raw.close()
