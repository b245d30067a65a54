"""Several messages in one write (MULTIAPPEND, RFC 3502) and a message replaced by another
(REPLACE, RFC 8508): all or nothing, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailstead.core.errors import NotFound, QuotaExceeded
from mailstead.core.message_data import MessageData
from mailstead.core.types import UID
from mailstead.store.interfaces import Store
from mailstead.store.models import ChangeKind, NewMessage

from .conftest import message


async def _box(store: Store, user_id: int, name: str = "INBOX") -> int:
    return (await store.get_mailbox(user_id, name)).id


async def test_append_many_stores_all_with_consecutive_uids(
        store: Store, user_id: int, tmp_path: Path) -> None:
    box = await _box(store, user_id)
    await store.append(box, message(0))
    when = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    spooled = tmp_path / "big.msg"
    big = message(2, size=200 * 1024)
    spooled.write_bytes(big)
    batch = [
        NewMessage(message(1), frozenset({"\\Seen"}), when),
        NewMessage(MessageData(b"", None, spooled, len(big)), frozenset({"$Work"})),
        NewMessage(message(3)),
    ]
    with store.changes.subscribe(user_id) as sub:
        results = await store.append_many(box, batch)
        events = sub.drain()
    assert [r.uid for r in results] == [2, 3, 4]
    metas = await store.list_messages(box)
    assert [m.uid for m in metas] == [1, 2, 3, 4]
    assert metas[1].flags == {"\\Seen"} and metas[1].internaldate == when
    assert metas[2].flags == {"$Work"} and metas[2].size == 200 * 1024
    assert await store.read_blob(metas[3].blob_id) == message(3)
    assert [e.kind for e in events] == [ChangeKind.EXISTS]
    assert events[0].uids == (2, 3, 4)
    assert events[0].flags == (frozenset({"\\Seen"}), frozenset({"$Work"}), frozenset())
    after = await store.get_mailbox_by_id(box)
    assert (after.uidnext, after.message_count) == (5, 4)
    assert (await store.get_user(user_id)).used_bytes == sum(m.size for m in metas)


async def test_append_many_over_quota_stores_nothing(store: Store, user_id: int) -> None:
    """The first message alone would fit; together they do not, so neither is stored."""
    box = await _box(store, user_id)
    await store.set_quota("alice@example.org", 1000)
    before = await store.get_mailbox_by_id(box)
    with store.changes.subscribe(user_id) as sub:
        with pytest.raises(QuotaExceeded):
            await store.append_many(box, [NewMessage(message(1, size=600)),
                                          NewMessage(message(2, size=600))])
        assert sub.drain() == []
    after = await store.get_mailbox_by_id(box)
    assert (after.message_count, after.uidnext, after.highestmodseq) == (
        0, before.uidnext, before.highestmodseq)
    assert (await store.get_user(user_id)).used_bytes == 0


async def test_append_many_into_a_missing_mailbox_stores_nothing(
        store: Store, user_id: int) -> None:
    with pytest.raises(NotFound):
        await store.append_many(987654, [NewMessage(message(1))])
    assert (await store.get_user(user_id)).used_bytes == 0


async def test_replace_appends_then_expunges(store: Store, user_id: int) -> None:
    box = await _box(store, user_id)
    old = await store.append(box, message(1))
    with store.changes.subscribe(user_id) as sub:
        new = await store.replace(box, NewMessage(message(2), frozenset({"\\Draft"})),
                                  box, old.uid)
        events = sub.drain()
    assert new.uid == old.uid + 1
    [meta] = await store.list_messages(box)
    assert meta.uid == new.uid and meta.flags == {"\\Draft"}
    assert [(e.kind, e.uids) for e in events] == [
        (ChangeKind.EXISTS, (new.uid,)), (ChangeKind.EXPUNGE, (old.uid,))]
    assert events[0].modseq < events[1].modseq
    assert await store.vanished_since(box, old.modseq) == [old.uid]
    assert (await store.get_user(user_id)).used_bytes == len(message(2))


async def test_replace_across_mailboxes(store: Store, user_id: int) -> None:
    inbox, archive = await _box(store, user_id), await _box(store, user_id, "Archive")
    old = await store.append(inbox, message(1))
    new = await store.replace(archive, NewMessage(message(2)), inbox, old.uid)
    assert await store.list_messages(inbox) == []
    [meta] = await store.list_messages(archive)
    assert meta.uid == new.uid


async def test_replace_of_a_gone_message_stores_nothing(store: Store, user_id: int) -> None:
    box = await _box(store, user_id)
    old = await store.append(box, message(1))
    await store.delete_messages(box, [old.uid])
    with pytest.raises(NotFound):
        await store.replace(box, NewMessage(message(2)), box, old.uid)
    assert await store.list_messages(box) == []
    assert (await store.get_user(user_id)).used_bytes == 0


async def test_replace_counts_the_freed_bytes_against_the_quota(
        store: Store, user_id: int) -> None:
    """At the quota, a replacement no bigger than the original fits; a bigger one does not
    and leaves the original in place."""
    box = await _box(store, user_id)
    await store.set_quota("alice@example.org", 1000)
    old = await store.append(box, message(1, size=900))
    with pytest.raises(QuotaExceeded):
        await store.replace(box, NewMessage(message(2, size=1001)), box, old.uid)
    assert [m.uid for m in await store.list_messages(box)] == [old.uid]
    new = await store.replace(box, NewMessage(message(3, size=950)), box, old.uid)
    assert [m.uid for m in await store.list_messages(box)] == [new.uid]
    assert (await store.get_user(user_id)).used_bytes == 950


async def test_replace_across_accounts_refused(store: Store, user_id: int) -> None:
    bob = await store.add_user("bob@example.org", "hash")
    old = await store.append(await _box(store, user_id), message(1))
    with pytest.raises(Exception):  # noqa: B017 - any refusal; never across accounts
        await store.replace(await _box(store, bob.id), NewMessage(message(2)),
                            await _box(store, user_id), UID(old.uid))
    assert await store.list_messages(await _box(store, bob.id)) == []
