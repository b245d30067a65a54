"""JMAP uploads in the store: the account's own, content-addressed, expiring by age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailstead.cli.serve import UPLOAD_LIFETIME, expire_uploads
from mailstead.store.interfaces import Store


async def test_uploads_are_the_account_s_own(store: Store, user_id: int) -> None:
    other = await store.add_user("bob@example.org", "hash")
    blob = await store.put_upload(user_id, b"draft octets", "text/plain")
    assert blob == await store.put_upload(user_id, b"draft octets", "text/plain")
    assert await store.get_upload(user_id, blob) == (b"draft octets", "text/plain")
    assert await store.get_upload(other.id, blob) is None
    assert await store.get_upload(user_id, "0" * 64) is None


async def test_uploads_expire_by_age(store: Store, user_id: int) -> None:
    blob = await store.put_upload(user_id, b"old", "application/octet-stream")
    assert await store.expire_uploads(datetime.now(UTC) - timedelta(minutes=5)) == 0
    assert await expire_uploads(store) == 0  # the server's hourly round: a day's grace
    assert timedelta(hours=1) <= UPLOAD_LIFETIME  # RFC 8620 §6.1: at least an hour
    assert await store.expire_uploads(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert await store.get_upload(user_id, blob) is None
