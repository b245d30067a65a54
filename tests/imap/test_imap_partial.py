"""PARTIAL (RFC 9394) against the real server: paged SEARCH results (``RETURN (PARTIAL
range)``, ESEARCH ``PARTIAL (range set-or-NIL)``) beside MIN/MAX/COUNT/SAVE and CONDSTORE's
MODSEQ, and the FETCH / UID FETCH ``(PARTIAL range)`` modifier with CHANGEDSINCE and VANISHED.

Every test starts from the same mailbox: UID 1 expunged, so sequence numbers 1..5 are UIDs
2..6, and UIDs 3, 5 and 6 flagged."""

from __future__ import annotations

import re

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import SIMPLE_MESSAGE, Raw, status_of

_ESEARCH = re.compile(rb'\* ESEARCH \(TAG "[^"]+"\) ?(.*)\r\n')


def _prepare(raw: Raw) -> None:
    for _ in range(6):
        raw.send(f"a APPEND INBOX {{{len(SIMPLE_MESSAGE)}+}}\r\n".encode() + SIMPLE_MESSAGE
                 + b"\r\n")
        assert status_of(raw.read_until_tag("a")) == b"OK"
    assert status_of(raw.command("SELECT INBOX")) == b"OK"
    assert status_of(raw.command("UID STORE 1 +FLAGS.SILENT (\\Deleted)")) == b"OK"
    assert status_of(raw.command("EXPUNGE")) == b"OK"
    assert status_of(raw.command("UID STORE 3,5,6 +FLAGS.SILENT (\\Flagged)")) == b"OK"


@pytest.fixture
def box(server: ServerThread, account: str) -> Raw:
    raw = Raw(server.port("imap"), login=account)
    _prepare(raw)
    return raw


def _esearch(lines: list[bytes]) -> str:
    """The return data of the one ESEARCH response, after its TAG correlator."""
    assert status_of(lines) == b"OK", lines
    found = [m.group(1) for line in lines if (m := _ESEARCH.match(line))]
    assert len(found) == 1, lines
    return found[0].decode()


def _fetched(lines: list[bytes]) -> list[tuple[int, int]]:
    """(sequence number, UID) of each FETCH response."""
    assert status_of(lines) == b"OK", lines
    return [
        (int(m.group(1)), int(m.group(2)))
        for line in lines
        if (m := re.match(rb"\* (\d+) FETCH \(.*UID (\d+)", line))
    ]


def _modseqs(raw: Raw) -> dict[int, int]:
    """UID -> MODSEQ of every message."""
    lines = raw.command("UID FETCH 1:* (MODSEQ)")
    return {
        int(m.group(2)): int(m.group(1))
        for line in lines
        if (m := re.match(rb"\* \d+ FETCH \(MODSEQ \((\d+)\) UID (\d+)\)", line))
    }


def test_capability(box: Raw) -> None:
    assert b" PARTIAL " in box.command("CAPABILITY")[0]


@pytest.mark.parametrize(
    ("command", "data"),
    [
        # RFC 9394 §3.1: result 1 is the lowest UID; the range comes back as sent.
        ("UID SEARCH RETURN (PARTIAL 1:2) ALL", "UID PARTIAL (1:2 2:3)"),
        ("SEARCH RETURN (PARTIAL 1:2) ALL", "PARTIAL (1:2 1:2)"),
        # -1 is the last result, -2 the one before.
        ("UID SEARCH RETURN (PARTIAL -1:-2) ALL", "UID PARTIAL (-1:-2 5:6)"),
        ("SEARCH RETURN (PARTIAL -2:-1) ALL", "PARTIAL (-2:-1 4:5)"),
        # §4: 3:2 is 2:3.
        ("UID SEARCH RETURN (PARTIAL 3:2) ALL", "UID PARTIAL (3:2 3:4)"),
        # The positions are among the matches (UIDs 3, 5, 6 here).
        ("UID SEARCH RETURN (PARTIAL -1:-2) FLAGGED", "UID PARTIAL (-1:-2 5:6)"),
        ("UID SEARCH RETURN (PARTIAL 1:1) FLAGGED", "UID PARTIAL (1:1 3)"),
        ("SEARCH RETURN (PARTIAL 2:3) FLAGGED", "PARTIAL (2:3 4:5)"),
        # §3.1: past the end the page is short; wholly past it, NIL.
        ("UID SEARCH RETURN (PARTIAL 4:10) ALL", "UID PARTIAL (4:10 5:6)"),
        ("UID SEARCH RETURN (PARTIAL -4:-9) ALL", "UID PARTIAL (-4:-9 2:3)"),
        ("UID SEARCH RETURN (PARTIAL 6:10) ALL", "UID PARTIAL (6:10 NIL)"),
        ("UID SEARCH RETURN (PARTIAL -6:-9) ALL", "UID PARTIAL (-6:-9 NIL)"),
        ("UID SEARCH RETURN (PARTIAL 1:5) KEYWORD nothing", "UID PARTIAL (1:5 NIL)"),
        # MIN, MAX and COUNT still describe every message found (§3.2).
        (
            "UID SEARCH RETURN (MIN MAX COUNT PARTIAL 2:3) ALL",
            "UID MIN 2 MAX 6 PARTIAL (2:3 3:4) COUNT 5",
        ),
        ("SEARCH RETURN (COUNT PARTIAL -1:-1) KEYWORD nothing", "PARTIAL (-1:-1 NIL) COUNT 0"),
    ],
)
def test_search_returns_one_page(box: Raw, command: str, data: str) -> None:
    assert _esearch(box.command(command)) == data


def test_search_partial_for_an_imap4rev2_client_too(server: ServerThread, account: str) -> None:
    raw = Raw(server.port("imap"), login=account)
    assert status_of(raw.command("ENABLE IMAP4rev2")) == b"OK"
    _prepare(raw)
    assert _esearch(raw.command("UID SEARCH RETURN (PARTIAL -1:-1) ALL")) == "UID PARTIAL (-1:-1 6)"


@pytest.mark.parametrize(
    ("options", "saved"),
    [
        # RFC 9394 §3.2, Table 1: "$" holds the page, plus the MIN and/or MAX message; with
        # COUNT every message found.
        ("SAVE PARTIAL 2:3", [3, 4]),
        ("SAVE MIN PARTIAL -1:-1", [2, 6]),
        ("SAVE MAX PARTIAL 1:1", [2, 6]),
        ("SAVE MIN MAX PARTIAL 3:3", [2, 4, 6]),
        ("SAVE COUNT PARTIAL 1:1", [2, 3, 4, 5, 6]),
        ("SAVE MIN COUNT PARTIAL 1:1", [2, 3, 4, 5, 6]),
        ("SAVE PARTIAL 7:9", []),
    ],
)
def test_save_keeps_what_partial_returned(box: Raw, options: str, saved: list[int]) -> None:
    data = _esearch(box.command(f"SEARCH RETURN ({options}) ALL"))
    assert "PARTIAL (" in data  # §3.2: SAVE does not change what PARTIAL returns
    assert [uid for _, uid in _fetched(box.command("UID FETCH $ (UID)"))] == saved


def test_modseq_is_the_highest_of_the_messages_returned(box: Raw) -> None:
    modseqs = _modseqs(box)
    assert sorted(modseqs) == [2, 3, 4, 5, 6]
    # RFC 4731 §3.2 (RFC 7162 §3.1.5): the highest MODSEQ of the messages returned, which
    # with PARTIAL alone is the page (RFC 9394 §3.2 names the same set for SAVE) ...
    assert _esearch(box.command("UID SEARCH RETURN (PARTIAL 1:1) MODSEQ 1")) == (
        f"UID PARTIAL (1:1 2) MODSEQ {modseqs[2]}"
    )
    assert _esearch(box.command("UID SEARCH RETURN (MIN PARTIAL 3:3) MODSEQ 1")) == (
        f"UID MIN 2 PARTIAL (3:3 4) MODSEQ {max(modseqs[2], modseqs[4])}"
    )
    # ... and with COUNT every message found.
    assert _esearch(box.command("UID SEARCH RETURN (COUNT PARTIAL 1:1) MODSEQ 1")) == (
        f"UID PARTIAL (1:1 2) COUNT 5 MODSEQ {max(modseqs.values())}"
    )
    # Nothing returned, no MODSEQ.
    assert _esearch(box.command("UID SEARCH RETURN (PARTIAL 9:10) MODSEQ 1")) == (
        "UID PARTIAL (9:10 NIL)"
    )


@pytest.mark.parametrize(
    "command",
    [
        "SEARCH RETURN (PARTIAL 1:5 ALL) ALL",  # RFC 9394 §3.1: one PARTIAL or one ALL
        "SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:7) ALL",
        "SEARCH RETURN (PARTIAL) ALL",
        "SEARCH RETURN (PARTIAL 0:5) ALL",  # §4: nz-number
        "SEARCH RETURN (PARTIAL 1:*) ALL",  # §4: no "*"
        "UID SEARCH RETURN (PARTIAL -1:5) ALL",  # §4: both ends negative or neither
        "UID FETCH 1:* (UID) (PARTIAL 1:*)",
        "FETCH 1:* (UID) (PARTIAL -1:-2 PARTIAL 1:2)",
    ],
)
def test_malformed_partial_is_bad(box: Raw, command: str) -> None:
    assert status_of(box.command(command)) == b"BAD"
    assert status_of(box.command("NOOP")) == b"OK"


@pytest.mark.parametrize(
    ("command", "fetched"),
    [
        # RFC 9394 §3.3: only the messages at the range's positions among those named.
        ("UID FETCH 1:* (UID) (PARTIAL -1:-2)", [(4, 5), (5, 6)]),
        ("UID FETCH 1:* (UID) (PARTIAL 1:2)", [(1, 2), (2, 3)]),
        ("UID FETCH 1:4 (UID) (PARTIAL 1:2)", [(1, 2), (2, 3)]),  # UID 1 is gone
        ("UID FETCH 4:* (UID) (PARTIAL 2:9)", [(4, 5), (5, 6)]),
        ("UID FETCH 1:* (UID) (PARTIAL -9:-5)", [(1, 2)]),
        ("UID FETCH 1:* (UID) (PARTIAL 6:9)", []),
        ("UID FETCH 3,5:6 (UID) (PARTIAL -2:-3)", [(2, 3), (4, 5)]),
        # The modifier list is shared with FETCH (RFC 4466 §2.4); James's FetchPartial.
        ("FETCH 2:5 (UID) (PARTIAL 2:3)", [(3, 4), (4, 5)]),
        ("FETCH 1:* (UID) (PARTIAL -1:-1)", [(5, 6)]),
    ],
)
def test_fetch_returns_one_page(box: Raw, command: str, fetched: list[tuple[int, int]]) -> None:
    assert _fetched(box.command(command)) == fetched


def test_fetch_partial_with_changedsince(box: Raw) -> None:
    """RFC 9394 §3.4: PARTIAL combines with CHANGEDSINCE, in either order; the page is taken
    among the messages named, then CHANGEDSINCE keeps the changed ones in it."""
    base = max(_modseqs(box).values())
    assert status_of(box.command("UID STORE 2,6 +FLAGS.SILENT (\\Seen)")) == b"OK"
    modseqs = _modseqs(box)
    lines = box.command(f"UID FETCH 1:* (UID) (PARTIAL -1:-2 CHANGEDSINCE {base})")
    assert [line for line in lines if b" FETCH (" in line] == [
        b"* 5 FETCH (UID 6 MODSEQ (%d))\r\n" % modseqs[6]
    ]
    lines = box.command(f"UID FETCH 1:* (UID) (CHANGEDSINCE {base} PARTIAL 1:2)")
    assert _fetched(lines) == [(1, 2)]
    lines = box.command(f"FETCH 2:4 (UID) (CHANGEDSINCE {base} PARTIAL 1:3)")
    assert _fetched(lines) == []


def test_fetch_partial_with_vanished(server: ServerThread, account: str) -> None:
    """RFC 7162 §3.2.6: VANISHED (EARLIER) reports the expunged UIDs of the whole set named;
    PARTIAL pages only the messages that exist."""
    raw = Raw(server.port("imap"), login=account)
    assert status_of(raw.command("ENABLE QRESYNC")) == b"OK"
    _prepare(raw)
    lines = raw.command("UID FETCH 1:* (UID) (CHANGEDSINCE 1 VANISHED PARTIAL -1:-1)")
    assert status_of(lines) == b"OK"
    assert lines[0] == b"* VANISHED (EARLIER) 1\r\n"
    assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (n)", line) for line in lines[1:-1]] == [
        b"* 5 FETCH (UID 6 MODSEQ (n))\r\n"
    ]
