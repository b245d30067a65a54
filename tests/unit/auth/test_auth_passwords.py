"""argon2id hashing with cheap parameters (the policy is injectable for exactly this)."""

from __future__ import annotations

import asyncio

from mailstead.auth.passwords import (
    DEFAULT_POLICY,
    DUMMY_HASH,
    READABLE_ALPHABET,
    PasswordPolicy,
    dummy_hash,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)

FAST = PasswordPolicy(time_cost=1, memory_cost=64, parallelism=1)


async def test_hash_and_verify() -> None:
    encoded = hash_password("correct horse", FAST)
    assert encoded.startswith("$argon2id$")
    assert await verify_password(encoded, "correct horse")
    assert not await verify_password(encoded, "wrong horse")


async def test_malformed_hash_is_a_mismatch() -> None:
    assert not await verify_password("not-a-hash", "x")
    assert not await verify_password("", "x")


async def test_verify_runs_off_the_loop() -> None:
    """The loop keeps ticking while several verifications run."""
    encoded = hash_password("pw", PasswordPolicy(time_cost=2, memory_cost=4096))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(verify_password(encoded, "pw") for _ in range(4)))
    task.cancel()
    assert all(results)
    assert ticks > 4


def test_needs_rehash() -> None:
    encoded = hash_password("pw", FAST)
    assert not needs_rehash(encoded, FAST)
    assert needs_rehash(encoded, DEFAULT_POLICY)
    assert needs_rehash("garbage", FAST)


def test_dummy_hash_matches_policy_cost() -> None:
    assert not needs_rehash(DUMMY_HASH, DEFAULT_POLICY)
    assert dummy_hash(DEFAULT_POLICY) == DUMMY_HASH
    assert not needs_rehash(dummy_hash(FAST), FAST)


def test_generate_password() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == 20
        assert set(password) <= set(READABLE_ALPHABET)
    assert not set("0O1lI") & set(READABLE_ALPHABET)
    assert len(generate_password(32)) == 32
