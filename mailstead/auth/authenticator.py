"""Check a user name and password against the user store, throttled and timing-safe.

Every protocol calls :meth:`Authenticator.authenticate` after its SASL exchange or its
LOGIN/USER+PASS command, so the rules are the same everywhere:

- unknown user, wrong password and disabled account all give the same :class:`AuthError`
  after the same work (an argon2 verify against DUMMY_HASH for unknown users), so neither
  the message nor the timing tells which accounts exist;
- a throttled account or address gets :class:`AuthThrottled` before any password check;
- after a failure we sleep the throttle's tarpit delay before raising.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from mailstead.auth.passwords import (
    DEFAULT_POLICY,
    PasswordPolicy,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from mailstead.auth.throttle import Throttle
from mailstead.core.errors import AuthError

_log = logging.getLogger("mailstead.auth")
_MAX_USERNAME = 320  # RFC 5321 §4.5.3.1: 64 local + @ + 255 domain


class UserRecord(Protocol):
    """What authentication needs from an account (the store's user type fits structurally)."""

    @property
    def address(self) -> str: ...

    @property
    def password_hash(self) -> str: ...

    @property
    def disabled(self) -> bool: ...


class UserLookup(Protocol):
    async def find_user(self, address: str) -> UserRecord | None:
        """The account for a full address (domain matched case-insensitively), or None."""
        ...


RehashHook = Callable[[UserRecord, str], Awaitable[None]]


class Authenticator:
    """Shared by every protocol; one per process."""

    FAILED = "authentication failed"  # the only text a client ever sees

    def __init__(
        self,
        users: UserLookup,
        throttle: Throttle,
        policy: PasswordPolicy = DEFAULT_POLICY,
        *,
        on_rehash: RehashHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.users = users
        self.throttle = throttle
        self.policy = policy
        self._on_rehash = on_rehash
        self._sleep = sleep
        self._log = logger or _log

    async def authenticate(self, username: str, password: str, ip: str) -> UserRecord:
        """The account if the password is right; AuthError or AuthThrottled otherwise."""
        self.throttle.check(username, ip)  # raises AuthThrottled, before any expensive work
        user = await self._find(username)
        # Count against the canonical account: the store may match "Bob+tag@X" to
        # "bob@x", and variants must not each get their own failure budget.
        account = user.address if user is not None else username
        if account != username:
            self.throttle.check(account, ip)
        # Always one argon2 verify, whatever happened above: equal cost for every outcome.
        encoded = user.password_hash if user is not None else dummy_hash(self.policy)
        ok = await verify_password(encoded, password)
        if user is None or not ok or user.disabled:
            reason = "unknown user" if user is None else "disabled" if ok else "bad password"
            self._log.info("auth failed for %r from %s: %s", username[:_MAX_USERNAME], ip, reason)
            self.throttle.record_failure(account, ip)
            delay = self.throttle.delay_for(account, ip)
            if delay > 0:
                await self._sleep(delay)
            raise AuthError(self.FAILED)
        self.throttle.record_success(account, ip)
        await self._maybe_rehash(user, password)
        return user

    async def _find(self, username: str) -> UserRecord | None:
        # Garbage names are "unknown user" without bothering the store.
        if not username or len(username) > _MAX_USERNAME or "@" not in username:
            return None
        if any(ord(c) < 32 or c == "\x7f" or 0xD800 <= ord(c) < 0xE000 for c in username):
            return None  # controls, or bytes that were not UTF-8 (surrogate escapes)
        return await self.users.find_user(username)

    async def _maybe_rehash(self, user: UserRecord, password: str) -> None:
        """Upgrade an old hash to the current policy while we know the password."""
        if self._on_rehash is None or not needs_rehash(user.password_hash, self.policy):
            return
        try:
            encoded = await asyncio.to_thread(hash_password, password, self.policy)
            await self._on_rehash(user, encoded)
        except Exception as exc:  # the login itself succeeded; a rehash can wait
            self._log.warning("password rehash for %s failed: %s", user.address, exc)
