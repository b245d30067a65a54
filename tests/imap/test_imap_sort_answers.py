"""The kept SORT and THREAD answers (imap/sort_answers.py): used only for exactly the
messages they were made over, numbered the same way, and bounded."""

from __future__ import annotations

from mailstead.imap.sort_answers import Answer, Answers, numbers


def _answer(uids: list[int], seqs: list[int] | None = None) -> Answer:
    seqs = seqs if seqs is not None else list(range(1, len(uids) + 1))
    return Answer(
        numbers(uids),
        numbers(seqs),
        " ".join(map(str, reversed(uids))),
        " ".join(map(str, reversed(seqs))),
    )


def test_an_answer_is_used_for_the_same_messages_only() -> None:
    kept = Answers()
    kept.put("k", _answer([3, 5, 9]))
    same = numbers([3, 5, 9]), numbers([1, 2, 3])
    assert kept.get("k", *same, by_uid=True) == "9 5 3"
    assert kept.get("k", *same, by_uid=False) == "3 2 1"
    assert kept.get("other", *same, by_uid=True) is None
    assert kept.get("k", numbers([3, 5, 10]), numbers([1, 2, 3]), by_uid=True) is None
    assert kept.get("k", numbers([3, 5]), numbers([1, 2]), by_uid=True) is None


def test_other_sequence_numbers_need_a_new_answer_the_uids_do_not() -> None:
    """A session with an expunge not yet announced numbers the same messages otherwise."""
    kept = Answers()
    kept.put("k", _answer([3, 5, 9]))
    uids, seqs = numbers([3, 5, 9]), numbers([1, 3, 4])
    assert kept.get("k", uids, seqs, by_uid=False) is None
    assert kept.get("k", uids, seqs, by_uid=True) == "9 5 3"


def test_the_least_recently_used_goes_first_by_count_and_by_messages() -> None:
    kept = Answers(max_answers=2, max_messages=5)
    kept.put("a", _answer([1]))
    kept.put("b", _answer([2]))
    assert kept.get("a", numbers([1]), numbers([1]), by_uid=True) == "1"  # a is now newer
    kept.put("c", _answer([3]))
    assert kept.get("b", numbers([2]), numbers([1]), by_uid=True) is None
    assert kept.get("a", numbers([1]), numbers([1]), by_uid=True) == "1"
    kept.put("d", _answer([1, 2, 3, 4]))  # 1 + 4 messages fit, 1 + 1 + 4 do not
    assert kept.get("c", numbers([3]), numbers([1]), by_uid=True) is None
    assert kept.get("a", numbers([1]), numbers([1]), by_uid=True) == "1"
    kept.put("e", _answer(list(range(1, 7))))  # more than all may cover: not kept
    assert kept.get("e", numbers(range(1, 7)), numbers(range(1, 7)), by_uid=True) is None
    assert kept.get("d", numbers([1, 2, 3, 4]), numbers([1, 2, 3, 4]), by_uid=True)
    kept.put("d", _answer([4, 5]))  # replaced: counted once
    assert kept.get("d", numbers([4, 5]), numbers([1, 2]), by_uid=True) == "5 4"


def test_each_numbering_is_kept_when_first_asked_for() -> None:
    kept = Answers()
    uids, seqs = numbers([4, 5]), numbers([1, 2])
    kept.put("k", Answer(uids, seqs, "5 4", None))  # UID SORT
    assert kept.get("k", uids, seqs, by_uid=False) is None
    kept.put("k", Answer(uids, seqs, None, "2 1"))  # then SORT: both kept
    assert kept.get("k", uids, seqs, by_uid=True) == "5 4"
    assert kept.get("k", uids, seqs, by_uid=False) == "2 1"
    kept.put("k", Answer(numbers([4, 6]), seqs, None, "1 2"))  # other messages: replaced
    assert kept.get("k", numbers([4, 6]), seqs, by_uid=True) is None
