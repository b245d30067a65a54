"""SORT and THREAD answers kept for the next identical command (decision 0031).

A client that shows a mailbox sorted or threaded asks again and again over the same
messages: on every open, after every flag change, from every device. The answer over a
whole mailbox is a function of its message list alone: the keys compared are fixed per
message (sent date, addresses, base subject, references of the body; INTERNALDATE and size
of the message) and ties go by mailbox order. So an answer that covered *every* message
the session sees is kept, keyed by mailbox, UIDVALIDITY and the criteria or algorithm, with
the UIDs and sequence numbers it was made over; the next command over the same messages,
numbered the same way, gets it without reading or ordering anything. Any change to the
message list (a delivery, an expunge) makes the UIDs differ, so a kept answer is never
stale: it is only never used again, and ages out.

The answers are shared by the sessions of a listener (:class:`ServerContext`), bounded by
count and by the messages they cover, least recently used first out.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

#: Answers kept at once, and the messages they may cover together (about 15 bytes each:
#: two numbers and the answer's text): a few orderings of a few 100,000-message mailboxes.
MAX_ANSWERS = 16
MAX_MESSAGES = 1_000_000


def numbers(values: Sequence[int]) -> array[int]:
    """UIDs or sequence numbers, compactly (both are 32-bit, RFC 9051 §4.1)."""
    return array("I", values)


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer's data over ``uids`` (numbered ``seqs``): by UID and by sequence number,
    each made when a command first asked for it (UID SORT, or SORT)."""

    uids: array[int]
    seqs: array[int]
    by_uid: str | None
    by_seq: str | None


class Answers:
    """The kept answers, least recently used first."""

    def __init__(self, max_answers: int = MAX_ANSWERS, max_messages: int = MAX_MESSAGES) -> None:
        self._kept: OrderedDict[Hashable, Answer] = OrderedDict()
        self._max_answers = max_answers
        self._max_messages = max_messages
        self._messages = 0

    def get(self, key: Hashable, uids: array[int], seqs: array[int], by_uid: bool) -> str | None:
        """The kept answer's data for exactly these messages, numbered this way, if any."""
        answer = self._kept.get(key)
        if answer is None or answer.uids != uids:
            return None
        if not by_uid and answer.seqs != seqs:
            return None  # the same messages, numbered otherwise (expunges not yet announced)
        self._kept.move_to_end(key)
        return answer.by_uid if by_uid else answer.by_seq

    def put(self, key: Hashable, answer: Answer) -> None:
        if len(answer.uids) > self._max_messages:
            return
        old = self._kept.pop(key, None)
        if old is not None:
            self._messages -= len(old.uids)
            if old.uids == answer.uids and old.seqs == answer.seqs:  # the other numbering
                answer = Answer(
                    answer.uids,
                    answer.seqs,
                    old.by_uid if answer.by_uid is None else answer.by_uid,
                    old.by_seq if answer.by_seq is None else answer.by_seq,
                )
        self._kept[key] = answer
        self._messages += len(answer.uids)
        while len(self._kept) > self._max_answers or self._messages > self._max_messages:
            _, gone = self._kept.popitem(last=False)
            self._messages -= len(gone.uids)
