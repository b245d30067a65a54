"""FETCH and SEARCH hold one bounded batch of messages at a time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.batches import batches


@given(st.lists(st.integers(min_value=0, max_value=100)), st.integers(1, 10),
       st.one_of(st.none(), st.integers(1, 300)))
def test_batches_keep_order_and_bounds(sizes: list[int], count: int, octets: int | None
                                       ) -> None:
    out = list(batches(sizes, lambda size: size, count=count, octets=octets))
    assert [s for batch in out for s in batch] == sizes
    for batch in out:
        assert 1 <= len(batch) <= count
        if octets is not None and len(batch) > 1:
            assert sum(batch) <= octets


def test_forty_megabyte_messages_come_one_at_a_time() -> None:
    """1,024 messages of 40 MB were once read into one FETCH batch: 40 GB at once."""
    sizes = [40_000_000] * 5 + [4_000] * 3
    out = list(batches(sizes, lambda size: size, count=1024, octets=16 * 1024 * 1024))
    assert out == [[40_000_000]] * 5 + [[4_000] * 3]
