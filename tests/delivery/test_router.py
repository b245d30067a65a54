"""Routing: accounts, +tags, aliases, groups, catch-all, loops, and sender ownership."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mailstead.core.types import Address
from mailstead.delivery import router as router_module
from mailstead.delivery.router import ROUTE_CACHE_SECONDS, DeliveryError, Router
from mailstead.store.sql.sqlite import SQLiteStore


def addr(text: str) -> Address:
    return Address.parse(text)


async def targets(router: Router, text: str) -> tuple[list[tuple[str, str]], list[str]]:
    route = await router.resolve(addr(text))
    return [(t.address, t.mailbox) for t in route.local], list(route.remote)


async def test_account_case_insensitive(store: SQLiteStore) -> None:
    router = Router(store)
    assert await targets(router, "ALICE@Example.ORG") == ([("alice@example.org", "INBOX")], [])


async def test_unknown_user(store: SQLiteStore) -> None:
    with pytest.raises(DeliveryError) as failure:
        await Router(store).resolve(addr("nobody@example.org"))
    assert (failure.value.code, failure.value.enhanced) == (550, "5.1.1")


async def test_remote_domain(store: SQLiteStore) -> None:
    route = await Router(store).resolve(addr("x@remote.example"))
    assert not route.is_local_domain
    assert route.remote == ("x@remote.example",)


async def test_plus_tag_goes_to_inbox_unless_enabled_and_folder_exists(store: SQLiteStore) -> None:
    router = Router(store)
    assert await targets(router, "alice+lists@example.org") == (
        [("alice@example.org", "INBOX")], [])
    await store.set_plus_folders("alice@example.org", True)
    assert await targets(router, "alice+lists@example.org") == (
        [("alice@example.org", "INBOX")], [])  # no such folder yet
    user = await store.find_user("alice@example.org")
    assert user is not None
    await store.create_mailbox(user.id, "lists")
    assert await targets(router, "alice+lists@example.org") == (
        [("alice@example.org", "lists")], [])
    assert await targets(router, "alice+Trash@example.org") == (
        [("alice@example.org", "Trash")], [])


async def test_other_separator_and_disabled_tags(store: SQLiteStore) -> None:
    await store.set_plus_folders("alice@example.org", True)
    user = await store.find_user("alice@example.org")
    assert user is not None
    await store.create_mailbox(user.id, "news")
    assert await targets(Router(store, "-"), "alice-news@example.org") == (
        [("alice@example.org", "news")], [])
    with pytest.raises(DeliveryError):
        await Router(store, "-").resolve(addr("alice+news@example.org"))
    with pytest.raises(DeliveryError):
        await Router(store, "").resolve(addr("alice+news@example.org"))


async def test_aliases_recursive_with_external_targets(store: SQLiteStore) -> None:
    await store.add_alias("team@example.org", ["alice@example.org", "staff@example.org"])
    await store.add_alias("staff@example.org", ["bob@example.org", "out@remote.example"])
    assert await targets(Router(store), "team@example.org") == (
        [("alice@example.org", "INBOX"), ("bob@example.org", "INBOX")], ["out@remote.example"])


async def test_alias_with_tag(store: SQLiteStore) -> None:
    await store.add_alias("sales@example.org", ["bob@example.org"])
    assert await targets(Router(store), "sales+promo@example.org") == (
        [("bob@example.org", "INBOX")], [])


async def test_alias_cycle_delivers_once(store: SQLiteStore) -> None:
    await store.add_alias("a@example.org", ["b@example.org", "alice@example.org"])
    await store.add_alias("b@example.org", ["a@example.org", "alice@example.org"])
    assert await targets(Router(store), "a@example.org") == ([("alice@example.org", "INBOX")], [])


async def test_deep_alias_chain_is_a_routing_loop(store: SQLiteStore) -> None:
    for n in range(15):
        await store.add_alias(f"hop{n}@example.org", [f"hop{n + 1}@example.org"])
    await store.add_alias("hop15@example.org", ["alice@example.org"])
    with pytest.raises(DeliveryError) as failure:
        await Router(store).resolve(addr("hop0@example.org"))
    assert (failure.value.code, failure.value.enhanced) == (554, "5.4.6")


async def test_groups_expand_with_external_members(store: SQLiteStore) -> None:
    await store.add_group("all@example.org", ["alice@example.org", "bob@example.org",
                                              "friend@remote.example", "alice@example.org"])
    assert await targets(Router(store), "all@example.org") == (
        [("alice@example.org", "INBOX"), ("bob@example.org", "INBOX")],
        ["friend@remote.example"])


async def test_catch_all_only_for_unknown_addresses(store: SQLiteStore) -> None:
    await store.add_alias("@example.org", ["bob@example.org"])
    router = Router(store)
    assert await targets(router, "whatever@example.org") == ([("bob@example.org", "INBOX")], [])
    assert await targets(router, "alice@example.org") == ([("alice@example.org", "INBOX")], [])


async def test_catch_all_pointing_into_its_own_domain_terminates(store: SQLiteStore) -> None:
    await store.add_alias("@example.org", ["missing@example.org"])
    with pytest.raises(DeliveryError):
        await Router(store).resolve(addr("whatever@example.org"))


async def test_disabled_account(store: SQLiteStore) -> None:
    await store.set_disabled("bob@example.org", True)  # type: ignore[attr-defined]
    with pytest.raises(DeliveryError) as failure:
        await Router(store).resolve(addr("bob@example.org"))
    assert failure.value.enhanced == "5.2.1"


async def test_idna_domain_matches_its_a_label(store: SQLiteStore) -> None:
    await store.add_domain("xn--bcher-kva.example")
    await store.add_user("info@xn--bcher-kva.example", "x")
    assert await targets(Router(store), "info@bücher.example") == (
        [("info@xn--bcher-kva.example", "INBOX")], [])


async def test_sender_ownership(store: SQLiteStore) -> None:
    await store.add_alias("sales@example.org", ["alice@example.org"])
    await store.add_alias("chain@example.org", ["sales@example.org"])
    await store.add_alias("@example.org", ["alice@example.org"])
    await store.add_group("all@example.org", ["alice@example.org"])
    alice = await store.find_user("alice@example.org")
    assert alice is not None
    router = Router(store)
    for own in ("alice@example.org", "alice+x@example.org", "sales@example.org",
                "chain@example.org"):
        assert await router.owns(alice.id, addr(own)), own
    for foreign in ("bob@example.org", "random@example.org", "all@example.org",
                    "alice@remote.example"):
        assert not await router.owns(alice.id, addr(foreign)), foreign


# -- the route cache ---------------------------------------------------------------------


async def test_cached_route_forgotten_when_this_process_changes_the_directory(
    store: SQLiteStore,
) -> None:
    router = Router(store)
    assert await targets(router, "alice@example.org") == ([("alice@example.org", "INBOX")], [])
    await store.set_disabled("alice@example.org", True)
    with pytest.raises(DeliveryError) as failure:
        await router.resolve(addr("alice@example.org"))
    assert failure.value.enhanced == "5.2.1"
    await store.set_disabled("alice@example.org", False)
    assert await targets(router, "alice@example.org") == ([("alice@example.org", "INBOX")], [])
    await store.remove_user("alice@example.org")
    await store.add_alias("alice@example.org", ["bob@example.org"])
    assert await targets(router, "alice@example.org") == ([("bob@example.org", "INBOX")], [])


async def test_another_process_is_seen_after_the_cache_time(
    store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change by another process (the admin command) does not bump our generation: a
    cached local route is reused until it expires, then the change is seen."""
    router = Router(store)
    await router.resolve(addr("alice@example.org"))
    other = SQLiteStore(tmp_path / "data")
    await other.open()
    try:
        await other.set_disabled("alice@example.org", True)
    finally:
        await other.close()
    assert await targets(router, "alice@example.org") == ([("alice@example.org", "INBOX")], [])
    now = time.monotonic()
    monkeypatch.setattr(router_module.time, "monotonic", lambda: now + ROUTE_CACHE_SECONDS + 1)
    with pytest.raises(DeliveryError):
        await router.resolve(addr("alice@example.org"))


async def test_unknown_recipients_and_remote_domains_are_never_cached(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """A new account (or domain) added by another process receives mail at once: a 550
    must never be answered from a cache."""
    router = Router(store)
    with pytest.raises(DeliveryError):
        await router.resolve(addr("carol@example.org"))
    assert not (await router.resolve(addr("dave@new.example"))).is_local_domain
    other = SQLiteStore(tmp_path / "data")
    await other.open()
    try:
        await other.add_user("carol@example.org", "x")
        await other.add_domain("new.example")
        await other.add_user("dave@new.example", "x")
    finally:
        await other.close()
    assert await targets(router, "carol@example.org") == ([("carol@example.org", "INBOX")], [])
    assert await targets(router, "dave@new.example") == ([("dave@new.example", "INBOX")], [])


async def test_cache_is_bounded(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "ROUTE_CACHE_SIZE", 2)
    router = Router(store)
    for text in ("alice@example.org", "bob@example.org", "alice+x@example.org"):
        await router.resolve(addr(text))
    assert len(router._cache) == 2


def count_lookups(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every address the router looks up in the store from now on."""
    seen: list[str] = []
    for name in ("find_user", "find_alias", "find_group"):
        original = getattr(store, name)

        async def lookup(address: str, _original: Any = original) -> object:
            seen.append(address)
            return await _original(address)

        monkeypatch.setattr(store, name, lookup)
    return seen


async def test_an_unrelated_change_keeps_the_cached_routes(
        store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin adding aliases or accounts elsewhere does not empty the MX's cache."""
    await store.add_alias("sales@example.org", ["alice@example.org"])
    bob = await store.find_user("bob@example.org")
    assert bob is not None
    router = Router(store)
    await router.resolve(addr("alice@example.org"))
    await router.resolve(addr("sales@example.org"))
    lookups = count_lookups(store, monkeypatch)
    await store.add_alias("new@example.org", ["bob@example.org"])
    await store.add_user("carol@example.org", "x")
    await store.set_quota("bob@example.org", 10)
    await store.create_mailbox(bob.id, "Lists")
    assert await targets(router, "alice@example.org") == ([("alice@example.org", "INBOX")], [])
    assert await targets(router, "sales@example.org") == ([("alice@example.org", "INBOX")], [])
    assert lookups == []  # both answered from the cache


async def test_a_change_to_anything_a_route_read_is_seen_at_once(store: SQLiteStore) -> None:
    """Through an alias, a group, a catch-all, a tag, a folder and a remote domain: each
    step caches a route, then changes one thing only that route read."""
    await store.add_group("team@example.org", ["alice@example.org"])
    await store.add_alias("sales@example.org", ["team@example.org", "x@other.example"])
    router = Router(store)
    assert await targets(router, "sales@example.org") == (
        [("alice@example.org", "INBOX")], ["x@other.example"])
    await store.add_group_member("team@example.org", "bob@example.org")  # the group
    assert (await targets(router, "sales@example.org"))[0] == [
        ("alice@example.org", "INBOX"), ("bob@example.org", "INBOX")]
    await store.set_disabled("alice@example.org", True)  # an account behind it
    assert (await targets(router, "sales@example.org"))[0] == [("bob@example.org", "INBOX")]
    await store.set_disabled("alice@example.org", False)
    assert (await targets(router, "sales@example.org"))[1] == ["x@other.example"]
    await store.add_domain("other.example")  # a remote target's domain becomes ours
    assert (await targets(router, "sales@example.org"))[1] == []

    # A catch-all to an account of another domain: the catch-all's own entry counts.
    await store.add_user("t@other.example", "x")
    await store.add_alias("@example.org", ["t@other.example"])
    assert await targets(router, "random@example.org") == ([("t@other.example", "INBOX")], [])
    assert await targets(router, "other@example.org") == ([("t@other.example", "INBOX")], [])
    await store.add_user("random@example.org", "x")  # shadows the catch-all
    assert await targets(router, "random@example.org") == ([("random@example.org", "INBOX")],
                                                           [])
    await store.add_alias("@example.org", ["alice@example.org"])  # the catch-all's targets
    assert (await targets(router, "other@example.org"))[0] == [
        ("t@other.example", "INBOX"), ("alice@example.org", "INBOX")]

    # A tag: the folder, then the account's setting (read through the address without it).
    bob = await store.find_user("bob@example.org")
    assert bob is not None
    assert await targets(router, "bob+lists@example.org") == ([("bob@example.org", "INBOX")], [])
    await store.create_mailbox(bob.id, "lists")
    assert await targets(router, "bob+lists@example.org") == ([("bob@example.org", "INBOX")], [])
    await store.set_plus_folders("bob@example.org", True)
    assert await targets(router, "bob+lists@example.org") == ([("bob@example.org", "lists")], [])
    await store.delete_mailbox(bob.id, "lists")  # the folder
    assert await targets(router, "bob+lists@example.org") == ([("bob@example.org", "INBOX")], [])
