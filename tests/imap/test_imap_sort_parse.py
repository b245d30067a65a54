"""The SORT and THREAD grammar (RFC 5256 §4), through the command table as the session
parses a frame."""

from __future__ import annotations

import pytest

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.parse.commands import parse_command
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.search import All, And, Flag, Not, Text, TextField
from mailstead.imap.parse.sort import Criterion, SortArgs, SortKey, ThreadAlgorithm, ThreadArgs


def test_sort_criteria_charset_and_program() -> None:
    cmd = parse_command(b"a UID SORT (REVERSE arrival  FROM) utf-8 NOT SEEN FROM x", GRAMMARS)
    assert cmd.name == "UID SORT"
    assert cmd.args == SortArgs(
        (Criterion(SortKey.ARRIVAL, reverse=True), Criterion(SortKey.FROM)),
        "UTF-8",
        And((Not(Flag("\\Seen", True)), Text(TextField.FROM, "x"))),
    )


def test_thread_algorithm() -> None:
    cmd = parse_command(b"a THREAD references US-ASCII ALL", GRAMMARS)
    assert cmd.args == ThreadArgs(ThreadAlgorithm.REFERENCES, "US-ASCII", All())
    cmd = parse_command(b'a UID THREAD ORDEREDSUBJECT "UTF-8" (ALL)', GRAMMARS)
    assert cmd.args == ThreadArgs(ThreadAlgorithm.ORDEREDSUBJECT, "UTF-8", All())


@pytest.mark.parametrize(
    "line",
    [
        b"a SORT",
        b"a SORT (DATE)",
        b"a SORT (DATE) UTF-8",
        b"a SORT (DATE REVERSE) UTF-8 ALL",
        b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
        b"a SORT (ARRIVAL) UTF-8 ALL )",
        b"a THREAD UTF-8 ALL",
        b"a THREAD REFERENCES",
    ],
)
def test_malformed_lines_are_parse_errors(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(line, GRAMMARS)
