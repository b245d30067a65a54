"""An account's JMAP push subscriptions (RFC 8620 §7.2): URLs the server POSTs state
changes to. They have no state of their own (§7.2: no /changes), so a change takes no
mod-sequence and publishes nothing; the push sender reads them when the account changes.

``expires`` is stored as ISO 8601 text in UTC, so a comparison of text is one of time.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from mailstead.core.errors import NotFound
from mailstead.store.models import NewPushSubscription, PushKeys, PushSubscription

_COLUMNS = (
    "id, user_id, device_client_id, url, keys_p256dh, keys_auth, verification_code,"
    " verified, expires, types"
)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _subscription(row: tuple[Any, ...]) -> PushSubscription:
    keys = PushKeys(row[4], row[5]) if row[4] is not None else None
    return PushSubscription(
        id=row[0],
        user_id=row[1],
        device_client_id=row[2],
        url=row[3],
        keys=keys,
        verification_code=row[6],
        verified=bool(row[7]),
        expires=datetime.fromisoformat(row[8]),
        types=None if row[9] is None else tuple(json.loads(row[9])),
    )


def _types_json(types: tuple[str, ...] | None) -> str | None:
    return None if types is None else json.dumps(list(types))


def add(conn: sqlite3.Connection, user_id: int, new: NewPushSubscription) -> PushSubscription:
    keys = new.keys
    row = conn.execute(
        "INSERT INTO push_subscriptions (user_id, device_client_id, url, keys_p256dh,"
        " keys_auth, verification_code, verified, expires, types)"
        f" VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) RETURNING {_COLUMNS}",
        (
            user_id,
            new.device_client_id,
            new.url,
            None if keys is None else keys.p256dh,
            None if keys is None else keys.auth,
            new.verification_code,
            _when(new.expires),
            _types_json(new.types),
        ),
    ).fetchone()
    return _subscription(row)


def list_for_user(conn: sqlite3.Connection, user_id: int) -> list[PushSubscription]:
    return [
        _subscription(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM push_subscriptions WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
    ]


def active(conn: sqlite3.Connection, now: datetime) -> list[PushSubscription]:
    """Every verified subscription that has not expired, of every account."""
    return [
        _subscription(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM push_subscriptions WHERE verified = 1 AND expires > ?"
            " ORDER BY user_id, id",
            (_when(now),),
        )
    ]


def update(
    conn: sqlite3.Connection,
    user_id: int,
    subscription_id: int,
    *,
    verified: bool,
    expires: datetime,
    types: tuple[str, ...] | None,
) -> PushSubscription:
    """Change what a client may change (RFC 8620 §7.2: the rest is immutable)."""
    row = conn.execute(
        "UPDATE push_subscriptions SET verified = ?, expires = ?, types = ?"
        f" WHERE user_id = ? AND id = ? RETURNING {_COLUMNS}",
        (int(verified), _when(expires), _types_json(types), user_id, subscription_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"push subscription #{subscription_id} does not exist")
    return _subscription(row)


def remove(conn: sqlite3.Connection, user_id: int, subscription_id: int) -> None:
    gone = conn.execute(
        "DELETE FROM push_subscriptions WHERE user_id = ? AND id = ?", (user_id, subscription_id)
    ).rowcount
    if not gone:
        raise NotFound(f"push subscription #{subscription_id} does not exist")


def expire(conn: sqlite3.Connection, now: datetime) -> int:
    """Forget the subscriptions whose time is up (RFC 8620 §7.2 ``expires``: the server
    MAY destroy them then); how many."""
    return conn.execute("DELETE FROM push_subscriptions WHERE expires <= ?", (_when(now),)).rowcount
