"""Mailbox hierarchy, names, subscriptions and special-use."""

from __future__ import annotations

import pytest

from mailstead.core.errors import AlreadyExists, InvalidName, NotEmpty, NotFound
from mailstead.store.interfaces import Store
from mailstead.store.models import ChangeKind, Recipient

from .conftest import message


async def names(store: Store, user_id: int) -> list[str]:
    return [b.name for b in await store.list_mailboxes(user_id)]


async def test_create_with_parents(store: Store, user_id: int) -> None:
    await store.create_mailbox(user_id, "Projects/2026/Q4")
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= set(await names(store, user_id))
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(user_id, "Projects/2026")


async def test_unicode_names_round_trip(store: Store, user_id: int) -> None:
    box = await store.create_mailbox(user_id, "Entwürfe/日本語")
    assert box.name == "Entwürfe/日本語"
    assert (await store.get_mailbox(user_id, "Entwürfe/日本語")).id == box.id


@pytest.mark.parametrize("bad", [
    "", "/", "a//b", "a/", "/etc/passwd", "../other", "a/../b", "a/./b", "a*", "b%",
    "tab\there", "nul\x00", " lead", "trail ", "x" * 600,
])
async def test_names_that_cannot_escape_or_confuse(store: Store, user_id: int, bad: str) -> None:
    with pytest.raises(InvalidName):
        await store.create_mailbox(user_id, bad)


async def test_inbox_is_case_insensitive(store: Store, user_id: int) -> None:
    assert (await store.get_mailbox(user_id, "inbox")).name == "INBOX"
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(user_id, "InBoX")
    with pytest.raises(InvalidName):
        await store.delete_mailbox(user_id, "inbox")


async def test_rename_with_children_keeps_uidvalidity(store: Store, user_id: int) -> None:
    parent = await store.create_mailbox(user_id, "Work/Clients")
    await store.append(parent.id, message(1))
    await store.rename_mailbox(user_id, "Work", "Office/Old")
    after = set(await names(store, user_id))
    assert {"Office", "Office/Old", "Office/Old/Clients"} <= after
    assert "Work" not in after and "Work/Clients" not in after
    moved = await store.get_mailbox(user_id, "Office/Old/Clients")
    assert (moved.id, moved.uidvalidity, moved.message_count) == (
        parent.id, parent.uidvalidity, 1)


async def test_rename_refusals(store: Store, user_id: int) -> None:
    await store.create_mailbox(user_id, "A")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(user_id, "A", "Sent")
    with pytest.raises(InvalidName):
        await store.rename_mailbox(user_id, "A", "A/B")
    with pytest.raises(NotFound):
        await store.rename_mailbox(user_id, "Missing", "B")


async def test_rename_inbox_moves_messages(store: Store, user_id: int) -> None:
    """RFC 9051 §6.3.6: the messages go with the new name, INBOX stays and is empty. The
    mailbox keeps its id, UIDs, UIDVALIDITY and UIDNEXT; the fresh INBOX starts at UIDNEXT 1
    with a greater UIDVALIDITY (§2.3.1.1)."""
    await store.create_mailbox(user_id, "INBOX/Child")
    inbox = await store.get_mailbox(user_id, "INBOX")
    for n in range(3):
        await store.append(inbox.id, message(n, size=100))
    inbox = await store.get_mailbox(user_id, "INBOX")
    used = (await store.get_user(user_id)).used_bytes
    with store.changes.subscribe(user_id) as sub:
        renamed = await store.rename_mailbox(user_id, "INBOX", "Old Inbox")
        events = sub.drain()
    fresh = await store.get_mailbox(user_id, "INBOX")
    assert (renamed.name, renamed.id, renamed.uidvalidity, renamed.uidnext) == (
        "Old Inbox",
        inbox.id,
        inbox.uidvalidity,
        inbox.uidnext,
    )
    assert renamed.message_count == 3 and renamed.highestmodseq == inbox.highestmodseq
    assert [m.uid for m in await store.list_messages(renamed.id)] == [1, 2, 3]
    assert fresh.id != inbox.id and fresh.message_count == 0 and fresh.uidnext == 1
    assert fresh.uidvalidity > inbox.uidvalidity
    assert fresh.subscribed and not renamed.subscribed and fresh.special_use is None
    assert (await store.get_mailbox(user_id, "INBOX/Child")).message_count == 0
    assert (await store.get_user(user_id)).used_bytes == used
    assert [(e.kind, e.mailbox_id, e.name) for e in events] == [
        (ChangeKind.MAILBOX_RENAMED, inbox.id, "Old Inbox"),
        (ChangeKind.MAILBOX_CREATED, fresh.id, "INBOX"),
    ]
    delivered = await store.deliver(message(9), [Recipient(user_id)])
    assert [r.uid for _, r in delivered.results] == [1]
    assert (await store.get_mailbox(user_id, "INBOX")).message_count == 1
    assert (await store.get_mailbox(user_id, "Old Inbox")).message_count == 3
    again = await store.rename_mailbox(user_id, "INBOX", "Older Inbox")
    assert (await store.get_mailbox(user_id, "INBOX")).uidvalidity > again.uidvalidity
    assert await store.integrity_check() == []


async def test_recreated_mailbox_gets_new_uidvalidity(store: Store, user_id: int) -> None:
    first = await store.create_mailbox(user_id, "Temp")
    await store.delete_mailbox(user_id, "Temp")
    second = await store.create_mailbox(user_id, "Temp")
    assert second.uidvalidity > first.uidvalidity


async def test_delete_with_children_keeps_noselect_and_frees_quota(
    store: Store, user_id: int
) -> None:
    box = await store.create_mailbox(user_id, "Parent/Child")
    parent = await store.get_mailbox(user_id, "Parent")
    await store.append(parent.id, message(1, size=500))
    await store.append(box.id, message(2, size=1000))
    assert (await store.get_user(user_id)).used_bytes == 1500
    await store.delete_mailbox(user_id, "Parent")  # RFC 9051 §6.3.5: emptied, \Noselect
    after = await store.get_mailbox(user_id, "Parent")
    assert after.noselect and after.message_count == 0 and after.id == parent.id
    assert (await store.get_user(user_id)).used_bytes == 1000
    assert await store.vanished_since(parent.id, parent.highestmodseq) == [1]
    with pytest.raises(NotEmpty):  # \Noselect with children: an error
        await store.delete_mailbox(user_id, "Parent")
    await store.delete_mailbox(user_id, "Parent/Child")
    assert (await store.get_user(user_id)).used_bytes == 0
    assert (await store.get_mailbox(user_id, "Parent")).noselect  # may stay; it does
    await store.delete_mailbox(user_id, "Parent")  # children gone: deleted for real
    assert "Parent" not in await names(store, user_id)
    assert await store.integrity_check() == []


async def test_noselect_refuses_messages(store: Store, user_id: int) -> None:
    child = await store.create_mailbox(user_id, "Hold/Sub")
    await store.delete_mailbox(user_id, "Hold")
    hold = await store.get_mailbox(user_id, "Hold")
    with pytest.raises(NotFound):
        await store.append(hold.id, message(1))
    uid = (await store.append(child.id, message(2))).uid
    with pytest.raises(NotFound):
        await store.copy(child.id, [uid], hold.id)
    with pytest.raises(NotFound):
        await store.move(child.id, [uid], hold.id)
    assert (await store.get_mailbox(user_id, "Hold/Sub")).message_count == 1
    assert (await store.get_mailbox(user_id, "Hold")).message_count == 0


async def test_create_on_noselect_makes_it_selectable(store: Store, user_id: int) -> None:
    await store.create_mailbox(user_id, "Again/Child")
    before = await store.get_mailbox(user_id, "Again")
    await store.delete_mailbox(user_id, "Again")
    again = await store.create_mailbox(user_id, "Again")
    assert not again.noselect and again.id == before.id
    await store.append(again.id, message(1))
    assert (await store.get_mailbox(user_id, "Again")).message_count == 1
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(user_id, "Again")


async def test_delete_with_children_publishes_expunge(store: Store, user_id: int) -> None:
    await store.create_mailbox(user_id, "Ev/Child")
    parent = await store.get_mailbox(user_id, "Ev")
    await store.append(parent.id, message(1))
    with store.changes.subscribe(user_id) as sub:
        await store.delete_mailbox(user_id, "Ev")
        events = sub.drain()
    assert [(e.kind, e.mailbox_id) for e in events] == [(ChangeKind.EXPUNGE, parent.id)]


async def test_subscriptions(store: Store, user_id: int) -> None:
    await store.set_subscribed(user_id, "Future/Folder", True)  # RFC 9051 allows nonexistent
    assert "Future/Folder" in await store.list_subscriptions(user_id)
    await store.set_subscribed(user_id, "Junk", False)
    assert "Junk" not in await store.list_subscriptions(user_id)
    assert not (await store.get_mailbox(user_id, "Junk")).subscribed


async def test_special_use_create(store: Store, user_id: int) -> None:
    box = await store.create_mailbox(user_id, "All Mail", special_use="\\All")
    assert box.special_use == "\\All"
    with pytest.raises(InvalidName):
        await store.create_mailbox(user_id, "Weird", special_use="\\Bogus")


async def test_mailbox_events(store: Store, user_id: int) -> None:
    with store.changes.subscribe(user_id) as sub:
        await store.create_mailbox(user_id, "New/Sub")
        await store.rename_mailbox(user_id, "New", "Renamed")
        await store.delete_mailbox(user_id, "Renamed/Sub")
        kinds = [e.kind for e in sub.drain()]
    assert kinds == [ChangeKind.MAILBOX_CREATED, ChangeKind.MAILBOX_CREATED,
                     ChangeKind.MAILBOX_RENAMED, ChangeKind.MAILBOX_RENAMED,
                     ChangeKind.MAILBOX_DELETED]
