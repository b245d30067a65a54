"""Append, read, flags with mod-sequences, expunge, copy/move, quota, events, GC."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailstead.core.errors import NotFound, QuotaExceeded
from mailstead.core.message_data import MessageData
from mailstead.core.types import UID, FlagMode
from mailstead.store.interfaces import Store
from mailstead.store.models import ChangeKind, MessageMeta, Recipient

from .conftest import message


async def inbox_id(store: Store, user_id: int) -> int:
    return (await store.get_mailbox(user_id, "INBOX")).id


async def test_append_assigns_increasing_uids_and_modseqs(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    before = await store.get_mailbox_by_id(box)
    results = [await store.append(box, message(n)) for n in range(3)]
    assert [r.uid for r in results] == [1, 2, 3]
    assert all(r.uidvalidity == before.uidvalidity for r in results)
    assert results[0].modseq < results[1].modseq < results[2].modseq
    after = await store.get_mailbox_by_id(box)
    assert (after.uidnext, after.highestmodseq, after.message_count) == (4, results[2].modseq, 3)


async def test_append_metadata_and_body(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    when = datetime(2024, 2, 29, 12, 30, tzinfo=timezone(timedelta(hours=-5)))
    raw = message(7)
    result = await store.append(box, raw, flags=["\\seen", "$Important"], internaldate=when)
    [meta] = await store.list_messages(box)
    assert meta.uid == result.uid and meta.size == len(raw)
    assert meta.flags == {"\\Seen", "$Important"}
    assert meta.internaldate == when
    assert await store.read_blob(meta.blob_id) == raw
    assert await store.read_blob(meta.blob_id, 0, 9) == raw[:9]
    assert await store.read_blob(meta.blob_id, 9) == raw[9:]
    assert json.loads(await store.get_structure(meta.blob_id)) == {"size": len(raw)}


@pytest.mark.parametrize("size", [1000, 300 * 1024])
async def test_a_spooled_message_is_stored_as_its_bytes(
        store: Store, user_id: int, tmp_path: Path, size: int) -> None:
    """Message data a front end spooled to a file (with header lines in front) is the same
    body as those octets appended whole: same blob, structure, and one copy for both."""
    box = await inbox_id(store, user_id)
    raw = message(3, size=size)
    head, rest = raw[:20], raw[20:]
    spooled = tmp_path / "spooled.msg"
    spooled.write_bytes(rest)
    first = await store.append(box, MessageData(head, None, spooled, len(rest)))
    await store.deliver(MessageData(b"", raw, None, len(raw)), [Recipient(user_id)])
    await store.append(box, raw)
    metas = await store.list_messages(box)
    assert metas[0].uid == first.uid and len(metas) == 3
    assert len({m.blob_id for m in metas}) == 1 and {m.size for m in metas} == {len(raw)}
    assert await store.read_blob(metas[0].blob_id) == raw
    assert json.loads(await store.get_structure(metas[0].blob_id)) == {"size": len(raw)}


async def test_read_blobs_in_one_round_trip(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    small = message(1)
    large = message(2, size=300 * 1024)  # SQLite keeps this one in a file, not in a row
    await store.append(box, small)
    await store.append(box, large)
    small_id, large_id = [m.blob_id for m in await store.list_messages(box)]
    got = await store.read_blobs([
        (small_id, 0, 9), (large_id, 0, None), ("0" * 64, 0, None), (small_id, 9, None),
        (large_id, 100, 200),
    ])
    assert got == [small[:9], large, None, small[9:], large[100:200]]
    assert await store.read_blobs([]) == []


async def test_uid_ranges(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    for n in range(10):
        await store.append(box, message(n))
    def uids(metas: list[MessageMeta]) -> list[int]:
        return [m.uid for m in metas]
    assert uids(await store.list_messages(box, [(2, 4), (9, None)])) == [2, 3, 4, 9, 10]
    assert uids(await store.list_messages(box, [(11, None)])) == []
    many = [(n, n) for n in range(1, 11, 2)] * 20  # more ranges than one SQL clause takes
    assert uids(await store.list_messages(box, many)) == [1, 3, 5, 7, 9]
    assert await store.list_messages(box, []) == []


async def test_uids_never_reused_after_expunge(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    first = await store.append(box, message(1), flags=["\\Deleted"])
    assert await store.expunge(box) == [first.uid]
    second = await store.append(box, message(1))
    assert second.uid == first.uid + 1


async def test_flags_modes_and_modseq(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    a = await store.append(box, message(1))
    b = await store.append(box, message(2), flags=["\\Seen"])
    result = await store.store_flags(box, [a.uid, b.uid], FlagMode.ADD, ["\\Seen", "work"])
    assert {u.uid: u.flags for u in result.updated} == {
        a.uid: {"\\Seen", "work"}, b.uid: {"\\Seen", "work"}}
    assert len({u.modseq for u in result.updated}) == 1
    assert result.updated[0].modseq > b.modseq
    # A no-op change gets no new modseq and is not reported.
    again = await store.store_flags(box, [a.uid], FlagMode.ADD, ["work"])
    assert again.updated == ()
    removed = await store.store_flags(box, [a.uid], FlagMode.REMOVE, ["work"])
    assert removed.updated[0].flags == {"\\Seen"}
    replaced = await store.store_flags(box, [b.uid], FlagMode.SET, ["\\Flagged"])
    assert replaced.updated[0].flags == {"\\Flagged"}
    status = await store.get_mailbox_by_id(box)
    assert status.highestmodseq == replaced.updated[0].modseq
    assert status.unseen_count == 1


async def test_mailbox_counts_sizes_and_deleted_bytes(store: Store, user_id: int) -> None:
    """What STATUS reports: SIZE (RFC 8438), DELETED and DELETED-STORAGE (RFC 9208 §4.1.4),
    the latter what EXPUNGE would free, in octets."""
    box = await inbox_id(store, user_id)
    a = await store.append(box, message(1, size=300))
    b = await store.append(box, message(2, size=500), flags=["\\Deleted"])
    await store.append(box, message(3, size=700), flags=["\\Seen"])
    status = await store.get_mailbox_by_id(box)
    assert (status.message_count, status.unseen_count, status.size_bytes) == (3, 2, 1500)
    assert (status.deleted_count, status.deleted_bytes) == (1, 500)
    await store.store_flags(box, [a.uid], FlagMode.ADD, ["\\Deleted"])
    [listed] = [m for m in await store.list_mailboxes(user_id) if m.id == box]
    assert (listed.deleted_count, listed.deleted_bytes) == (2, 800)
    await store.expunge(box, [b.uid])
    status = await store.get_mailbox(user_id, "INBOX")
    assert (status.size_bytes, status.deleted_count, status.deleted_bytes) == (1000, 1, 300)
    assert (await store.get_user(user_id)).used_bytes == 1000


async def test_unchanged_since(store: Store, user_id: int) -> None:
    """RFC 7162 §3.1.3: messages changed after UNCHANGEDSINCE are MODIFIED, not touched."""
    box = await inbox_id(store, user_id)
    a = await store.append(box, message(1))
    b = await store.append(box, message(2))
    bumped = await store.store_flags(box, [b.uid], FlagMode.ADD, ["\\Flagged"])
    result = await store.store_flags(
        box, [a.uid, b.uid], FlagMode.ADD, ["\\Seen"], unchanged_since=b.modseq
    )
    assert [u.uid for u in result.updated] == [a.uid]
    assert result.modified == (b.uid,)
    [meta_b] = await store.list_messages(box, [(b.uid, b.uid)])
    assert meta_b.flags == {"\\Flagged"} and meta_b.modseq == bumped.updated[0].modseq


async def test_changed_since_and_vanished(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    a = await store.append(box, message(1))
    b = await store.append(box, message(2), flags=["\\Deleted"])
    mark = (await store.get_mailbox_by_id(box)).highestmodseq
    await store.store_flags(box, [a.uid], FlagMode.ADD, ["\\Answered"])
    assert await store.expunge(box) == [b.uid]
    assert [m.uid for m in await store.list_messages(box, changed_since=mark)] == [a.uid]
    assert await store.vanished_since(box, mark) == [b.uid]
    assert await store.vanished_since(box, (await store.get_mailbox_by_id(box)).highestmodseq) == []


async def test_uid_expunge_only_touches_given(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    a = await store.append(box, message(1), flags=["\\Deleted"])
    b = await store.append(box, message(2), flags=["\\Deleted"])
    c = await store.append(box, message(3))
    assert await store.expunge(box, [b.uid, c.uid]) == [b.uid]
    assert [m.uid for m in await store.list_messages(box)] == [a.uid, c.uid]
    assert await store.delete_messages(box, [c.uid, UID(999)]) == [c.uid]


async def test_copy_and_move_share_the_body(store: Store, user_id: int) -> None:
    inbox = await inbox_id(store, user_id)
    archive = (await store.get_mailbox(user_id, "Archive")).id
    raw = message(1, size=500)
    a = await store.append(inbox, raw, flags=["\\Seen", "tag"])
    b = await store.append(inbox, message(2, size=300))
    copied = await store.copy(inbox, [a.uid, UID(77)], archive)
    assert copied.mapping == ((a.uid, UID(1)),)
    assert copied.uidvalidity == (await store.get_mailbox_by_id(archive)).uidvalidity
    [src_meta, _] = await store.list_messages(inbox)
    [dst_meta] = await store.list_messages(archive)
    assert dst_meta.blob_id == src_meta.blob_id and dst_meta.flags == {"\\Seen", "tag"}
    assert (await store.get_user(user_id)).used_bytes == 500 + 300 + 500
    moved = await store.move(inbox, [b.uid], archive)
    assert moved.mapping == ((b.uid, UID(2)),)
    assert [m.uid for m in await store.list_messages(inbox)] == [a.uid]
    assert (await store.get_user(user_id)).used_bytes == 500 + 300 + 500
    assert b.uid in await store.vanished_since(inbox, 0)
    assert await store.integrity_check() == []


async def test_move_and_copy_within_one_mailbox_renumber(store: Store, user_id: int) -> None:
    """MOVE into its own mailbox (decision 0018): new UIDs, the old ones vanished, the
    flags and body kept, the quota unchanged; COPY there doubles the message."""
    box = await inbox_id(store, user_id)
    a = await store.append(box, message(1, size=400), flags=["\\Flagged", "tag"])
    b = await store.append(box, message(2, size=200))
    moved = await store.move(box, [a.uid], box)
    assert moved.mapping == ((a.uid, UID(3)),)
    metas = await store.list_messages(box)
    assert [m.uid for m in metas] == [b.uid, UID(3)]
    assert metas[1].flags == {"\\Flagged", "tag"} and metas[1].size == 400
    assert a.uid in await store.vanished_since(box, 0)
    assert (await store.get_user(user_id)).used_bytes == 600
    copied = await store.copy(box, [b.uid], box)
    assert copied.mapping == ((b.uid, UID(4)),)
    assert [m.uid for m in await store.list_messages(box)] == [b.uid, UID(3), UID(4)]
    assert (await store.get_user(user_id)).used_bytes == 800
    assert await store.integrity_check() == []


async def test_quota_is_exact_and_enforced(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    await store.set_quota("alice@example.org", 1000)
    a = await store.append(box, message(1, size=600))
    with pytest.raises(QuotaExceeded) as info:
        await store.append(box, message(2, size=600))
    assert info.value.temporary
    assert (await store.get_mailbox_by_id(box)).message_count == 1
    with pytest.raises(QuotaExceeded):
        await store.copy(box, [a.uid], (await store.get_mailbox(user_id, "Archive")).id)
    await store.store_flags(box, [a.uid], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(box)
    assert (await store.get_user(user_id)).used_bytes == 0
    await store.append(box, message(3, size=900))
    assert (await store.get_user(user_id)).used_bytes == 900


async def test_deliver_one_body_many_recipients(store: Store, user_id: int) -> None:
    bob = await store.add_user("bob@example.org", "hash")
    await store.create_mailbox(bob.id, "lists")
    raw = message(42)
    result = await store.deliver(raw, [
        Recipient(user_id), Recipient(bob.id, "lists"), Recipient(bob.id, "gone-folder"),
    ])
    assert len(result.results) == 3
    blobs = set()
    for uid_owner, name in ((user_id, "INBOX"), (bob.id, "lists"), (bob.id, "INBOX")):
        [meta] = await store.list_messages(await inbox_id(store, uid_owner)
                                           if name == "INBOX"
                                           else (await store.get_mailbox(uid_owner, name)).id)
        blobs.add(meta.blob_id)
    assert blobs == {result.blob_id}  # one stored body, whatever the recipient count


async def test_deliver_is_all_or_nothing(store: Store, user_id: int) -> None:
    bob = await store.add_user("bob@example.org", "hash", quota_bytes=10)
    with pytest.raises(QuotaExceeded):
        await store.deliver(message(1), [Recipient(user_id), Recipient(bob.id)])
    assert (await store.get_mailbox(user_id, "INBOX")).message_count == 0
    assert (await store.get_user(user_id)).used_bytes == 0


async def test_change_events_after_commit(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    with store.changes.subscribe(user_id) as sub:
        a = await store.append(box, message(1))
        await store.store_flags(box, [a.uid], FlagMode.ADD, ["\\Deleted"])
        await store.expunge(box)
        events = sub.drain()
    assert [e.kind for e in events] == [ChangeKind.EXISTS, ChangeKind.FLAGS, ChangeKind.EXPUNGE]
    assert all(e.mailbox_id == box and e.uids == (a.uid,) for e in events)
    assert events[1].flags == (frozenset({"\\Deleted"}),)
    assert events[0].modseq < events[1].modseq < events[2].modseq


async def test_events_only_reach_the_owner(store: Store, user_id: int) -> None:
    bob = await store.add_user("bob@example.org", "hash")
    with store.changes.subscribe(bob.id) as sub:
        await store.append(await inbox_id(store, user_id), message(1))
        assert sub.drain() == []


async def test_concurrent_appends_each_get_their_own_uid(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    results = await asyncio.gather(*(store.append(box, message(n)) for n in range(200)))
    assert sorted(r.uid for r in results) == list(range(1, 201))
    assert (await store.get_mailbox_by_id(box)).message_count == 200


async def test_failed_write_does_not_spoil_its_batch(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    results = await asyncio.gather(
        store.append(box, message(1)), store.append(999_999, message(2)),
        store.append(box, message(3)), return_exceptions=True,
    )
    assert isinstance(results[1], NotFound)
    assert (await store.get_mailbox_by_id(box)).message_count == 2


async def test_garbage_collection(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    kept = await store.append(box, message(1))
    small = await store.append(box, message(2), flags=["\\Deleted"])
    large_raw = message(3, size=300 * 1024)  # above the size kept in the database
    large = await store.append(box, large_raw, flags=["\\Deleted"])
    metas = {m.uid: m for m in await store.list_messages(box)}
    await store.expunge(box, [small.uid, large.uid])
    assert await store.collect_garbage(grace_seconds=0) == 2
    for gone in (small, large):
        with pytest.raises(NotFound):
            await store.read_blob(metas[gone.uid].blob_id)
    assert await store.read_blob(metas[kept.uid].blob_id) == message(1)
    assert await store.collect_garbage(grace_seconds=0) == 0
    # The same content appended again after collection is stored anew.
    for raw in (message(2), large_raw):
        result = await store.append(box, raw)
        [again] = await store.list_messages(box, [(result.uid, result.uid)])
        assert await store.read_blob(again.blob_id) == raw
        assert await store.read_blob(again.blob_id, 5, 9) == raw[5:9]
    assert await store.integrity_check() == []


async def test_internaldate_defaults_to_now(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    await store.append(box, message(1))
    [meta] = await store.list_messages(box)
    assert abs((datetime.now(UTC) - meta.internaldate).total_seconds()) < 60


async def test_internaldate_is_kept_as_an_instant_in_utc(store: Store, user_id: int) -> None:
    """Only the instant is kept (as Dovecot keeps a timestamp): APPEND's zone is dropped, so
    FETCH shows +0000 and SEARCH compares UTC dates."""
    box = await inbox_id(store, user_id)
    when = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    await store.append(box, message(1), internaldate=when)
    await store.deliver(message(2), [Recipient(user_id)], internaldate=when)
    await store.append(box, message(3), internaldate=datetime(1996, 7, 17, 9, 44, 25))
    metas = await store.list_messages(box)
    assert [m.internaldate for m in metas] == [when] * 3
    assert all(m.internaldate.tzinfo is UTC for m in metas)
    assert metas[0].internaldate.isoformat() == "1996-07-17T09:44:25+00:00"


async def test_exists_events_carry_flags(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    archive = (await store.get_mailbox(user_id, "Archive")).id
    with store.changes.subscribe(user_id) as sub:
        a = await store.append(box, message(1), flags=["$Label1", "\\Seen"])
        await store.deliver(message(2), [Recipient(user_id, flags=frozenset({"$Junk"}))])
        await store.copy(box, [a.uid], archive)
        events = [e for e in sub.drain() if e.kind is ChangeKind.EXISTS]
    assert [e.flags for e in events] == [
        (frozenset({"$Label1", "\\Seen"}),), (frozenset({"$Junk"}),),
        (frozenset({"$Label1", "\\Seen"}),),
    ]


async def test_get_structures_in_one_call(store: Store, user_id: int) -> None:
    box = await inbox_id(store, user_id)
    for n in range(3):
        await store.append(box, message(n))
    metas = await store.list_messages(box)
    ids = [m.blob_id for m in metas]
    found = await store.get_structures([*ids, ids[0], "0" * 64])
    assert set(found) == set(ids)
    for meta in metas:
        assert found[meta.blob_id] == await store.get_structure(meta.blob_id)


async def test_save_dates_record_append_copy_and_move(store: Store, user_id: int) -> None:
    """RFC 8514: the save date is when a message entered this mailbox, whatever its
    internal date; a copy or a move is saved anew."""
    box = await inbox_id(store, user_id)
    old = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    before = datetime.now(UTC)
    first = await store.append(box, message(1), internaldate=old)
    await store.append(box, message(2))
    dates = await store.save_dates(box)
    assert sorted(dates) == [1, 2]
    assert all(before - timedelta(seconds=1) <= d <= datetime.now(UTC) for d in dates.values())
    assert (await store.save_dates(box, [(2, None)])).keys() == {2}
    assert await store.save_dates(box, []) == {}
    other = await store.create_mailbox(user_id, "Kept")
    await asyncio.sleep(0.01)
    copied = await store.copy(box, [first.uid], other.id)
    target = copied.mapping[0][1]
    saved = (await store.save_dates(other.id))[target]
    assert saved > dates[first.uid]
    meta = (await store.list_messages(other.id))[0]
    assert meta.internaldate == old  # the internal date travels with the message
