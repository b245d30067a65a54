"""The ESEARCH response (RFC 4731 §3.1, RFC 4466 §2.6.2) for SEARCH and, with ESORT, SORT
(RFC 5267 §3), and the ADDTO/REMOVEFROM updates of live results (RFC 5267 §4.3): pure text
from numbers, so SEARCH, SORT and the live results write it one way.

A result is a list of numbers in *result order*: mailbox order for SEARCH, the requested
order for SORT. MIN and MAX are its first and last (for SORT "the lowest/highest sorted
message", RFC 5267 §3.1), PARTIAL pages it by position (RFC 9394 §3.1, RFC 5267 §4.4).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailstead.imap import response
from mailstead.imap.parse.primitives import PartialRange
from mailstead.imap.parse.search import ReturnOption


def ordered_set(numbers: Sequence[int]) -> str:
    """``numbers`` as sequence-set text that keeps their order: a run of consecutive
    ascending numbers becomes ``a:b``, anything else is listed one by one. RFC 5267 §3.2:
    ranges in a sorted result expand in increasing order ("10:12 is equivalent to 12:10"),
    so a descending run must be written out (``12,11,10``). For ascending input this is the
    shortest form, as :func:`mailstead.imap.response.uid_set` gives it."""
    out: list[str] = []
    i = 0
    n = len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)


def correlator(tag: str, by_uid: bool) -> str:
    """``ESEARCH (TAG "x")`` and ``UID`` for a UID command (RFC 4466 §2.6.2)."""
    text = "ESEARCH (TAG " + response.string(tag).decode("utf-8", "replace") + ")"
    return text + " UID" if by_uid else text


def esearch(
    tag: str,
    *,
    by_uid: bool,
    numbers: Sequence[int],
    opts: Sequence[ReturnOption],
    partial: PartialRange | None,
    modseq: int | None = None,
) -> str:
    """The untagged ESEARCH text for a result in result order. ``opts`` already has ALL
    for an empty ``RETURN ()`` (RFC 4731 §3.1); CONTEXT, UPDATE and SAVE return nothing
    here (RFC 5267 §4.1: no interaction with the others)."""
    parts = [correlator(tag, by_uid)]
    if numbers and ReturnOption.MIN in opts:
        parts.append(f"MIN {numbers[0]}")
    if numbers and ReturnOption.MAX in opts:
        parts.append(f"MAX {numbers[-1]}")
    if numbers and ReturnOption.ALL in opts:
        parts.append(f"ALL {ordered_set(numbers)}")
    if partial is not None:
        # RFC 9394 §3.1, §4: ret-data-partial = "PARTIAL" SP "(" partial-range SP
        # partial-results ")", the range as requested and NIL when no result falls in it.
        shown = partial.page(numbers)
        parts.append(f"PARTIAL ({partial} {ordered_set(shown) if shown else 'NIL'})")
    if ReturnOption.COUNT in opts:
        parts.append(f"COUNT {len(numbers)}")
    if modseq is not None:
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts)


def update(tag: str, by_uid: bool, kind: str, pairs: Sequence[tuple[int, Sequence[int]]]) -> str:
    """``ESEARCH (TAG "x") [UID] ADDTO|REMOVEFROM (pos set ...)`` (RFC 5267 §5:
    ret-data-addto / ret-data-removefrom, context-position SP sequence-set pairs)."""
    body = " ".join(f"{position} {ordered_set(numbers)}" for position, numbers in pairs)
    return f"{correlator(tag, by_uid)} {kind} ({body})"
