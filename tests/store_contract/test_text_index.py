"""The full-text index part of the contract (decision 0027), for a store whose composition
gave it no indexer (the suite's stores): nothing is indexed, so every message is reported
as one a miss proves nothing for, and SEARCH scans it; queries are still checked."""

from __future__ import annotations

import pytest

from mailstead.core.errors import InvalidName
from mailstead.store.interfaces import Store
from mailstead.store.models import IndexReport, TextQuery

from .conftest import message


async def test_without_an_indexer_every_message_is_unindexed(store: Store, user_id: int) -> None:
    box = (await store.get_mailbox(user_id, "INBOX")).id
    uids = {int((await store.append(box, message(n))).uid) for n in range(3)}
    found = await store.search_text(box, [TextQuery(("body",), "hello")])
    assert found.hits == (frozenset(),)
    assert found.unindexed == uids and found.incomplete == frozenset()
    assert await store.index_missing(user_id) == IndexReport(0, 0)
    assert await store.rebuild_index() == IndexReport(0, 0)


@pytest.mark.parametrize(
    "query",
    [
        TextQuery(("nowhere",), "hello"),  # no such column
        TextQuery(("body",), "he"),  # below the trigrams
    ],
)
async def test_bad_queries_are_refused(store: Store, user_id: int, query: TextQuery) -> None:
    box = (await store.get_mailbox(user_id, "INBOX")).id
    with pytest.raises(InvalidName):
        await store.search_text(box, [query])
