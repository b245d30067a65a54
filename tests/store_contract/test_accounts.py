"""Domains, users, aliases, catch-all and groups."""

from __future__ import annotations

import pytest

from mailstead.core.errors import AlreadyExists, InvalidName, NotEmpty, NotFound
from mailstead.core.types import SendAs
from mailstead.store.interfaces import Store, account_change_key


async def test_domain_lifecycle(store: Store) -> None:
    await store.add_domain("Example.ORG.")
    assert [d.name for d in await store.list_domains()] == ["example.org"]
    assert await store.has_domain("EXAMPLE.org")
    with pytest.raises(AlreadyExists):
        await store.add_domain("example.org")
    await store.remove_domain("example.org")
    assert await store.list_domains() == []
    with pytest.raises(NotFound):
        await store.remove_domain("example.org")


@pytest.mark.parametrize("bad", ["", "a b.org", "x@y.org", "a..b"])
async def test_bad_domain_names(store: Store, bad: str) -> None:
    with pytest.raises(InvalidName):
        await store.add_domain(bad)


async def test_domain_with_users_cannot_be_removed(store: Store, user_id: int) -> None:
    with pytest.raises(NotEmpty):
        await store.remove_domain("example.org")


async def test_user_needs_existing_domain(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.add_user("bob@nowhere.test", "hash")


async def test_new_user_gets_default_mailboxes(store: Store, user_id: int) -> None:
    boxes = {b.name: b for b in await store.list_mailboxes(user_id)}
    assert set(boxes) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert boxes["Sent"].special_use == "\\Sent"
    assert boxes["Trash"].special_use == "\\Trash"
    assert boxes["INBOX"].special_use is None
    assert all(b.subscribed for b in boxes.values())
    assert len({b.uidvalidity for b in boxes.values()}) == 6


async def test_find_user_rules(store: Store, user_id: int) -> None:
    # Domain case-insensitive, local part matched regardless of case, +tag stripped.
    for form in ("alice@example.org", "alice@EXAMPLE.ORG", "Alice@example.org",
                 "alice+news@example.org", "<alice@example.org>"):
        found = await store.find_user(form)
        assert found is not None and found.id == user_id, form
    assert await store.find_user("alicex@example.org") is None
    assert await store.find_user("not an address") is None
    with pytest.raises(AlreadyExists):
        await store.add_user("ALICE@example.org", "hash")


async def test_literal_plus_account_wins_over_tag(store: Store, user_id: int) -> None:
    other = await store.add_user("alice+list@example.org", "hash")
    found = await store.find_user("alice+list@example.org")
    assert found is not None and found.id == other.id


async def test_local_part_kept_as_given(store: Store) -> None:
    await store.add_domain("example.org")
    user = await store.add_user("John.Smith@Example.org", "hash")
    assert user.address == "John.Smith@example.org"


async def test_user_settings(store: Store, user_id: int) -> None:
    await store.set_password("alice@example.org", "new-hash")
    await store.set_quota("alice@example.org", 1000)
    await store.set_pop3_policy("alice@example.org", "archive")
    await store.set_plus_folders("alice@example.org", True)
    assert (await store.get_user(user_id)).send_as == "own"  # the default
    await store.set_send_as("alice@example.org", SendAs.ANY)
    user = await store.get_user(user_id)
    assert (user.password_hash, user.quota_bytes, user.pop3_policy, user.plus_folders,
            user.send_as) == ("new-hash", 1000, "archive", True, SendAs.ANY)
    with pytest.raises(InvalidName):
        await store.set_pop3_policy("alice@example.org", "shred")
    with pytest.raises(InvalidName):
        await store.set_send_as("alice@example.org", "everyone")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await store.set_send_as("nobody@example.org", SendAs.ANY)
    with pytest.raises(NotFound):
        await store.set_quota("nobody@example.org", 1)


async def test_scram_keys_go_with_their_password(store: Store, user_id: int) -> None:
    """Decision 0026: keys are stored with the hash or added for the hash still in place;
    a new password without keys takes the old keys away."""
    assert (await store.get_user(user_id)).scram_sha256 is None  # "hash" came without
    # Added at a login with the current hash; refused for a hash that is no longer it.
    assert await store.add_scram_keys("Alice@EXAMPLE.org", "hash", "keys-1")
    assert (await store.get_user(user_id)).scram_sha256 == "keys-1"
    assert not await store.add_scram_keys("alice@example.org", "stale-hash", "keys-2")
    assert (await store.get_user(user_id)).scram_sha256 == "keys-1"
    await store.set_password("alice@example.org", "hash-2", scram="keys-3")
    user = await store.get_user(user_id)
    assert (user.password_hash, user.scram_sha256) == ("hash-2", "keys-3")
    await store.set_password("alice@example.org", "hash-3")
    assert (await store.get_user(user_id)).scram_sha256 is None
    bob = await store.add_user("bob@example.org", "bob-hash", scram="bob-keys")
    assert bob.scram_sha256 == "bob-keys"
    assert (await store.find_user("bob@example.org")).scram_sha256 == "bob-keys"  # type: ignore[union-attr]
    assert not await store.add_scram_keys("nobody@example.org", "hash", "keys")
    with pytest.raises(NotFound):
        await store.set_password("nobody@example.org", "hash")
    assert "bob-keys" not in repr(bob)  # kept out of logs like any secret


async def test_remove_user_removes_mailboxes(store: Store, user_id: int) -> None:
    inbox = await store.get_mailbox(user_id, "INBOX")
    await store.append(inbox.id, b"Subject: x\r\n\r\nbody\r\n")
    await store.remove_user("alice@example.org")
    assert await store.find_user("alice@example.org") is None
    assert await store.list_mailboxes(user_id) == []
    with pytest.raises(NotFound):
        await store.get_mailbox_by_id(inbox.id)
    assert await store.integrity_check() == []


async def test_aliases_and_catch_all(store: Store, user_id: int) -> None:
    alias = await store.add_alias("Sales@example.org", ["alice@example.org", "bob@other.test"])
    assert alias.targets == ("alice@example.org", "bob@other.test")
    await store.add_alias("sales@EXAMPLE.org", ["carol@example.org"])
    found = await store.find_alias("SALES@example.org")
    assert found is not None and found.targets[-1] == "carol@example.org"
    await store.add_alias("@example.org", ["alice@example.org"])
    catch_all = await store.find_alias("@EXAMPLE.ORG")
    assert catch_all is not None and catch_all.source == "@example.org"
    assert len(await store.list_aliases("example.org")) == 2
    await store.remove_alias("sales@example.org", "bob@other.test")
    found = await store.find_alias("sales@example.org")
    assert found is not None and "bob@other.test" not in found.targets
    await store.remove_alias("sales@example.org")
    assert await store.find_alias("sales@example.org") is None
    with pytest.raises(AlreadyExists):
        await store.add_alias("alice@example.org", ["x@example.org"])
    with pytest.raises(NotFound):
        await store.add_alias("x@unknown.test", ["alice@example.org"])


async def test_groups(store: Store, user_id: int) -> None:
    group = await store.add_group("team@example.org", ["alice@example.org"])
    assert group.members == ("alice@example.org",)
    await store.add_group_member("team@example.org", "partner@elsewhere.test")
    with pytest.raises(AlreadyExists):
        await store.add_group_member("team@example.org", "partner@elsewhere.test")
    found = await store.find_group("TEAM@example.org")
    assert found is not None and found.members == ("alice@example.org", "partner@elsewhere.test")
    await store.remove_group_member("team@example.org", "alice@example.org")
    assert [g.members for g in await store.list_groups()] == [("partner@elsewhere.test",)]
    with pytest.raises(AlreadyExists):
        await store.add_group("alice@example.org")
    await store.remove_group("team@example.org")
    assert await store.find_group("team@example.org") is None
    with pytest.raises(NotFound):
        await store.remove_group("team@example.org")


async def test_directory_changes_say_what_they_touched(store: Store) -> None:
    """What routing caches read to forget only the routes a change may have altered."""
    start = store.directory_generation
    assert store.directory_changes_since(start) == frozenset()
    await store.add_domain("Example.ORG")
    await store.add_user("Bob@example.org", "x")
    await store.add_alias("@example.org", ["bob@example.org"])
    await store.add_group("Team@example.org", ["bob@example.org"])
    assert store.directory_changes_since(start) == frozenset(
        {"@example.org", "bob@example.org", "team@example.org"})
    middle = store.directory_generation
    bob = await store.find_user("bob@example.org")
    assert bob is not None
    await store.create_mailbox(bob.id, "Lists")
    assert store.directory_changes_since(middle) == frozenset({account_change_key(bob.id)})
    with pytest.raises(AlreadyExists):
        await store.add_user("bob@example.org", "x")  # a failed change may still be named
    assert "bob@example.org" in (store.directory_changes_since(middle) or ())
    assert store.directory_changes_since(-5) is None  # older than anything remembered
