"""The GETMETADATA and SETMETADATA grammar (RFC 5464 §5) and entry names (§3.2), through
the command table as the session parses a frame; property tests for round trips and for
arbitrary input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.commands.metadata import entry_octets, select_entries, value_octets
from mailstead.imap.parse.commands import parse_command
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.metadata import (
    Depth,
    EntryNameError,
    GetMetadata,
    SetMetadata,
    entry_name,
)


def test_getmetadata_options_before_or_after_the_mailbox() -> None:
    expected = GetMetadata("INBOX", ("/private/a", "/shared/b"), 10, Depth.INFINITY)
    for line in (
        b"a GETMETADATA (MAXSIZE 10 DEPTH infinity) inbox (/private/A /shared/b)",
        b"a GETMETADATA INBOX (depth INFINITY maxsize 10) (/private/a /Shared/B)",
        b'a GETMETADATA ( DEPTH infinity  MAXSIZE 10 ) "INBOX" ( /private/a  /shared/b )',
    ):
        assert parse_command(line, GRAMMARS).args == expected
    assert parse_command(b'a GETMETADATA "" /shared/admin', GRAMMARS).args == GetMetadata(
        "", ("/shared/admin",)
    )


def test_setmetadata_values() -> None:
    cmd = parse_command(
        b'a SETMETADATA INBOX (/private/a "x" /shared/b NIL /private/c {2}\r\nhi'
        b" /private/d ~{3}\r\na\x00b)",
        GRAMMARS,
    )
    assert cmd.args == SetMetadata(
        "INBOX",
        (
            ("/private/a", b"x"),
            ("/shared/b", None),
            ("/private/c", b"hi"),
            ("/private/d", b"a\x00b"),
        ),
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a GETMETADATA",
        b"a GETMETADATA INBOX",
        b"a GETMETADATA (DEPTH 1) INBOX",
        b"a GETMETADATA (DEPTH 1 DEPTH 1) INBOX /private/a",
        b"a GETMETADATA (MAXSIZE 1 MAXSIZE 2) INBOX /private/a",
        b"a GETMETADATA (MAXSIZE) INBOX /private/a",
        b"a GETMETADATA INBOX /private/a /private/b",
        b"a GETMETADATA INBOX (/private/a",
        b"a GETMETADATA INBOX /private/a)",
        b"a SETMETADATA INBOX",
        b"a SETMETADATA INBOX ()",
        b"a SETMETADATA INBOX (/private/a)",
        b"a SETMETADATA INBOX (/private/a x y)",
        b'a SETMETADATA INBOX (/private/a "x"',
        b"a SETMETADATA INBOX (/private/a {1}\r\n\x00)",
    ],
)
def test_malformed_lines_are_parse_errors(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(line, GRAMMARS)


def test_entries_per_command_are_bounded() -> None:
    names = b" ".join(b"/private/e%d" % i for i in range(1001))
    with pytest.raises(ParseError):
        parse_command(b"a GETMETADATA INBOX (" + names + b")", GRAMMARS)


# -- properties ---------------------------------------------------------------------------
_COMPONENT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="/*%"),
    min_size=1,
    max_size=12,
)
_NAME = st.builds(
    lambda top, parts: "/".join([top, *parts]),
    st.sampled_from(["/private", "/shared", "/PRIVATE", "/Shared"]),
    st.lists(_COMPONENT, min_size=1, max_size=4),
)


@given(_NAME)
def test_valid_names_come_back_lower_case(name: str) -> None:
    assert entry_name(name.encode()) == name.lower()


@pytest.mark.parametrize(
    "raw",
    [
        b"/foo",
        b"/private/",
        b"/private//a",
        b"/private/a*",
        b"/shared/%",
        b"private/a",
        b"/private/\x7f",
        b"/shared/\tx",
        b"/privatex",
        b"/private/caf\xc3\xa9",
        b"",
        b"/private/" + b"x" * 1024,
    ],
)
def test_names_the_rfc_forbids(raw: bytes) -> None:
    with pytest.raises(EntryNameError):
        entry_name(raw)


#: Octets that matter to entry names, so that random names often come close to valid ones.
_NEAR_NAMES = st.one_of(
    st.binary(max_size=40),
    st.lists(
        st.sampled_from(
            [
                b"/private",
                b"/shared",
                b"/",
                b"a",
                b"B",
                b"*",
                b"%",
                b"\x00",
                b"\x1f",
                b"\x7f",
                b"\xc3\xa9",
                b" ",
                b".",
            ]
        ),
        max_size=10,
    ).map(b"".join),
)


@given(_NEAR_NAMES)
def test_any_octets_are_a_name_or_a_reason(raw: bytes) -> None:
    try:
        name = entry_name(raw)
    except EntryNameError:
        return
    assert name == name.lower() and name.isascii()
    assert name.startswith(("/private", "/shared"))
    assert "//" not in name and not name.endswith("/") and not set(name) & set("*%")
    assert all(0x20 <= ord(c) < 0x7F for c in name)


@given(
    st.lists(st.tuples(_NAME, st.one_of(st.none(), st.binary(max_size=40))), min_size=1, max_size=6)
)
def test_setmetadata_round_trips_what_the_server_would_send(
    pairs: list[tuple[str, bytes | None]],
) -> None:
    """A SETMETADATA built from the octets GETMETADATA sends parses back to the same
    entries and values: names quoted where needed, values quoted, literal or literal8."""
    pairs = [(name, value) for name, value in pairs if name.lower() not in ("/private", "/shared")]
    if not pairs:
        return
    body = b" ".join(entry_octets(name) + b" " + value_octets(value) for name, value in pairs)
    cmd = parse_command(b"a SETMETADATA INBOX (" + body + b")", GRAMMARS)
    assert cmd.args == SetMetadata("INBOX", tuple((n.lower(), v) for n, v in pairs))


@given(st.binary(max_size=80))
def test_arbitrary_arguments_never_crash(tail: bytes) -> None:
    for command in (b"a GETMETADATA ", b"a SETMETADATA "):
        with contextlib.suppress(ParseError):
            parse_command(command + tail, GRAMMARS)


def test_depth_by_example() -> None:
    entries = {
        "/private/a": b"1",
        "/private/a/b": b"2",
        "/private/a/b/c": b"3",
        "/private/ab": b"4",
    }
    assert select_entries(entries, ("/private/a",), Depth.ZERO) == [("/private/a", b"1")]
    assert select_entries(entries, ("/private/a",), Depth.ONE) == [
        ("/private/a", b"1"),
        ("/private/a/b", b"2"),
    ]
    assert select_entries(entries, ("/private/a",), Depth.INFINITY) == [
        ("/private/a", b"1"),
        ("/private/a/b", b"2"),
        ("/private/a/b/c", b"3"),
    ]
    assert select_entries(entries, ("/private/x", "/private/a"), Depth.ZERO) == [
        ("/private/x", None),
        ("/private/a", b"1"),
    ]
    assert select_entries(entries, ("/private/x",), Depth.ONE) == []


_PATH = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4).map(
    lambda parts: "/private/" + "/".join(parts)
)


@given(
    st.dictionaries(_PATH, st.binary(max_size=4), max_size=12),
    st.lists(_PATH, min_size=1, max_size=3),
    st.sampled_from(list(Depth)),
)
def test_depth_selects_the_entry_and_what_lies_below(
    entries: dict[str, bytes], wanted: list[str], depth: Depth
) -> None:
    got = select_entries(entries, tuple(wanted), depth)
    names = [name for name, _ in got]
    assert len(names) == len(set(names))  # each entry once
    levels = {Depth.ZERO: 0, Depth.ONE: 1, Depth.INFINITY: 99}[depth]
    expected = {
        name
        for name in entries
        for w in wanted
        if name == w or (name.startswith(w + "/") and name[len(w) :].count("/") <= levels)
    }
    if depth is Depth.ZERO:
        expected |= set(wanted)
    assert set(names) == expected
    assert all(value == entries.get(name) for name, value in got)
