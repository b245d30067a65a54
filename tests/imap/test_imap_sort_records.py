"""The records SORT and THREAD keep per mailbox (imap/sort_keys.py, KeptRecords): built
from the store once, then only new messages' keys are read; bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from mailstead.core.types import UID, ModSeq
from mailstead.imap.search import Candidate
from mailstead.imap.sort import KEYS_VERSION, Sortable, record
from mailstead.imap.sort_keys import KeptRecords, sortables
from mailstead.store.models import MessageMeta, SortKeyField, SortKeys

ARRIVAL = datetime(2024, 1, 1, tzinfo=UTC)


def _keys(uid: int) -> SortKeys:
    return SortKeys(KEYS_VERSION, float(uid), f"f{uid}", "", "", f"s{uid}", False, None, ())


class _Store:
    """The two reads sortables makes, answered from keys per UID, and counted."""

    def __init__(self) -> None:
        self.reads: list[Sequence[UID] | None] = []

    async def sort_keys(
        self,
        mailbox_id: int,
        fields: frozenset[SortKeyField],
        version: int,
        uids: Sequence[UID] | None = None,
    ) -> dict[UID, SortKeys]:
        self.reads.append(uids)
        return {UID(u): _keys(u) for u in (uids if uids is not None else range(1, 1000))}

    async def get_structures(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        raise AssertionError("every message has keys")

    async def put_sort_keys(self, keys: Mapping[str, SortKeys]) -> None:
        raise AssertionError("nothing is derived")


def _found(uids: Sequence[int], first_seq: int = 1) -> list[Candidate]:
    return [
        Candidate(MessageMeta(1, UID(u), ModSeq(1), frozenset(), ARRIVAL, 5, f"b{u}"), seq, False)
        for seq, u in enumerate(uids, first_seq)
    ]


def _expected(found: list[Candidate]) -> list[Sortable]:
    return sorted(
        (record(c.meta, c.seq, _keys(int(c.meta.uid))) for c in found), key=lambda r: r.uid
    )


def test_records_are_read_once_then_only_for_new_messages() -> None:
    store, kept = _Store(), KeptRecords()

    def run(found: list[Candidate]) -> list[Sortable]:
        out, vanished = asyncio.run(sortables(store, kept, (1, 7), found))  # type: ignore[arg-type]
        assert not vanished
        return sorted(out, key=lambda r: r.uid)

    found = _found(range(1, 601))
    assert run(found) == _expected(found)
    assert store.reads == [None]  # many: the whole mailbox at once
    assert run(found) == _expected(found)
    assert store.reads == [None]  # all kept
    found = _found([*range(1, 601), 601, 602])
    assert run(found) == _expected(found)
    assert store.reads == [None, [601, 602]]  # a delivery: the new ones only, by UID
    found = _found(range(2, 603))  # 1 expunged: every other message moves up one
    assert run(found) == _expected(found)
    assert store.reads == [None, [601, 602]]


def test_kept_records_are_bounded_least_recently_used_first() -> None:
    kept = KeptRecords(max_records=5)
    rec = {u: record(_found([u])[0].meta, 1, _keys(u)) for u in range(1, 7)}
    kept.put((1, 1), {1: rec[1], 2: rec[2]})
    kept.put((2, 1), {3: rec[3], 4: rec[4]})
    assert kept.get((1, 1))  # (1, 1) is now the most recent
    kept.put((3, 1), {5: rec[5], 6: rec[6]})  # 6 records: (2, 1) goes
    assert kept.get((2, 1)) == {}
    assert set(kept.get((1, 1))) == {1, 2}
    kept.put((4, 1), {u: rec[u] for u in range(1, 7)})  # more than all may hold: not kept
    assert kept.get((4, 1)) == {}
