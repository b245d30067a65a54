"""A whole-mailbox ``list_messages`` always shows the latest committed state.

The SQLite store keeps such lists in memory and catches them up by mod-sequence
(``store/sql/message_lists.py``); these tests change the mailbox in every way a message row
can change between two listings, through this store and through a second store on the same
storage (another process: the admin command, another node), and compare with a fresh read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailstead.core.types import UID, FlagMode
from mailstead.store.interfaces import Store
from mailstead.store.models import MessageMeta
from tests.store_contract.conftest import StoreOpener, message


def _view(messages: list[MessageMeta]) -> list[tuple[int, int, frozenset[str]]]:
    return [(int(m.uid), int(m.modseq), m.flags) for m in messages]


@pytest.fixture
async def other(store: Store, open_store: StoreOpener) -> AsyncIterator[Store]:
    """A second store on the same storage, as another process would open it."""
    async with open_store() as second:
        yield second


async def _uncached(store: Store, mailbox_id: int) -> list[MessageMeta]:
    """The rows as a plain query reads them (a UID range over everything)."""
    return await store.list_messages(mailbox_id, [(1, None)])


@pytest.mark.parametrize("writer", ["same", "other"])
async def test_listing_follows_every_change(
    store: Store, other: Store, user_id: int, writer: str
) -> None:
    changer = store if writer == "same" else other
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    archive = (await store.get_mailbox(user_id, "Archive")).id
    for n in range(6):
        await store.append(inbox, message(n), [])
    assert [int(m.uid) for m in await store.list_messages(inbox)] == [1, 2, 3, 4, 5, 6]

    async def check() -> None:
        listed = await store.list_messages(inbox)
        assert _view(listed) == _view(await _uncached(store, inbox))
        assert listed == await _uncached(store, inbox)

    await changer.store_flags(inbox, [UID(2), UID(5)], FlagMode.ADD, ["\\Seen", "$Work"])
    await check()
    await changer.append(inbox, message(7), ["\\Flagged"])
    await check()
    await changer.store_flags(inbox, [UID(3)], FlagMode.ADD, ["\\Deleted"])
    await changer.expunge(inbox)
    await check()
    await changer.move(inbox, [UID(1)], archive)
    await check()
    await changer.copy(archive, [UID(1)], inbox)  # comes back under a new UID
    await check()
    await changer.delete_messages(inbox, [UID(4), UID(6)])
    await check()
    await changer.store_flags(inbox, [UID(2)], FlagMode.SET, [])
    await check()
    assert [int(m.uid) for m in await store.list_messages(inbox)] == [2, 5, 7, 8]
    assert [int(m.uid) for m in await store.list_messages(archive)] == [1]


async def test_listing_of_a_deleted_and_recreated_mailbox(store: Store, user_id: int) -> None:
    """A new mailbox may reuse the id of a deleted one (SQLite does, see
    sqlite/test_sqlite_store.py); it has a new UIDVALIDITY, so the old mailbox's list is
    never shown for it. (Mod-sequences are the account's since decision 0033, so it no
    longer reaches the same HIGHESTMODSEQ: the list cache must not rely on either.)"""
    box = await store.create_mailbox(user_id, "Projects")
    for n in range(3):
        await store.append(box.id, message(n), [])
    old = await store.list_messages(box.id)
    await store.delete_mailbox(user_id, "Projects")
    again = await store.create_mailbox(user_id, "Projects")
    for n in range(10, 13):
        await store.append(again.id, message(n), [])
    listed = await store.list_messages(again.id)
    assert [int(m.uid) for m in listed] == [int(m.uid) for m in old]
    assert listed == await _uncached(store, again.id)
    assert {m.blob_id for m in listed}.isdisjoint(m.blob_id for m in old)
    await store.delete_mailbox(user_id, "Projects")
    assert await store.list_messages(again.id) == []


async def test_listings_are_independent_copies(store: Store, user_id: int) -> None:
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    await store.append(inbox, message(1), [])
    first = await store.list_messages(inbox)
    first.clear()
    assert len(await store.list_messages(inbox)) == 1
