"""Password hashing with argon2id, verified off the event loop.

argon2id with OWASP's minimum (19 MiB, t=2, p=1) costs tens of milliseconds of CPU; done on
the loop it would stall every other connection, so verification runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailstead.auth.scram_keys import derive_keys

# No 0/O, 1/l/I: the first postmaster password is read off a terminal and typed elsewhere.
READABLE_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """argon2id cost parameters (OWASP Password Storage Cheat Sheet minimum by default)."""

    time_cost: int = 2
    memory_cost: int = 19456  # KiB
    parallelism: int = 1


DEFAULT_POLICY = PasswordPolicy()

# Verified against when the user does not exist, so an unknown account costs as much time as a
# wrong password and timing does not reveal which accounts exist. Hash of a random string
# nobody knows, with DEFAULT_POLICY's parameters (verification cost comes from the hash).
DUMMY_HASH = "$argon2id$v=19$m=19456,t=2,p=1$t5UgxhoD9GB2Rul0N2wneA$SLRFdvkBc/vVh6y5U6zD1Ycexdc1G07AKLgKGIgOrlQ"  # noqa: E501


@functools.lru_cache(maxsize=8)
def _hasher(policy: PasswordPolicy) -> PasswordHasher:
    return PasswordHasher(
        time_cost=policy.time_cost,
        memory_cost=policy.memory_cost,
        parallelism=policy.parallelism,
        type=Type.ID,
    )


def hash_password(password: str, policy: PasswordPolicy = DEFAULT_POLICY) -> str:
    """Encoded argon2id hash (PHC string). Blocking: call via asyncio.to_thread on the loop."""
    return _hasher(policy).hash(password)


@dataclass(frozen=True, slots=True)
class NewPassword:
    """What the store keeps for a password being set: its argon2id hash and, when SCRAM is
    on, its SCRAM-SHA-256 keys (decision 0026). Never the password itself."""

    hash: str
    scram: str | None


def new_password(
    password: str, policy: PasswordPolicy = DEFAULT_POLICY, scram_iterations: int | None = None
) -> NewPassword:
    """Hash ``password`` (and derive its SCRAM keys when ``scram_iterations`` is given).
    Blocking: call via asyncio.to_thread on the loop."""
    scram = None
    if scram_iterations is not None:
        scram = derive_keys(password, scram_iterations).encode()
    return NewPassword(hash_password(password, policy), scram)


@functools.lru_cache(maxsize=8)
def dummy_hash(policy: PasswordPolicy = DEFAULT_POLICY) -> str:
    """A hash with ``policy``'s cost, for timing-equal checks of unknown users."""
    if policy == DEFAULT_POLICY:
        return DUMMY_HASH
    return hash_password(secrets.token_urlsafe(24), policy)


def _verify(encoded: str, password: str) -> bool:
    # A password that was not UTF-8 on the wire reaches here with its bytes kept as
    # surrogate escapes: compared as those bytes, it is simply wrong (and counted), never
    # an encoding error.
    secret = password.encode("utf-8", "surrogateescape")
    try:
        return _hasher(DEFAULT_POLICY).verify(encoded, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(encoded: str, password: str) -> bool:
    """True if ``password`` matches; a malformed hash counts as a mismatch, never an error."""
    return await asyncio.to_thread(_verify, encoded, password)


def needs_rehash(encoded: str, policy: PasswordPolicy = DEFAULT_POLICY) -> bool:
    """True if ``encoded`` was made with other parameters (rehash after a successful login)."""
    try:
        return _hasher(policy).check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        return True


def generate_password(length: int = 20) -> str:
    """Random password from a readable alphabet (about 5.8 bits per character)."""
    if length < 8:
        raise ValueError("a generated password needs at least 8 characters")
    return "".join(secrets.choice(READABLE_ALPHABET) for _ in range(length))
