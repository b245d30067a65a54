"""Mailbox access control lists (RFC 4314): grants, their lifetime, and their events."""

from __future__ import annotations

import pytest

from mailstead.core.errors import InvalidName, NotFound, QuotaExceeded
from mailstead.core.rights import RIGHTS
from mailstead.core.types import UID, FlagMode
from mailstead.store.interfaces import Store
from mailstead.store.models import AclEntry, ChangeKind

from .conftest import StoreOpener, message


@pytest.fixture
async def bob(store: Store, user_id: int) -> int:
    return (await store.add_user("Bob@example.org", "hash")).id


async def test_grant_read_and_replace(store: Store, user_id: int, bob: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    assert await store.get_acl(inbox.id) == []
    assert await store.rights_for(inbox.id, bob) == ""
    assert await store.rights_for(inbox.id, user_id) == RIGHTS  # the owner, always
    await store.set_acl(inbox.id, "bob@EXAMPLE.org", "rl")  # matched like a login
    assert await store.get_acl(inbox.id) == [AclEntry("Bob@example.org", "lr")]
    await store.set_acl(inbox.id, "Bob@example.org", "lrst")
    assert await store.rights_for(inbox.id, bob) == "lrst"
    await store.set_acl(inbox.id, "Bob@example.org", "")
    assert await store.get_acl(inbox.id) == []


async def test_anyone_adds_to_every_account(store: Store, user_id: int, bob: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.set_acl(inbox.id, "anyone", "lr")
    await store.set_acl(inbox.id, "Bob@example.org", "i")
    assert await store.rights_for(inbox.id, bob) == "lri"
    assert [e.identifier for e in await store.get_acl(inbox.id)] == ["anyone", "Bob@example.org"]


async def test_unknown_grantee_owner_and_rights_refused(
    store: Store, user_id: int, bob: int
) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    with pytest.raises(NotFound):
        await store.set_acl(inbox.id, "nobody@example.org", "lr")
    with pytest.raises(NotFound):
        await store.set_acl(inbox.id, "not an address", "lr")
    with pytest.raises(InvalidName):
        await store.set_acl(inbox.id, "alice@example.org", "lr")
    with pytest.raises(InvalidName):
        await store.set_acl(inbox.id, "Bob@example.org", "lz")
    with pytest.raises(NotFound):
        await store.set_acl(999_999, "Bob@example.org", "lr")
    assert await store.get_acl(inbox.id) == []


async def test_shared_with_lists_other_accounts_boxes(store: Store, user_id: int, bob: int) -> None:
    team = await store.create_mailbox(user_id, "Team")
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.set_acl(team.id, "Bob@example.org", "lrs")
    await store.set_acl(inbox.id, "anyone", "l")
    shared = await store.shared_with(bob)
    assert [(s.owner, s.mailbox.name, s.rights) for s in shared] == [
        ("alice@example.org", "INBOX", "l"),
        ("alice@example.org", "Team", "lrs"),
    ]
    assert await store.shared_with(user_id) == []  # its own are not "shared with" it


async def test_grants_follow_rename_and_go_with_mailbox_and_grantee(
    store: Store, user_id: int, bob: int
) -> None:
    team = await store.create_mailbox(user_id, "Team")
    await store.set_acl(team.id, "Bob@example.org", "lr")
    await store.rename_mailbox(user_id, "Team", "Crew")
    crew = await store.get_mailbox(user_id, "Crew")
    assert await store.get_acl(crew.id) == [AclEntry("Bob@example.org", "lr")]
    other = await store.create_mailbox(user_id, "Other")
    await store.set_acl(other.id, "Bob@example.org", "lr")
    await store.remove_user("Bob@example.org")
    assert await store.get_acl(other.id) == []
    await store.delete_mailbox(user_id, "Crew")
    with pytest.raises(NotFound):
        await store.get_acl(crew.id)


async def test_change_publishes_an_acl_event(store: Store, user_id: int, bob: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    with store.changes.subscribe(user_id) as sub:
        await store.set_acl(inbox.id, "Bob@example.org", "lr")
        events = sub.drain()
    assert [(e.kind, e.mailbox_id) for e in events] == [(ChangeKind.ACL, inbox.id)]


async def test_grants_are_durable_and_seen_by_another_store(
    open_store: StoreOpener, store: Store, user_id: int, bob: int
) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.set_acl(inbox.id, "Bob@example.org", "lrw")
    async with open_store() as other:
        assert await other.rights_for(inbox.id, bob) == "lrw"


async def test_new_child_starts_with_parents_grants(store: Store, user_id: int, bob: int) -> None:
    team = await store.create_mailbox(user_id, "Team")
    await store.set_acl(team.id, "Bob@example.org", "lrk")
    await store.set_acl(team.id, "anyone", "l")
    child = await store.create_mailbox(user_id, "Team/2026/Q1")
    assert await store.get_acl(child.id) == [
        AclEntry("anyone", "l"),
        AclEntry("Bob@example.org", "lrk"),
    ]
    middle = await store.get_mailbox(user_id, "Team/2026")
    assert await store.rights_for(middle.id, bob) == "lrk"
    top = await store.create_mailbox(user_id, "Elsewhere")
    assert await store.get_acl(top.id) == []


async def test_copy_and_move_into_another_account_charge_its_owner(
    store: Store, user_id: int, bob: int
) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    bobs = await store.get_mailbox(bob, "INBOX")
    raw = message(1, size=500)
    first = await store.append(inbox.id, raw)
    second = await store.append(inbox.id, raw)
    await store.copy(inbox.id, [first.uid], bobs.id)
    assert (await store.get_user(bob)).used_bytes == len(raw)
    assert (await store.get_user(user_id)).used_bytes == 2 * len(raw)
    await store.move(inbox.id, [second.uid], bobs.id)
    assert (await store.get_user(bob)).used_bytes == 2 * len(raw)
    assert (await store.get_user(user_id)).used_bytes == len(raw)
    await store.set_quota("Bob@example.org", 2 * len(raw) + 10)
    with pytest.raises(QuotaExceeded):
        await store.move(inbox.id, [UID(first.uid)], bobs.id)
    assert [m.uid for m in await store.list_messages(inbox.id)] == [first.uid]
    assert (await store.get_user(bob)).used_bytes == 2 * len(raw)


async def test_private_seen_is_one_users_own(store: Store, user_id: int, bob: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    one = await store.append(inbox.id, message(1), flags=["\\Flagged"])
    two = await store.append(inbox.id, message(2), flags=["\\Seen"])
    assert await store.private_seen(inbox.id, bob) == set()
    with store.changes.subscribe(user_id) as sub:
        changed = await store.set_private_seen(inbox.id, bob, [one.uid, two.uid, UID(99)], True)
        events = sub.drain()
    assert changed == [one.uid, two.uid]
    assert [(e.kind, e.viewer, e.uids, e.flags) for e in events] == [(
        ChangeKind.PRIVATE_SEEN, bob, (one.uid, two.uid),
        (frozenset({"\\Flagged", "\\Seen"}), frozenset({"\\Seen"})),
    )]
    assert await store.set_private_seen(inbox.id, bob, [one.uid], True) == []  # no change
    assert await store.private_seen(inbox.id, bob) == {one.uid, two.uid}
    metas = await store.list_messages(inbox.id)  # the owner's flags are untouched
    assert [m.flags for m in metas] == [frozenset({"\\Flagged"}), frozenset({"\\Seen"})]
    assert await store.set_private_seen(inbox.id, bob, [two.uid], False) == [two.uid]
    await store.store_flags(inbox.id, [one.uid], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    assert await store.private_seen(inbox.id, bob) == set()


async def test_copy_with_rights_keeps_only_the_settable_flags(
    store: Store, user_id: int, bob: int
) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    bobs = await store.get_mailbox(bob, "INBOX")
    flags = ["\\Seen", "\\Deleted", "\\Flagged", "$Label"]
    one = await store.append(inbox.id, message(1), flags=flags)
    two = await store.append(inbox.id, message(2), flags=flags)
    await store.copy(inbox.id, [one.uid], bobs.id, rights="lris")
    await store.move(inbox.id, [two.uid], bobs.id, rights="lritw")
    await store.copy(inbox.id, [one.uid], bobs.id)  # no rights given: every flag
    copied = await store.list_messages(bobs.id)
    assert [m.flags for m in copied] == [
        frozenset({"\\Seen"}),
        frozenset({"\\Deleted", "\\Flagged", "$Label"}),
        frozenset(flags),
    ]
    status = await store.get_mailbox(bob, "INBOX")
    assert (status.unseen_count, status.deleted_count) == (1, 2)
