"""Live results (RFC 5267 §4.3) without a server: a simulated client applies every ADDTO
and REMOVEFROM exactly as §4.3.3 and §4.3.4 say, and must always hold what a fresh SORT
or SEARCH would answer. Hypothesis drives arrivals, flag changes and expunges."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstead.imap import live
from mailstead.imap.basesubject import extract
from mailstead.imap.live import MAX_LIVE_RESULTS, LiveResult, LiveResults
from mailstead.imap.parse.sort import Criterion, SortKey
from mailstead.imap.replies import CommandError, Status
from mailstead.imap.search import Needs
from mailstead.imap.sort import Sortable, sort_messages

_LINE = re.compile(r'ESEARCH \(TAG "t"\) UID (ADDTO|REMOVEFROM) \((.*)\)$')


def _sortable(uid: int, size: int) -> Sortable:
    return Sortable(uid, uid, 0.0, 0.0, size, extract(""), "", "", "", None, ())


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        lo, hi = sorted((int(a), int(b or a)))
        out += range(lo, hi + 1)
    return out


def _client_applies(held: list[int], lines: list[str]) -> list[int]:
    """What a client does with the lines (RFC 5267 §4.3.2: in order, pair by pair)."""
    for line in lines:
        m = _LINE.match(line)
        assert m is not None, line
        words = m.group(2).split(" ")
        assert len(words) % 2 == 0
        for position_text, numbers_text in zip(words[::2], words[1::2], strict=True):
            position, numbers = int(position_text), _expand(numbers_text)
            if m.group(1) == "ADDTO":
                if position == 0:
                    held = sorted(set(held) | set(numbers))
                else:
                    assert 1 <= position <= len(held) + 1
                    held = held[: position - 1] + numbers + held[position - 1 :]
            elif position == 0:
                held = [u for u in held if u not in numbers]
            else:
                assert held[position - 1 : position - 1 + len(numbers)] == numbers
                held = held[: position - 1] + held[position - 1 + len(numbers) :]
    return held


_EVENT = st.tuples(
    st.sampled_from(["arrive", "flag", "expunge"]),
    st.integers(0, 40),
    st.integers(0, 5),
    st.booleans(),
)


@settings(max_examples=150)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=15),
    st.lists(st.lists(_EVENT, max_size=6), max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_client_holds_what_a_new_command_would_answer(
    initial: list[tuple[int, bool]],
    rounds: list[list[tuple[str, int, int, bool]]],
    sorted_result: bool,
    reverse: bool,
) -> None:
    sizes: dict[int, int] = {}
    matching: dict[int, bool] = {}
    for uid, (size, match) in enumerate(initial, start=1):
        sizes[uid], matching[uid] = size, match
    criteria = (Criterion(SortKey.SIZE, reverse),)

    def answer() -> list[int]:
        found = [_sortable(u, sizes[u]) for u in sorted(sizes) if matching[u]]
        if not sorted_result:
            return [m.uid for m in found]
        return [m.uid for m in sort_messages(found, criteria)]

    first = answer()
    if sorted_result:
        result = LiveResult.for_sort(
            "t",
            True,
            lambda c: True,
            Needs(),
            criteria,
            frozenset(),
            [_sortable(u, sizes[u]) for u in first],
        )
    else:
        result = LiveResult("t", True, lambda c: True, Needs(), None, frozenset(), set(first))
    held = list(first)
    next_uid = len(initial) + 1
    for events in rounds:
        gone: list[int] = []
        for kind, pick, size, match in events:
            present = sorted(u for u in sizes if u not in gone)
            if kind == "arrive":
                uid, next_uid = next_uid, next_uid + 1
                sizes[uid], matching[uid] = size, match
                result.verdicts[uid] = _sortable(uid, size) if match else None
            elif present and kind == "flag":
                uid = present[pick % len(present)]
                matching[uid] = match
                result.verdicts[uid] = _sortable(uid, sizes[uid]) if match else None
            elif present:
                gone.append(present[pick % len(present)])

        def seq_of(uid: int) -> int | None:
            return uid if uid in sizes else None

        # The flush: REMOVEFROM for the expunged while they are still numbered, then the
        # verdicts.
        lines = result.expunged(gone, seq_of)
        for uid in gone:
            del sizes[uid], matching[uid]
        lines += result.apply(seq_of)
        held = _client_applies(held, lines)
        assert held == answer()
        assert result.members == set(held)


def _search_result(tag: str, members: set[int]) -> LiveResult:
    return LiveResult(tag, True, lambda c: True, Needs(), None, frozenset(), members)


def test_results_past_the_limits_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    results = LiveResults()
    for n in range(MAX_LIVE_RESULTS):
        assert results.keep(_search_result(f"t{n}", set())) is None
    assert results.keep(_search_result("over", set())) == (
        'NO [NOUPDATE "over"] Too many live results'
    )
    assert not results.has("over")
    assert results.cancel("t0")
    monkeypatch.setattr(live, "MAX_LIVE_MESSAGES", 3)
    assert results.keep(_search_result("big", {1, 2, 3, 4})) == (
        'NO [NOUPDATE "big"] Result too large to keep live'
    )
    assert results.keep(_search_result("small", {1, 2, 3})) is None


def test_a_used_tag_is_bad() -> None:
    results = LiveResults()
    results.keep(_search_result("a", set()))
    with pytest.raises(CommandError) as caught:
        results.check_tag("a")
    assert caught.value.status is Status.BAD
    results.check_tag("b")
