"""The sort keys kept per body (SORT and THREAD, decision 0031): written with the body,
read per mailbox with only the columns asked for, shared by copies, replaced by newer
ones, and gone with the body."""

from __future__ import annotations

from mailstead.core.types import UID
from mailstead.store.interfaces import Store
from mailstead.store.models import Recipient, SortKeyField, SortKeys

from .conftest import fake_sort_keys, message

EVERY = frozenset(SortKeyField)


async def _box(store: Store, user_id: int, name: str = "INBOX") -> int:
    return (await store.get_mailbox(user_id, name)).id


async def _expected(store: Store, box: int) -> dict[UID, SortKeys]:
    """What the injected maker made of each message's structure."""
    return {
        m.uid: fake_sort_keys(await store.get_structure(m.blob_id))
        for m in await store.list_messages(box)
    }


async def test_keys_are_written_with_the_body_and_read_per_message(
    store: Store, user_id: int
) -> None:
    box = await _box(store, user_id)
    await store.append(box, message(1))
    await store.append(box, message(2, size=300 * 1024))  # a body kept as a file
    await store.deliver(message(3), [Recipient(user_id, "INBOX")])
    kept = await store.sort_keys(box, EVERY, 1)
    assert sorted(kept) == [1, 2, 3]
    assert kept == await _expected(store, box)


async def test_only_the_fields_asked_for_are_filled(store: Store, user_id: int) -> None:
    box = await _box(store, user_id)
    result = await store.append(box, message(4))
    full = (await store.sort_keys(box, EVERY, 1))[result.uid]
    empty = SortKeys(1, None, "", "", "", "", False, None, ())
    for field, columns in [
        (SortKeyField.SENT, {"sent"}),
        (SortKeyField.FROM, {"from_key"}),
        (SortKeyField.TO, {"to_key"}),
        (SortKeyField.CC, {"cc_key"}),
        (SortKeyField.SUBJECT, {"subject", "reply"}),
        (SortKeyField.REFERENCES, {"message_id", "references"}),
    ]:
        got = (await store.sort_keys(box, frozenset({field}), 1))[result.uid]
        assert got == empty._replace(**{c: getattr(full, c) for c in columns}), field
    both = frozenset({SortKeyField.SENT, SortKeyField.REFERENCES})
    got = (await store.sort_keys(box, both, 1))[result.uid]
    assert got == empty._replace(
        sent=full.sent, message_id=full.message_id, references=full.references
    )


async def test_keys_of_another_version_are_absent_until_put(store: Store, user_id: int) -> None:
    box = await _box(store, user_id)
    a = await store.append(box, message(5))
    b = await store.append(box, message(6))
    assert await store.sort_keys(box, EVERY, 2) == {}
    blob = {m.uid: m.blob_id for m in await store.list_messages(box)}
    newer = SortKeys(2, None, "f", "t", "c", "s", True, None, ("x@y",))
    await store.put_sort_keys({blob[a.uid]: newer})
    assert await store.sort_keys(box, EVERY, 2) == {a.uid: newer}
    assert sorted(await store.sort_keys(box, EVERY, 1)) == [b.uid]  # replaced, not added


async def test_copy_and_move_share_the_keys_and_expunge_leaves_the_rest(
    store: Store, user_id: int
) -> None:
    inbox = await _box(store, user_id)
    archive = await _box(store, user_id, "Archive")  # made with every account
    a = await store.append(inbox, message(7))
    b = await store.append(inbox, message(8))
    c = await store.append(inbox, message(9), flags=["\\Deleted"])
    before = await store.sort_keys(inbox, EVERY, 1)
    copied = dict((await store.copy(inbox, [a.uid], archive)).mapping)
    moved = dict((await store.move(inbox, [b.uid], archive)).mapping)
    assert await store.sort_keys(archive, EVERY, 1) == {
        copied[a.uid]: before[a.uid],
        moved[b.uid]: before[b.uid],
    }
    await store.expunge(inbox)
    assert await store.sort_keys(inbox, EVERY, 1) == {a.uid: before[a.uid]}
    assert c.uid not in await store.sort_keys(inbox, EVERY, 1)
    await store.delete_messages(inbox, [a.uid])  # the copy in Archive keeps the body
    assert (await store.sort_keys(archive, EVERY, 1))[copied[a.uid]] == before[a.uid]


async def test_put_skips_a_body_that_is_gone(store: Store, user_id: int) -> None:
    box = await _box(store, user_id)
    a = await store.append(box, message(10))
    gone = (await store.list_messages(box))[0].blob_id
    await store.delete_messages(box, [a.uid])
    await store.collect_garbage(grace_seconds=0)
    keys = SortKeys(1, 1.0, "a", "b", "c", "d", False, None, ())
    await store.put_sort_keys({gone: keys, "0" * 64: keys})
    again = await store.append(box, message(10))  # the same body, stored anew
    assert (await store.sort_keys(box, EVERY, 1))[again.uid] == fake_sort_keys(
        await store.get_structure(gone)
    )


async def test_keys_of_some_messages_only(store: Store, user_id: int) -> None:
    box = await _box(store, user_id)
    results = [await store.append(box, message(n)) for n in range(11, 15)]
    every = await store.sort_keys(box, EVERY, 1)
    some = [results[1].uid, results[3].uid, UID(999)]
    assert await store.sort_keys(box, EVERY, 1, some) == {u: every[u] for u in some[:2]}
    assert await store.sort_keys(box, EVERY, 1, []) == {}
