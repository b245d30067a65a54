"""The store's JMAP push subscriptions (RFC 8620 §7.2): only the owner's are listed, only
verified unexpired ones are active, and expiry forgets them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailstead.core.errors import NotFound
from mailstead.store.interfaces import Store
from mailstead.store.models import NewPushSubscription, PushKeys

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _new(expires: datetime, keys: PushKeys | None = None) -> NewPushSubscription:
    return NewPushSubscription(
        device_client_id="phone",
        url="https://push.example/abc",
        keys=keys,
        verification_code="code",
        expires=expires,
        types=("Email",),
    )


async def test_a_subscription_is_kept_and_changed(store: Store, user_id: int) -> None:
    keys = PushKeys("BPk", "YXV0aA")
    made = await store.add_push_subscription(user_id, _new(NOW + timedelta(days=1), keys))
    assert not made.verified and made.keys == keys and made.types == ("Email",)
    assert made.expires == NOW + timedelta(days=1)
    assert await store.push_subscriptions(user_id) == [made]
    assert await store.active_push_subscriptions(NOW) == []
    verified = await store.update_push_subscription(
        user_id, made.id, verified=True, expires=NOW + timedelta(days=2), types=None
    )
    assert verified.verified and verified.types is None and verified.url == made.url
    assert await store.active_push_subscriptions(NOW) == [verified]
    assert await store.active_push_subscriptions(NOW + timedelta(days=3)) == []
    await store.remove_push_subscription(user_id, made.id)
    assert await store.push_subscriptions(user_id) == []
    with pytest.raises(NotFound):
        await store.remove_push_subscription(user_id, made.id)
    with pytest.raises(NotFound):
        await store.update_push_subscription(
            user_id, made.id, verified=True, expires=NOW, types=None
        )


async def test_another_account_sees_none_and_expiry_forgets(store: Store, user_id: int) -> None:
    made = await store.add_push_subscription(user_id, _new(NOW + timedelta(hours=1)))
    other = await store.add_user("bob@example.org", "hash")
    assert await store.push_subscriptions(other.id) == []
    with pytest.raises(NotFound):
        await store.remove_push_subscription(other.id, made.id)
    assert await store.expire_push_subscriptions(NOW) == 0
    assert await store.expire_push_subscriptions(NOW + timedelta(hours=1)) == 1
    assert await store.push_subscriptions(user_id) == []
