"""Check a user name and password against the user store, throttled and timing-safe.

Every protocol calls :meth:`Authenticator.authenticate` after its SASL exchange or its
LOGIN/USER+PASS command, so the rules are the same everywhere:

- unknown user, wrong password and disabled account all give the same :class:`AuthError`
  after the same work (an argon2 verify against DUMMY_HASH for unknown users), so neither
  the message nor the timing tells which accounts exist;
- a throttled account or address gets :class:`AuthThrottled` before any password check;
- after a failure we sleep the throttle's tarpit delay before raising.

SCRAM (when ``scram`` is set) checks a proof instead of a password, in two steps around the
exchange: :meth:`Authenticator.scram_begin` (throttle check, the account's stored keys, or
mock keys that look the same for an unknown account or one without keys) and
:meth:`Authenticator.scram_end` (the same failure accounting as a wrong password). An
account gets its keys whenever its password is set (the admin service) and, if it has none
yet, at its next successful password login, the only other moment the password is known.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from mailstead.auth.passwords import (
    DEFAULT_POLICY,
    PasswordPolicy,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from mailstead.auth.scram import SCRAM, SCRAM_PLUS
from mailstead.auth.scram_keys import ScramKeyError, ScramKeys, derive_keys, mock_keys
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

    @property
    def scram_sha256(self) -> str | None:
        """The stored SCRAM-SHA-256 keys (:meth:`ScramKeys.encode`), None if it has none."""
        ...


class UserLookup(Protocol):
    async def find_user(self, address: str) -> UserRecord | None:
        """The account for a full address (domain matched case-insensitively), or None."""
        ...


class ScramKeyStore(Protocol):
    async def add_scram_keys(self, address: str, password_hash: str, scram: str) -> bool:
        """Store keys for the account if its password hash is still ``password_hash`` (a
        password changed meanwhile must not get the old password's keys); whether it did."""
        ...


RehashHook = Callable[[UserRecord, str], Awaitable[None]]

#: The mechanisms every connection that allows authentication offers.
PASSWORD_MECHANISMS = ("PLAIN", "LOGIN")


@dataclass(frozen=True, slots=True)
class ScramPolicy:
    """SCRAM-SHA-256 is on; new keys use this many PBKDF2 iterations (decision 0026)."""

    iterations: int = 4096


@dataclass(frozen=True, slots=True)
class ScramLookup:
    """What :meth:`Authenticator.scram_begin` found, carried to :meth:`~Authenticator.scram_end`."""

    username: str
    account: str  # the name failures are counted against (the canonical address if known)
    user: UserRecord | None
    keys: ScramKeys = field(repr=False)
    real: bool  # False: mock keys (unknown account, or one without SCRAM keys yet)


#: How long a password verified by :meth:`Authenticator.authenticate_request` is taken as
#: verified again without argon2, and how many such credentials are remembered.
VERIFIED_SECONDS = 300.0
VERIFIED_MAX = 10_000


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
        scram: ScramPolicy | None = None,
        scram_keys: ScramKeyStore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.users = users
        self.throttle = throttle
        self.policy = policy
        self.scram = scram
        self._scram_keys = scram_keys
        self._on_rehash = on_rehash
        self._sleep = sleep
        self._log = logger or _log
        # Mock salts (RFC 5802 §5.1) are stable per name for the life of the process.
        self._mock_secret = secrets.token_bytes(32)
        # authenticate_request's recently verified credentials: keyed digest -> when.
        self._verified_secret = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()

    def mechanisms(self, bindings: Mapping[str, bytes]) -> tuple[str, ...]:
        """The SASL mechanisms to offer on a connection that allows authentication and has
        these channel bindings: -PLUS only where there is a binding to use."""
        if self.scram is None:
            return PASSWORD_MECHANISMS
        scram = (SCRAM_PLUS, SCRAM) if bindings else (SCRAM,)
        return (*scram, *PASSWORD_MECHANISMS)

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
            await self._fail(username, account, ip, reason)
        self.throttle.record_success(account, ip)
        current_hash = await self._maybe_rehash(user, password)
        await self._maybe_add_scram(user, password, current_hash)
        return user

    async def authenticate_request(self, username: str, password: str, ip: str) -> UserRecord:
        """:meth:`authenticate` for protocols that send the password with every request
        (HTTP Basic: JMAP, a webmail's API calls). A password verified in the last
        ``VERIFIED_SECONDS`` for the same stored hash is not verified again: an argon2
        verify per request would cost a busy client tens of milliseconds of CPU for each.
        The throttle, the account lookup and the disabled check run every time; a password
        change (a new stored hash) or a wrong password misses the cache. Only a keyed
        digest of what was verified is kept, never the password."""
        self.throttle.check(username, ip)
        user = await self._find(username)
        if user is not None and not user.disabled:
            key = self._verified_key(user, password)
            seen = self._verified.get(key)
            now = time.monotonic()
            if seen is not None and now - seen < VERIFIED_SECONDS:
                self._verified.move_to_end(key)
                return user
        user = await self.authenticate(username, password, ip)
        self._verified[self._verified_key(user, password)] = time.monotonic()
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return user

    def _verified_key(self, user: UserRecord, password: str) -> bytes:
        material = "\0".join((user.address.lower(), user.password_hash, password))
        return hmac.digest(self._verified_secret, material.encode("utf-8", "surrogatepass"),
                           "sha256")

    async def _fail(self, username: str, account: str, ip: str, reason: str) -> NoReturn:
        """Count the failure, tarpit, and raise the one generic error."""
        self._log.info("auth failed for %r from %s: %s", username[:_MAX_USERNAME], ip, reason)
        self.throttle.record_failure(account, ip)
        delay = self.throttle.delay_for(account, ip)
        if delay > 0:
            await self._sleep(delay)
        raise AuthError(self.FAILED)

    # -- SCRAM -----------------------------------------------------------------------------
    async def scram_begin(self, username: str, ip: str) -> ScramLookup:
        """Throttle check, then the account's keys; for an unknown account, or one whose
        keys are not there (yet) or unreadable, mock keys with the same shape, so the
        server-first message reveals nothing. AuthThrottled before any lookup."""
        if self.scram is None:
            raise AuthError(self.FAILED)
        self.throttle.check(username, ip)
        user = await self._find(username)
        account = user.address if user is not None else username
        if account != username:
            self.throttle.check(account, ip)
        iterations = self.scram.iterations
        if user is not None and user.scram_sha256:
            try:
                keys = ScramKeys.decode(user.scram_sha256)
            except ScramKeyError as exc:
                self._log.warning("unreadable SCRAM keys for %s: %s", user.address, exc)
            else:
                return ScramLookup(username, account, user, keys, real=True)
        keys = mock_keys(self._mock_secret, account, iterations)
        return ScramLookup(username, account, user, keys, real=False)

    async def scram_end(self, lookup: ScramLookup, proof_ok: bool, ip: str) -> UserRecord:
        """The account if its proof was right and it may log in; else the failure is
        counted exactly like a wrong password and AuthError raised."""
        user = lookup.user
        if user is None or not lookup.real or not proof_ok or user.disabled:
            reason = (
                "unknown user"
                if user is None
                else "no SCRAM keys yet (log in once with a password)"
                if not lookup.real
                else "bad SCRAM proof"
                if not proof_ok
                else "disabled"
            )
            await self._fail(lookup.username, lookup.account, ip, reason)
        self.throttle.record_success(lookup.account, ip)
        return user

    async def _maybe_add_scram(self, user: UserRecord, password: str, password_hash: str) -> None:
        """Give an account that predates SCRAM (or whose keys use another iteration count)
        its keys, now that the password is known. Only if the hash is still the one just
        checked: a password changed in the meantime keeps its own keys."""
        if self.scram is None or self._scram_keys is None:
            return
        # A rehash just now replaced the password hash, and with it any keys.
        if user.scram_sha256 and password_hash == user.password_hash:
            try:
                if ScramKeys.decode(user.scram_sha256).iterations == self.scram.iterations:
                    return
            except ScramKeyError:
                pass  # unreadable: replace it
        try:
            keys = await asyncio.to_thread(derive_keys, password, self.scram.iterations)
            if await self._scram_keys.add_scram_keys(user.address, password_hash, keys.encode()):
                self._log.info("SCRAM keys added for %s", user.address)
        except Exception as exc:  # the login itself succeeded; the keys can wait
            self._log.warning("adding SCRAM keys for %s failed: %s", user.address, exc)

    async def _find(self, username: str) -> UserRecord | None:
        # Garbage names are "unknown user" without bothering the store.
        if not username or len(username) > _MAX_USERNAME or "@" not in username:
            return None
        if any(ord(c) < 32 or c == "\x7f" or 0xD800 <= ord(c) < 0xE000 for c in username):
            return None  # controls, or bytes that were not UTF-8 (surrogate escapes)
        return await self.users.find_user(username)

    async def _maybe_rehash(self, user: UserRecord, password: str) -> str:
        """Upgrade an old hash to the current policy while we know the password; the hash
        the account has afterwards."""
        if self._on_rehash is None or not needs_rehash(user.password_hash, self.policy):
            return user.password_hash
        try:
            encoded = await asyncio.to_thread(hash_password, password, self.policy)
            await self._on_rehash(user, encoded)
        except Exception as exc:  # the login itself succeeded; a rehash can wait
            self._log.warning("password rehash for %s failed: %s", user.address, exc)
            return user.password_hash
        return encoded
