"""SORT order and THREAD trees (RFC 5256) as pure functions of the message records."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from mailstead.core.types import UID, ModSeq
from mailstead.imap.basesubject import extract
from mailstead.imap.parse.sort import Criterion, SortKey
from mailstead.imap.sort import (
    SORT_FIELDS,
    Field,
    Sortable,
    _sent,
    ordered_subject,
    references,
    render_threads,
    sort_messages,
)
from mailstead.mime.parse import parse_message
from mailstead.mime.stored import StoredStructure, encode
from mailstead.store.models import MessageMeta


def msg(
    seq: int,
    *,
    sent: float | None = None,
    subject: str = "",
    mid: str | None = None,
    refs: tuple[str, ...] = (),
    size: int = 100,
    arrival: float | None = None,
    frm: str = "",
) -> Sortable:
    arrival = float(seq * 1000) if arrival is None else arrival
    return Sortable(
        seq=seq, uid=seq * 10, arrival=arrival, sent=sent if sent is not None else seq,
        size=size, subject=extract(subject), from_mailbox=frm, to_mailbox="", cc_mailbox="",
        message_id=mid, references=refs,
    )


def seqs(messages: list[Sortable]) -> list[int]:
    return [m.seq for m in messages]


def test_sort_by_several_criteria_and_reverse() -> None:
    ms = [
        msg(1, size=30, frm="B"), msg(2, size=10, frm="A"), msg(3, size=20, frm="B"),
        msg(4, size=10, frm="B"),
    ]
    assert seqs(sort_messages(ms, [Criterion(SortKey.SIZE)])) == [2, 4, 3, 1]
    assert seqs(sort_messages(ms, [Criterion(SortKey.SIZE, reverse=True)])) == [1, 3, 2, 4]
    by_from_size = [Criterion(SortKey.FROM), Criterion(SortKey.SIZE, reverse=True)]
    assert seqs(sort_messages(ms, by_from_size)) == [2, 1, 3, 4]


def test_ties_keep_the_mailbox_order_even_reversed() -> None:
    ms = [msg(3, frm="X"), msg(1, frm="X"), msg(2, frm="X")]
    assert seqs(sort_messages(ms, [Criterion(SortKey.FROM)])) == [1, 2, 3]
    assert seqs(sort_messages(ms, [Criterion(SortKey.FROM, reverse=True)])) == [1, 2, 3]


def test_subject_sorts_by_base_subject() -> None:
    ms = [msg(1, subject="Re: beta"), msg(2, subject="alpha"), msg(3, subject="[l] Beta")]
    assert seqs(sort_messages(ms, [Criterion(SortKey.SUBJECT)])) == [2, 1, 3]


def test_sent_date_falls_back_to_arrival() -> None:
    arrival = 1_700_000_000.0
    assert _sent(None, arrival) == arrival
    assert _sent(datetime(102, 5, 1, tzinfo=UTC), arrival) == arrival  # "0102": Y2K bug
    assert _sent(datetime(2002, 5, 1), arrival) == datetime(2002, 5, 1, tzinfo=UTC).timestamp()


def render(roots: list[object]) -> str:
    return render_threads(roots, lambda m: m.seq)  # type: ignore[arg-type]


def test_references_chain_and_siblings() -> None:
    ms = [
        msg(1, mid="a", subject="x"),
        msg(2, mid="b", refs=("a",), subject="Re: x"),
        msg(3, mid="c", refs=("a", "b"), subject="Re: x"),
        msg(4, mid="d", refs=("a",), subject="Re: x"),
        msg(5, mid="e", subject="other"),
    ]
    assert render(references(ms)) == "(1 (2 3)(4))(5)"


def test_missing_parent_becomes_a_dummy_only_for_two_or_more_children() -> None:
    # 1 and 2 answer a message not in the result: a dummy holds both (§5 step 3).
    two = [msg(1, mid="b", refs=("a",), subject="p"), msg(2, mid="c", refs=("a",), subject="q")]
    assert render(references(two)) == "((1)(2))"
    # One child alone is promoted to the root.
    assert render(references(two[:1])) == "(1)"


def test_truncated_references_keep_the_older_link_and_loops_are_refused() -> None:
    ms = [
        msg(1, mid="a", refs=("b",)),  # a claims b as parent ...
        msg(2, mid="b", refs=("a",)),  # ... and b claims a: the second link would loop
    ]
    assert render(references(ms)) == "(2 1)"
    assert render(references([msg(1, mid="a", refs=("a",))])) == "(1)"  # self-reference


def test_duplicate_message_ids_get_their_own_node() -> None:
    ms = [msg(1, mid="a"), msg(2, mid="a"), msg(3, mid="c", refs=("a",))]
    assert render(references(ms)) == "(1 3)(2)"


def test_subject_merging_prefers_the_original_and_groups_under_a_dummy() -> None:
    # §5 step 5: a reply without references joins the original of its subject ...
    ms = [msg(1, mid="a", subject="lunch"), msg(2, mid="b", subject="Re: lunch")]
    assert render(references(ms)) == "(1 2)"
    # ... two originals of one subject go under a new dummy ...
    ms = [msg(1, mid="a", subject="lunch"), msg(2, mid="b", subject="lunch")]
    assert render(references(ms)) == "((1)(2))"
    # ... and empty subjects are never merged.
    ms = [msg(1, mid="a"), msg(2, mid="b")]
    assert render(references(ms)) == "(1)(2)"


def test_threads_and_siblings_are_ordered_by_sent_date() -> None:
    ms = [
        msg(1, mid="a", sent=50, subject="late"),
        msg(2, mid="b", sent=10, subject="early"),
        msg(3, mid="c", refs=("b",), sent=40, subject="Re: early"),
        msg(4, mid="d", refs=("b",), sent=20, subject="Re: early"),
    ]
    assert render(references(ms)) == "(2 (4)(3))(1)"


def test_ordered_subject_groups_by_base_subject() -> None:
    ms = [
        msg(1, subject="b", sent=30),
        msg(2, subject="a", sent=20),
        msg(3, subject="Re: b", sent=10),
        msg(4, subject="Re: a", sent=40),
        msg(5, subject="c", sent=5),
        msg(6, subject="[l] Re: b", sent=50),
    ]
    # The first (oldest) of a subject is the parent of the others; threads by that date.
    assert render(ordered_subject(ms)) == "(5)(3 (1)(6))(2 4)"



def test_a_thread_deeper_than_the_recursion_limit() -> None:
    """A long back-and-forth is one chain of replies: threading and writing it out must not
    recurse once per level."""
    depth = 5000
    ms = [msg(1, mid="m1", subject="chain")] + [
        msg(n, mid=f"m{n}", refs=(f"m{n - 2}", f"m{n - 1}")[-min(2, n - 1):],
            subject="Re: chain")
        for n in range(2, depth + 1)
    ]
    assert render(references(ms)) == "(" + " ".join(str(n) for n in range(1, depth + 1)) + ")"


def test_nested_dummies_are_pruned_to_their_messages() -> None:
    # 1 and 2 answer "b", which answers "a": neither "a" nor "b" is in the result. The
    # dummy "b" under dummy "a" moves up; the root keeps one dummy for the two messages.
    ms = [
        msg(1, mid="c", refs=("a", "b"), subject="p"),
        msg(2, mid="d", refs=("a", "b"), subject="q"),
        msg(3, mid="e", refs=("c",), subject="Re: p"),
    ]
    assert render(references(ms)) == "((1 3)(2))"


_GRAPH = st.lists(
    st.tuples(
        st.integers(0, 12),  # Message-ID "m<n>", or none for 12
        st.lists(st.integers(0, 11), max_size=4),  # References
        st.sampled_from(["", "a", "Re: a", "b", "[l] b", "Fwd: b"]),
        st.integers(0, 5),  # sent date
    ),
    max_size=25,
)


@given(_GRAPH)
def test_every_message_appears_once_whatever_the_references(
    graph: list[tuple[int, list[int], str, int]],
) -> None:
    """Duplicate IDs, loops, self-references, missing parents: each message found is in the
    answer exactly once, under both algorithms."""
    ms = [
        msg(seq, mid=None if mid == 12 else f"m{mid}", refs=tuple(f"m{r}" for r in refs),
            subject=subject, sent=float(sent))
        for seq, (mid, refs, subject, sent) in enumerate(graph, start=1)
    ]
    for algorithm in (references, ordered_subject):
        text = render(algorithm(ms))
        numbers = sorted(int(n) for n in re.findall(r"\d+", text))
        assert numbers == list(range(1, len(ms) + 1))
        assert text.count("(") == text.count(")")
        assert "()" not in text and "( " not in text and " )" not in text


def test_a_record_reads_only_what_is_compared() -> None:
    """SORT by date must not pay for subjects and reference fields (most of the cost of a
    record): the fields not asked for stay empty."""
    raw = (b"From: Zed <zed@x.org>\r\nTo: amy@x.org\r\nCc: bob@x.org\r\nSubject: Re: hi\r\n"
           b"Date: Tue, 2 Jan 2024 08:00:00 +0100\r\nMessage-ID: <b@x>\r\n"
           b"In-Reply-To: <a@x>\r\n\r\nx\r\n")
    structure = StoredStructure(encode(parse_message(raw)))
    meta = MessageMeta(1, UID(3), ModSeq(1), frozenset(), datetime(2024, 2, 1, tzinfo=UTC), 9,
                       "blob")
    sent = datetime(2024, 1, 2, 7, tzinfo=UTC).timestamp()
    dated = Sortable.of(meta, 1, structure, SORT_FIELDS[SortKey.DATE])
    assert dated.sent == sent
    assert (dated.subject.text, dated.from_mailbox, dated.references) == ("", "", ())
    full = Sortable.of(meta, 1, structure, frozenset(Field))
    assert (full.subject.text, full.subject.reply) == ("hi", True)
    assert (full.from_mailbox, full.to_mailbox, full.cc_mailbox) == ("ZED", "AMY", "BOB")
    assert (full.message_id, full.references, full.sent) == ("b@x", ("a@x",), sent)
