"""QRESYNC (RFC 7162 §3.2) against the real server: ENABLE, SELECT (QRESYNC (...)) with
VANISHED (EARLIER) and the changed messages, UID FETCH (CHANGEDSINCE n VANISHED), VANISHED in
place of EXPUNGE once enabled, and CLOSED."""

from __future__ import annotations

import re

from mailstead.testing.server import ServerThread
from tests.imap.conftest import SIMPLE_MESSAGE, Raw, status_of


def _append(raw: Raw, count: int) -> None:
    for _ in range(count):
        raw.send(f"a APPEND INBOX {{{len(SIMPLE_MESSAGE)}+}}\r\n".encode() + SIMPLE_MESSAGE
                 + b"\r\n")
        assert status_of(raw.read_until_tag("a")) == b"OK"


def _code(name: bytes, lines: list[bytes]) -> int:
    for line in lines:
        m = re.match(rb"\* OK \[" + name + rb" (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


def _known_state(server: ServerThread, account: str) -> tuple[int, int]:
    """Five messages; a first session selects and remembers (UIDVALIDITY, HIGHESTMODSEQ)."""
    raw = Raw(server.port("imap"), login=account)
    _append(raw, 5)
    lines = raw.command("SELECT INBOX")
    state = _code(b"UIDVALIDITY", lines), _code(b"HIGHESTMODSEQ", lines)
    raw.close()
    return state


def _change_elsewhere(server: ServerThread, account: str) -> None:
    """Another device expunges UIDs 2 and 4 and flags UID 3."""
    other = Raw(server.port("imap"), login=account)
    other.command("SELECT INBOX")
    other.command("UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    other.command("UID STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert status_of(other.command("EXPUNGE")) == b"OK"
    other.close()


def test_select_qresync_reports_what_changed(server: ServerThread, account: str) -> None:
    uidvalidity, modseq = _known_state(server, account)
    _change_elsewhere(server, account)
    raw = Raw(server.port("imap"), login=account)
    assert b" QRESYNC" in raw.command("CAPABILITY")[0]
    assert status_of(raw.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")) == b"BAD"
    assert raw.command("ENABLE QRESYNC")[0] == b"* ENABLED QRESYNC\r\n"
    lines = raw.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:5))")
    assert status_of(lines) == b"OK"
    assert b"* VANISHED (EARLIER) 2,4\r\n" in lines
    changed = [line for line in lines if b" FETCH " in line]
    assert len(changed) == 1
    assert re.match(rb"\* 2 FETCH \(UID 3 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", changed[0])
    # Only the UIDs the client says it knows are reported vanished.
    lines = raw.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:3))")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    assert b"* VANISHED (EARLIER) 2\r\n" in lines
    # Another UIDVALIDITY: the client's cache is void, nothing incremental is sent.
    lines = raw.command(f"EXAMINE INBOX (QRESYNC ({uidvalidity + 1} {modseq}))")
    assert status_of(lines) == b"OK"
    assert not any(b"VANISHED" in line or b" FETCH " in line for line in lines)
    raw.close()


def test_uid_fetch_vanished_modifier(server: ServerThread, account: str) -> None:
    _, modseq = _known_state(server, account)
    _change_elsewhere(server, account)
    raw = Raw(server.port("imap"), login=account)
    raw.command("SELECT INBOX")
    assert status_of(raw.command(f"UID FETCH 1:* FLAGS (CHANGEDSINCE {modseq} VANISHED)")) == (
        b"BAD"  # QRESYNC not enabled
    )
    raw.close()
    raw = Raw(server.port("imap"), login=account)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    lines = raw.command(f"UID FETCH 1:* FLAGS (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 2,4\r\n"
    assert re.match(rb"\* 2 FETCH \(FLAGS \(\\Flagged\) UID 3 MODSEQ \(\d+\)\)", lines[1])
    assert status_of(lines) == b"OK" and len(lines) == 3
    lines = raw.command(f"UID FETCH 3:4 FLAGS (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 4\r\n"
    assert status_of(raw.command(f"FETCH 1:* FLAGS (CHANGEDSINCE {modseq} VANISHED)")) == b"BAD"
    assert status_of(raw.command("UID FETCH 1:* FLAGS (VANISHED)")) == b"BAD"
    raw.close()


def test_expunges_arrive_as_vanished_once_enabled(server: ServerThread, account: str) -> None:
    _known_state(server, account)
    raw = Raw(server.port("imap"), login=account)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    other = Raw(server.port("imap"), login=account)
    other.command("SELECT INBOX")
    other.command("UID STORE 2,3 +FLAGS.SILENT (\\Deleted)")
    other.command("EXPUNGE")
    lines = raw.command("NOOP")
    assert b"* VANISHED 2:3\r\n" in lines
    assert not any(b"EXPUNGE" in line for line in lines[:-1])
    # Its own EXPUNGE too.
    raw.command("UID STORE 5 +FLAGS.SILENT (\\Deleted)")
    lines = raw.command("EXPUNGE")
    assert lines[0] == b"* VANISHED 5\r\n"
    # The tagged OK carries the HIGHESTMODSEQ the expunge produced.
    tagged = re.match(rb"\S+ OK \[HIGHESTMODSEQ (\d+)\]", lines[-1])
    assert tagged is not None, lines
    after = int(tagged.group(1))
    assert _code(b"HIGHESTMODSEQ", raw.command("SELECT INBOX")) == after
    # A session without QRESYNC still gets EXPUNGE.
    assert b"* 3 EXPUNGE\r\n" in other.command("NOOP")  # UID 5 is message 3 now
    other.close()
    raw.close()
