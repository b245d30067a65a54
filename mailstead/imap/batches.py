"""Messages in batches small enough to hold at once.

FETCH and SEARCH read what they need of a batch of messages in a few store round trips,
then answer for each. A batch is bounded by count and, when whole bodies are read, by
octets too: 1,024 messages of 40 MB would otherwise be 40 GB in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batches(
    items: Iterable[T], size_of: Callable[[T], int], *, count: int, octets: int | None
) -> Iterator[list[T]]:
    """``items`` in order, at most ``count`` per batch and, unless ``octets`` is None, at
    most ``octets`` by ``size_of`` (a single larger item makes a batch of its own)."""
    batch: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if batch and (len(batch) >= count or (octets is not None and total + size > octets)):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch
