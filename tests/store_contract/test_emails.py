"""The account-wide view of mail (decision 0033): one mod-sequence per account, an email
per body however many mailboxes hold it, threads fixed at arrival, and changes since a
state, through the Emails protocol and the IMAP-shaped writes that keep it."""

from __future__ import annotations

import pytest

from mailstead.core.errors import ChangesTooMany
from mailstead.core.types import UID, FlagMode
from mailstead.store.interfaces import Store
from tests.store_contract.conftest import message


def threaded(n: int, own: str, *parents: str) -> bytes:
    """A message whose Message-ID is ``own`` and whose References are ``parents``."""
    refs = f"X-Refs: {' '.join(parents)}\r\n" if parents else ""
    return (f"Subject: thread {n}\r\nX-Id: {own}\r\n{refs}\r\nHello {n}\r\n").encode()


async def _ids(store: Store, user_id: int) -> tuple[int, int]:
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    archive = (await store.create_mailbox(user_id, "Projects")).id
    return inbox, archive


async def test_every_write_takes_the_account_s_next_modseq(store: Store, user_id: int) -> None:
    inbox, archive = await _ids(store, user_id)
    before = await store.account_state(user_id)
    a = await store.append(inbox, message(1), [])
    b = await store.append(archive, message(2), [])
    c = await store.append(inbox, message(3), [])
    assert before < a.modseq < b.modseq < c.modseq
    assert await store.account_state(user_id) == c.modseq
    flagged = await store.store_flags(archive, [b.uid], FlagMode.ADD, ["\\Seen"])
    assert flagged.updated[0].modseq > c.modseq
    # Each mailbox's HIGHESTMODSEQ is still its own messages' latest (RFC 7162 §3.1).
    assert (await store.get_mailbox(user_id, "INBOX")).highestmodseq == c.modseq
    assert (await store.get_mailbox(user_id, "Projects")).highestmodseq == (
        flagged.updated[0].modseq
    )


async def test_a_copy_is_the_same_email_in_two_mailboxes(store: Store, user_id: int) -> None:
    inbox, archive = await _ids(store, user_id)
    added = await store.append(inbox, message(1), ["\\Seen"])
    await store.copy(inbox, [added.uid], archive)
    [record] = await store.account_emails(user_id)
    assert record.mailbox_ids == {inbox, archive}
    assert record.flags == {"\\Seen"}
    assert [r.blob_id for r in await store.account_emails(user_id, archive)] == [record.blob_id]
    await store.delete_messages(inbox, [added.uid])
    [left] = await store.email_records(user_id, [record.blob_id])
    assert left.mailbox_ids == {archive}


async def test_another_account_s_copy_is_not_this_account_s_email(
    store: Store, user_id: int
) -> None:
    bob = await store.add_user("bob@example.org", "hash")
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    added = await store.append(inbox, message(1), [])
    [record] = await store.account_emails(user_id)
    assert await store.email_records(bob.id, [record.blob_id]) == []
    assert await store.account_emails(bob.id) == []
    assert added.uid == 1


async def test_a_reply_joins_its_parent_s_thread(store: Store, user_id: int) -> None:
    inbox, archive = await _ids(store, user_id)
    await store.append(inbox, threaded(1, "root@x"), [])
    await store.append(archive, threaded(2, "reply@x", "root@x"), [])
    await store.append(inbox, threaded(3, "deep@x", "root@x", "reply@x"), [])
    await store.append(inbox, threaded(4, "other@x", "unknown@x"), [])
    records = {r.thread_id for r in await store.account_emails(user_id)}
    assert len(records) == 2
    emails = await store.account_emails(user_id)
    by_thread: dict[str, int] = {}
    for r in emails:
        by_thread[r.thread_id] = by_thread.get(r.thread_id, 0) + 1
    assert sorted(by_thread.values()) == [1, 3]
    thread = next(t for t, n in by_thread.items() if n == 3)
    listed = await store.thread_emails(user_id, [thread, "Tnope"])
    assert list(listed) == [thread]
    assert len(listed[thread]) == 3


async def test_threads_stay_within_the_account(store: Store, user_id: int) -> None:
    bob = await store.add_user("bob@example.org", "hash")
    bob_inbox = (await store.get_mailbox(bob.id, "INBOX")).id
    await store.append(bob_inbox, threaded(1, "root@x"), [])
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    await store.append(inbox, threaded(2, "reply@x", "root@x"), [])
    [mine] = await store.account_emails(user_id)
    [bobs] = await store.account_emails(bob.id)
    assert mine.thread_id != bobs.thread_id


async def test_email_changes_since_a_state(store: Store, user_id: int) -> None:
    inbox, archive = await _ids(store, user_id)
    first = await store.append(inbox, message(1), [])
    second = await store.append(inbox, message(2), [])
    state = await store.account_state(user_id)
    third = await store.append(inbox, message(3), [])
    await store.store_flags(inbox, [first.uid], FlagMode.ADD, ["$label"])
    await store.move(inbox, [second.uid], archive)
    listed = await store.list_messages(inbox) + await store.list_messages(archive)
    by_uid = {(m.mailbox_id, m.uid): m.blob_id for m in listed}
    by_n = {1: by_uid[inbox, first.uid], 3: by_uid[inbox, third.uid], 2: by_uid[archive, UID(1)]}
    changes = await store.email_changes(user_id, state, None)
    assert changes.created == (by_n[3],)
    assert set(changes.updated) == {by_n[1], by_n[2]}
    assert changes.destroyed == ()
    assert changes.state == await store.account_state(user_id) and not changes.more
    state = changes.state
    await store.delete_messages(inbox, [third.uid])
    later = await store.email_changes(user_id, state, None)
    assert later.destroyed == (by_n[3],) and later.created == later.updated == ()
    assert (await store.email_changes(user_id, later.state, None)).created == ()


async def test_an_email_made_and_removed_since_is_not_reported(store: Store, user_id: int) -> None:
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    state = await store.account_state(user_id)
    added = await store.append(inbox, message(1), [])
    await store.delete_messages(inbox, [added.uid])
    changes = await store.email_changes(user_id, state, None)
    assert (changes.created, changes.updated) == ((), ())
    # It existed in between, and a client may have seen it: reporting it destroyed is safe.
    assert len(changes.destroyed) <= 1


async def test_changes_come_in_pages_that_end_between_writes(store: Store, user_id: int) -> None:
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    state = await store.account_state(user_id)
    for n in range(5):
        await store.append(inbox, message(n), [])
    seen: list[str] = []
    pages = 0
    while True:
        page = await store.email_changes(user_id, state, 2)
        assert len(page.created) + len(page.updated) <= 2
        seen.extend(page.created)
        state = page.state
        pages += 1
        if not page.more:
            break
    assert len(seen) == len(set(seen)) == 5 and pages == 3
    # One write of three messages cannot be split across pages.
    await store.append_many(inbox, [])
    moved = await store.create_mailbox(user_id, "Bulk")
    await store.copy(inbox, [UID(1), UID(2), UID(3)], moved.id)
    with pytest.raises(ChangesTooMany):
        await store.email_changes(user_id, state, 2)


async def test_thread_changes(store: Store, user_id: int) -> None:
    inbox = (await store.get_mailbox(user_id, "INBOX")).id
    root = await store.append(inbox, threaded(1, "root@x"), [])
    state = await store.account_state(user_id)
    await store.append(inbox, threaded(2, "reply@x", "root@x"), [])
    other = await store.append(inbox, threaded(3, "other@x"), [])
    changes = await store.thread_changes(user_id, state, None)
    assert len(changes.updated) == 1 and len(changes.created) == 1
    state = changes.state
    await store.store_flags(inbox, [root.uid], FlagMode.ADD, ["\\Seen"])
    assert (await store.thread_changes(user_id, state, None)).updated == ()
    await store.delete_messages(inbox, [other.uid])
    gone = await store.thread_changes(user_id, state, None)
    assert gone.destroyed == changes.created


async def test_mailbox_changes(store: Store, user_id: int) -> None:
    inbox, archive = await _ids(store, user_id)
    states = {s.mailbox.name: s for s in await store.mailbox_states(user_id)}
    state = await store.account_state(user_id)
    await store.append(inbox, message(1), [])
    changes, counts_only = await store.mailbox_changes(user_id, state, None)
    assert changes.updated == (str(states["INBOX"].mailbox.uidvalidity),) and counts_only
    state = changes.state
    await store.rename_mailbox(user_id, "Projects", "Old")
    made = await store.create_mailbox(user_id, "New")
    await store.delete_mailbox(user_id, "Trash")
    changes, counts_only = await store.mailbox_changes(user_id, state, None)
    assert changes.created == (str(made.uidvalidity),)
    assert changes.updated == (str(states["Projects"].mailbox.uidvalidity),)
    assert changes.destroyed == (str(states["Trash"].mailbox.uidvalidity),)
    assert not counts_only
    assert archive == states["Projects"].mailbox.id


async def test_mailbox_counts(store: Store, user_id: int) -> None:
    inbox, archive = await _ids(store, user_id)
    await store.append(inbox, threaded(1, "root@x"), ["\\Seen"])
    await store.append(inbox, threaded(2, "reply@x", "root@x"), [])
    await store.append(inbox, threaded(3, "alone@x"), ["\\Seen"])
    counts = {s.mailbox.id: s.counts for s in await store.mailbox_states(user_id)}
    assert (counts[inbox].emails, counts[inbox].unread_emails) == (3, 1)
    assert (counts[inbox].threads, counts[inbox].unread_threads) == (2, 1)
    assert counts[archive].emails == 0
