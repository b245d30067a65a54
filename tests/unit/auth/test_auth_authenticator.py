"""Authenticator with an in-memory user lookup, fast hashes and a recorded sleep."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mailstead.auth.authenticator import Authenticator, ScramPolicy, UserRecord
from mailstead.auth.passwords import PasswordPolicy, hash_password
from mailstead.auth.scram_keys import ScramKeys, derive_keys
from mailstead.auth.throttle import Throttle, ThrottlePolicy
from mailstead.core.errors import AuthError, AuthThrottled

FAST = PasswordPolicy(time_cost=1, memory_cost=64, parallelism=1)


@dataclass
class User:
    address: str
    password_hash: str
    disabled: bool = False


class MemoryUsers:
    def __init__(self, *users: User) -> None:
        self.users = {u.address.lower(): u for u in users}
        self.lookups: list[str] = []

    async def find_user(self, address: str) -> User | None:
        self.lookups.append(address)
        return self.users.get(address.lower())


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make(
    *users: User, throttle: Throttle | None = None
) -> tuple[Authenticator, MemoryUsers, Sleeps]:
    lookup = MemoryUsers(*users)
    sleeps = Sleeps()
    if throttle is None:
        throttle = Throttle(clock=Clock())
    auth = Authenticator(lookup, throttle, FAST, sleep=sleeps)
    return auth, lookup, sleeps


BOB = User("bob@example.org", hash_password("right", FAST))


async def test_success_returns_user() -> None:
    auth, _, sleeps = make(BOB)
    assert await auth.authenticate("bob@example.org", "right", "192.0.2.1") is BOB
    assert sleeps.calls == []


async def test_unknown_user_and_wrong_password_look_identical() -> None:
    auth, lookup, _ = make(BOB, User("off@example.org", hash_password("right", FAST), True))
    errors = []
    for name, password in [
        ("bob@example.org", "wrong"),
        ("nobody@example.org", "right"),
        ("off@example.org", "right"),  # disabled, even with the right password
        ("no-at-sign", "x"),
    ]:
        with pytest.raises(AuthError) as info:
            await auth.authenticate(name, password, "192.0.2.1")
        assert type(info.value) is AuthError
        errors.append(str(info.value))
    assert len(set(errors)) == 1
    assert "no-at-sign" not in lookup.lookups  # garbage never reaches the store


async def test_unknown_user_costs_a_dummy_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    import mailstead.auth.authenticator as module

    verified: list[str] = []

    async def spy(encoded: str, password: str) -> bool:
        verified.append(encoded)
        return False

    monkeypatch.setattr(module, "verify_password", spy)
    auth, _, _ = make(BOB)
    with pytest.raises(AuthError):
        await auth.authenticate("nobody@example.org", "x", "192.0.2.1")
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


async def test_throttling_kicks_in() -> None:
    clock = Clock()
    throttle = Throttle(ThrottlePolicy(delay_after=2, lock_after=4), clock=clock)
    auth, _, sleeps = make(BOB, throttle=throttle)
    for _ in range(4):
        with pytest.raises(AuthError):
            await auth.authenticate("bob@example.org", "wrong", "192.0.2.1")
        clock.now += 10
    assert sleeps.calls == [1.0, 2.0]  # tarpit after the 3rd and 4th failure
    with pytest.raises(AuthThrottled):
        await auth.authenticate("bob@example.org", "right", "198.51.100.1")  # locked account


async def test_success_resets_account_counter() -> None:
    clock = Clock()
    throttle = Throttle(ThrottlePolicy(delay_after=2, lock_after=4), clock=clock)
    auth, _, _ = make(BOB, throttle=throttle)
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.authenticate("bob@example.org", "wrong", "192.0.2.1")
        clock.now += 10
    await auth.authenticate("bob@example.org", "right", "198.51.100.1")
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.authenticate("bob@example.org", "wrong", "198.51.100.1")
        clock.now += 10


async def test_rehash_hook_upgrades_old_hashes() -> None:
    old = User("old@example.org", hash_password("pw", PasswordPolicy(1, 32, 1)))
    upgraded: list[tuple[str, str]] = []

    async def on_rehash(user: UserRecord, encoded: str) -> None:
        upgraded.append((user.address, encoded))

    auth = Authenticator(
        MemoryUsers(old), Throttle(clock=Clock()), FAST, on_rehash=on_rehash, sleep=Sleeps()
    )
    await auth.authenticate("old@example.org", "pw", "192.0.2.1")
    assert upgraded and upgraded[0][0] == "old@example.org"
    assert "m=64,t=1,p=1" in upgraded[0][1]


# -- SCRAM (decision 0026) ------------------------------------------------------------------------


@dataclass
class ScramUser:
    address: str
    password_hash: str
    disabled: bool = False
    scram_sha256: str | None = None


class KeyStore:
    """The store's add_scram_keys: compare-and-set on the password hash."""

    def __init__(self, users: MemoryUsers) -> None:
        self.users = users
        self.added: list[str] = []

    async def add_scram_keys(self, address: str, password_hash: str, scram: str) -> bool:
        user = self.users.users.get(address.lower())
        if user is None or user.password_hash != password_hash:
            return False
        user.scram_sha256 = scram  # type: ignore[attr-defined]
        self.added.append(address)
        return True


def make_scram(*users: ScramUser) -> tuple[Authenticator, MemoryUsers, KeyStore]:
    lookup = MemoryUsers(*users)  # type: ignore[arg-type]
    keys = KeyStore(lookup)
    auth = Authenticator(lookup, Throttle(clock=Clock()), FAST, scram=ScramPolicy(4096),
                         scram_keys=keys, sleep=Sleeps())
    return auth, lookup, keys


def test_mechanisms_offered() -> None:
    plain, _, _ = make()
    assert plain.mechanisms({"tls-unique": b"x"}) == ("PLAIN", "LOGIN")
    scram, _, _ = make_scram()
    assert scram.mechanisms({}) == ("SCRAM-SHA-256", "PLAIN", "LOGIN")
    assert scram.mechanisms({"tls-server-end-point": b"x"}) == (
        "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN")


async def test_scram_lookup_real_mock_and_outcome() -> None:
    keys = derive_keys("pw", 4096)
    carol = ScramUser("carol@example.org", hash_password("pw", FAST), scram_sha256=keys.encode())
    dave = ScramUser("dave@example.org", hash_password("pw", FAST))  # from before SCRAM
    auth, _, _ = make_scram(carol, dave)
    found = await auth.scram_begin("carol@example.org", "192.0.2.1")
    assert found.real and found.keys == keys
    assert await auth.scram_end(found, True, "192.0.2.1") is carol
    with pytest.raises(AuthError):
        await auth.scram_end(found, False, "192.0.2.1")
    # Unknown account and an account without keys: mock keys, stable per name, no login.
    unknown = await auth.scram_begin("nobody@example.org", "192.0.2.1")
    assert not unknown.real
    assert unknown.keys == (await auth.scram_begin("nobody@example.org", "192.0.2.1")).keys
    no_keys = await auth.scram_begin("dave@example.org", "192.0.2.1")
    assert not no_keys.real and no_keys.keys.iterations == 4096
    for lookup in (unknown, no_keys):
        with pytest.raises(AuthError):
            await auth.scram_end(lookup, True, "192.0.2.1")
    carol.disabled = True
    with pytest.raises(AuthError):
        await auth.scram_end(await auth.scram_begin("carol@example.org", "192.0.2.1"), True,
                             "192.0.2.1")


async def test_scram_failures_are_throttled_like_passwords() -> None:
    carol = ScramUser("carol@example.org", hash_password("pw", FAST),
                      scram_sha256=derive_keys("pw", 4096).encode())
    auth, _, _ = make_scram(carol)
    auth.throttle = Throttle(ThrottlePolicy(delay_after=1, lock_after=2), clock=Clock())
    for _ in range(2):
        lookup = await auth.scram_begin("carol@example.org", "192.0.2.9")
        with pytest.raises(AuthError):
            await auth.scram_end(lookup, False, "192.0.2.9")
    with pytest.raises(AuthThrottled):
        await auth.scram_begin("carol@example.org", "192.0.2.9")


async def test_password_login_adds_missing_keys_once() -> None:
    dave = ScramUser("dave@example.org", hash_password("pw", FAST))
    auth, _, store = make_scram(dave)
    with pytest.raises(AuthError):
        await auth.authenticate("dave@example.org", "wrong", "192.0.2.1")
    assert store.added == []  # only the right password may derive keys
    await auth.authenticate("dave@example.org", "pw", "192.0.2.1")
    assert store.added == ["dave@example.org"] and dave.scram_sha256 is not None
    stored = ScramKeys.decode(dave.scram_sha256)
    assert stored == derive_keys("pw", 4096, salt=stored.salt)
    await auth.authenticate("dave@example.org", "pw", "192.0.2.1")
    assert store.added == ["dave@example.org"]  # keys in place: not derived again


async def test_request_logins_verify_a_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP Basic sends the password with every request: the first is verified, the next
    ones for the same stored hash are not; a wrong password, a changed password or a
    disabled account are never taken from the cache."""
    import mailstead.auth.authenticator as module

    real = module.verify_password
    verified: list[str] = []

    async def spy(encoded: str, password: str) -> bool:
        verified.append(password)
        return await real(encoded, password)

    monkeypatch.setattr(module, "verify_password", spy)
    user = User("bob@example.org", hash_password("right", FAST))
    auth, _, _ = make(user)
    for _ in range(3):
        assert await auth.authenticate_request("bob@example.org", "right", "192.0.2.1") is user
    assert verified == ["right"]
    with pytest.raises(AuthError):
        await auth.authenticate_request("bob@example.org", "wrong", "192.0.2.1")
    assert verified == ["right", "wrong"]
    user.password_hash = hash_password("new", FAST)  # the password changed
    with pytest.raises(AuthError):
        await auth.authenticate_request("bob@example.org", "right", "192.0.2.1")
    user.password_hash = hash_password("right", FAST)
    await auth.authenticate_request("bob@example.org", "right", "192.0.2.1")
    user.disabled = True
    with pytest.raises(AuthError):
        await auth.authenticate_request("bob@example.org", "right", "192.0.2.1")


async def test_request_logins_are_throttled_before_the_cache() -> None:
    clock = Clock()
    throttle = Throttle(ThrottlePolicy(delay_after=1, lock_after=2), clock=clock)
    auth, _, _ = make(BOB, throttle=throttle)
    await auth.authenticate_request("bob@example.org", "right", "192.0.2.1")
    for _ in range(2):
        with pytest.raises(AuthError):
            await auth.authenticate_request("bob@example.org", "wrong", "192.0.2.1")
    with pytest.raises(AuthThrottled):
        await auth.authenticate_request("bob@example.org", "right", "192.0.2.1")
