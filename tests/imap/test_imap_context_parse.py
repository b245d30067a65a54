"""The grammar of ESORT and CONTEXT (RFC 5267 §5): SORT's RETURN options, the CONTEXT and
UPDATE return options, CANCELUPDATE; and the sequence-set text of sorted results (§3.2).
Property tests build lines from their parts and check every part comes back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.esearch import ordered_set
from mailstead.imap.parse.commands import CancelUpdate, parse_command
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.primitives import PartialRange
from mailstead.imap.parse.search import (
    MAX_RETURN_OPTIONS,
    All,
    Flag,
    ReturnOption,
    SearchArgs,
)
from mailstead.imap.parse.sort import Criterion, SortArgs, SortKey


def test_sort_with_return_options() -> None:
    cmd = parse_command(
        b"a UID SORT RETURN (min MAX update PARTIAL -1:-5) (DATE) UTF-8 ALL", GRAMMARS
    )
    assert cmd.args == SortArgs(
        (Criterion(SortKey.DATE),),
        "UTF-8",
        All(),
        (ReturnOption.MIN, ReturnOption.MAX, ReturnOption.UPDATE, ReturnOption.PARTIAL),
        PartialRange(-1, -5),
    )


def test_sort_without_return_is_plain() -> None:
    cmd = parse_command(b"a SORT (DATE) UTF-8 ALL", GRAMMARS)
    assert cmd.args == SortArgs((Criterion(SortKey.DATE),), "UTF-8", All())
    assert cmd.args.return_opts is None
    cmd = parse_command(b"a SORT RETURN () (DATE) UTF-8 ALL", GRAMMARS)
    assert cmd.args.return_opts == ()


def test_search_context_and_update() -> None:
    cmd = parse_command(b"a SEARCH RETURN (CONTEXT UPDATE COUNT) SEEN", GRAMMARS)
    assert cmd.args == SearchArgs(
        Flag("\\Seen", True),
        None,
        (ReturnOption.CONTEXT, ReturnOption.UPDATE, ReturnOption.COUNT),
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a SORT RETURN (ALL PARTIAL 1:5) (DATE) UTF-8 ALL",  # RFC 5267 §4.4
        b"a SORT RETURN (PARTIAL 1:5 PARTIAL 6:9) (DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL",
        b"a SORT RETURN (UPDATES) (DATE) UTF-8 ALL",
        b"a SORT RETURN (ALL) UTF-8 ALL",
        b"a SORT RETURN ALL (DATE) UTF-8 ALL",
        b"a SORT RETURN (ALL)(DATE) UTF-8 ALL",
        b"a SEARCH RETURN (" + b" ".join([b"COUNT"] * (MAX_RETURN_OPTIONS + 1)) + b") ALL",
        b"a CANCELUPDATE",
        b"a CANCELUPDATE tag",
        b'a CANCELUPDATE "a" b',
        b"a CANCELUPDATE " + b" ".join([b'"t"'] * 65),
    ],
)
def test_malformed_lines_are_parse_errors(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(line, GRAMMARS)


_OPTIONS = st.lists(
    st.sampled_from([o for o in ReturnOption if o not in (ReturnOption.ALL, ReturnOption.PARTIAL)]),
    max_size=6,
)
_TAG = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20)


@given(
    _OPTIONS,
    st.sampled_from(["", "ALL", "PARTIAL"]),
    st.integers(1, 2**31),
    st.integers(1, 2**31),
    st.booleans(),
    st.lists(st.sampled_from(list(SortKey)), min_size=1, max_size=4),
)
def test_sort_return_options_round_trip(
    opts: list[ReturnOption],
    exclusive: str,
    first: int,
    last: int,
    minus: bool,
    keys: list[SortKey],
) -> None:
    words = [o.value for o in opts]
    partial = None
    if exclusive == "ALL":
        words.append("ALL")
    elif exclusive == "PARTIAL":
        sign = -1 if minus else 1
        partial = PartialRange(sign * first, sign * last)
        words.append(f"PARTIAL {partial}")
    criteria = " ".join(k.value for k in keys)
    line = f"t UID SORT RETURN ({' '.join(words)}) ({criteria}) UTF-8 ALL".encode()
    args = parse_command(line, GRAMMARS).args
    assert isinstance(args, SortArgs)
    expected = list(opts) + ([ReturnOption(exclusive)] if exclusive else [])
    assert args.return_opts == tuple(expected)
    assert args.partial == partial
    assert args.criteria == tuple(Criterion(k) for k in keys)


@given(st.lists(_TAG, min_size=1, max_size=10))
def test_cancelupdate_round_trip(tags: list[str]) -> None:
    quoted = " ".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in tags)
    cmd = parse_command(f"c CANCELUPDATE {quoted}".encode(), GRAMMARS)
    assert cmd.args == CancelUpdate(tuple(tags))


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        lo, hi = sorted((int(a), int(b or a)))
        out += range(lo, hi + 1)  # RFC 5267 §3.2: a range expands in increasing order
    return out


@given(st.lists(st.integers(1, 60), unique=True, max_size=40))
def test_ordered_set_keeps_the_order(numbers: list[int]) -> None:
    text = ordered_set(numbers)
    assert _expand(text) == numbers if numbers else text == ""
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":")
            assert int(a) < int(b)  # §3.2: "12:10 SHOULD be avoided"
