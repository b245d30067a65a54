"""Metadata entries (RFC 5464): values kept exactly, all-or-nothing writes, the account's
entry limit, entries following their mailbox through RENAME and DELETE, change events."""

from __future__ import annotations

import pytest

from mailstead.core.errors import NotFound, TooMany
from mailstead.store.interfaces import Store
from mailstead.store.models import ChangeEvent, ChangeKind

from .conftest import StoreOpener, message

BINARY = bytes(range(256)) + b"\x00\r\n\x00"


async def test_values_round_trip_exactly(store: Store, user_id: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    changes: dict[str, bytes | None] = {
        "/private/comment": "für dich".encode(),
        "/shared/vendor/x/bin": BINARY,
        "/shared/empty": b"",
    }
    await store.set_metadata(user_id, inbox.id, changes, max_entries=10)
    assert await store.get_metadata(user_id, inbox.id) == changes
    assert await store.get_metadata(user_id, None) == {}


async def test_server_and_mailbox_entries_are_apart(store: Store, user_id: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.set_metadata(user_id, None, {"/private/comment": b"server"}, max_entries=10)
    await store.set_metadata(user_id, inbox.id, {"/private/comment": b"box"}, max_entries=10)
    assert await store.get_metadata(user_id, None) == {"/private/comment": b"server"}
    assert await store.get_metadata(user_id, inbox.id) == {"/private/comment": b"box"}


async def test_accounts_do_not_see_each_other(store: Store, user_id: int) -> None:
    bob = await store.add_user("bob@example.org", "hash")
    await store.set_metadata(user_id, None, {"/shared/comment": b"alice"}, max_entries=10)
    assert await store.get_metadata(bob.id, None) == {}
    inbox = await store.get_mailbox(user_id, "INBOX")
    with pytest.raises(NotFound):  # another account's mailbox is not there for bob
        await store.set_metadata(bob.id, inbox.id, {"/private/x": b"1"}, max_entries=10)
    assert await store.get_metadata(bob.id, inbox.id) == {}


async def test_none_removes_and_overwrite_replaces(store: Store, user_id: int) -> None:
    await store.set_metadata(
        user_id, None, {"/private/a": b"1", "/private/b": b"2"}, max_entries=10
    )
    await store.set_metadata(
        user_id,
        None,
        {"/private/a": None, "/private/b": b"3", "/private/missing": None},
        max_entries=10,
    )
    assert await store.get_metadata(user_id, None) == {"/private/b": b"3"}


async def test_limit_counts_the_whole_account_and_keeps_nothing(store: Store, user_id: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.set_metadata(user_id, None, {"/private/a": b"1", "/private/b": b"2"}, max_entries=3)
    with pytest.raises(TooMany):
        await store.set_metadata(
            user_id, inbox.id, {"/private/c": b"3", "/private/d": b"4"}, max_entries=3
        )
    assert await store.get_metadata(user_id, inbox.id) == {}
    # Replacing or removing never needs room, even at the limit.
    await store.set_metadata(user_id, inbox.id, {"/private/c": b"3"}, max_entries=3)
    await store.set_metadata(
        user_id, None, {"/private/a": b"new", "/private/b": None, "/private/z": b"z"}, max_entries=3
    )
    assert await store.get_metadata(user_id, None) == {"/private/a": b"new", "/private/z": b"z"}


async def test_entries_follow_rename_and_go_with_delete(store: Store, user_id: int) -> None:
    box = await store.create_mailbox(user_id, "Work")
    child = await store.create_mailbox(user_id, "Work/Old")
    await store.set_metadata(user_id, box.id, {"/private/comment": b"w"}, max_entries=10)
    await store.set_metadata(user_id, child.id, {"/private/comment": b"o"}, max_entries=10)
    await store.rename_mailbox(user_id, "Work", "Job")
    job = await store.get_mailbox(user_id, "Job")
    old = await store.get_mailbox(user_id, "Job/Old")
    assert await store.get_metadata(user_id, job.id) == {"/private/comment": b"w"}
    assert await store.get_metadata(user_id, old.id) == {"/private/comment": b"o"}
    await store.delete_mailbox(user_id, "Job")  # kept as \Noselect for its child
    assert await store.get_metadata(user_id, job.id) == {}
    await store.delete_mailbox(user_id, "Job/Old")
    assert await store.get_metadata(user_id, old.id) == {}
    again = await store.create_mailbox(user_id, "Job/Old")
    assert await store.get_metadata(user_id, again.id) == {}
    # Nothing left over counts against the limit.
    await store.set_metadata(user_id, None, {"/private/only": b"1"}, max_entries=1)


async def test_rename_of_inbox_takes_its_entries(store: Store, user_id: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.append(inbox.id, message(1))
    await store.set_metadata(user_id, inbox.id, {"/private/comment": b"in"}, max_entries=10)
    await store.rename_mailbox(user_id, "INBOX", "Old Inbox")
    moved = await store.get_mailbox(user_id, "Old Inbox")
    fresh = await store.get_mailbox(user_id, "INBOX")
    assert await store.get_metadata(user_id, moved.id) == {"/private/comment": b"in"}
    assert await store.get_metadata(user_id, fresh.id) == {}


async def test_writes_publish_one_event_naming_the_entries(store: Store, user_id: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    with store.changes.subscribe(user_id) as sub:
        await store.set_metadata(
            user_id, inbox.id, {"/private/a": b"1", "/shared/b": b"2"}, max_entries=10
        )
        await store.set_metadata(user_id, inbox.id, {"/private/a": b"1"}, max_entries=10)
        await store.set_metadata(user_id, None, {"/private/s": b"x"}, max_entries=10)
        await store.set_metadata(user_id, None, {"/private/none": None}, max_entries=10)
        events = sub.drain()
    assert events == [
        ChangeEvent(
            user_id, inbox.id, ChangeKind.MAILBOX_METADATA, entries=("/private/a", "/shared/b")
        ),
        ChangeEvent(user_id, 0, ChangeKind.SERVER_METADATA, entries=("/private/s",)),
    ]


async def test_delete_tells_which_entries_went(store: Store, user_id: int) -> None:
    parent = await store.create_mailbox(user_id, "P")
    await store.create_mailbox(user_id, "P/C")
    await store.set_metadata(user_id, parent.id, {"/private/x": b"1"}, max_entries=10)
    with store.changes.subscribe(user_id) as sub:
        await store.delete_mailbox(user_id, "P")
        events = sub.drain()
    assert (
        ChangeEvent(user_id, parent.id, ChangeKind.MAILBOX_METADATA, entries=("/private/x",))
        in events
    )


async def test_another_store_sees_the_entries(
    open_store: StoreOpener, user_id: int, store: Store
) -> None:
    await store.set_metadata(user_id, None, {"/private/x": b"\x00"}, max_entries=10)
    async with open_store() as other:
        assert await other.get_metadata(user_id, None) == {"/private/x": b"\x00"}
