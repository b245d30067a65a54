"""SCRAM-SHA-256 credentials: derived from a password once, stored, and read back.

RFC 5802 §3 lets the server keep, per account, only ``StoredKey = H(ClientKey)`` and
``ServerKey`` (with the salt and the iteration count) instead of the password: enough to
check a client's proof and to prove itself to the client, not enough to log in (a login
needs ``ClientKey``, which only the password or an observed exchange plus ``StoredKey``
yields; see docs/decisions/0026). They are derived with PBKDF2-HMAC-SHA-256, far cheaper
to guess against than argon2id, which is why storing them is a switch (``auth.scram``).

The stored form is PostgreSQL's (``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``,
base64), so an operator recognises it and a tool can move it. This module is pure: the
key derivation blocks for milliseconds, so the event loop calls it through a thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass, field

PREFIX = "SCRAM-SHA-256"
MIN_ITERATIONS = 4096  # RFC 7677 §4: "at least 4096"
MAX_ITERATIONS = 10_000_000  # a stored count above this is corrupt (and a DoS on clients)
SALT_BYTES = 16  # as in the RFC 7677 example; NIST SP 800-132 asks for at least 128 bits
_KEY_BYTES = 32  # SHA-256


class ScramKeyError(ValueError):
    """A stored SCRAM credential that cannot be read (corrupt or foreign format)."""


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """What the server keeps per account for SCRAM-SHA-256 (RFC 5802 §3)."""

    iterations: int
    salt: bytes
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def encode(self) -> str:
        """The stored text (PostgreSQL's format)."""
        b64 = base64.b64encode
        return (
            f"{PREFIX}${self.iterations}:{b64(self.salt).decode()}"
            f"${b64(self.stored_key).decode()}:{b64(self.server_key).decode()}"
        )

    @classmethod
    def decode(cls, text: str) -> ScramKeys:
        """Read :meth:`encode`'s form; ScramKeyError for anything else."""
        try:
            prefix, params, keys = text.split("$")
            count, salt_b64 = params.split(":")
            stored_b64, server_b64 = keys.split(":")
            iterations = int(count)
            salt = base64.b64decode(salt_b64, validate=True)
            stored_key = base64.b64decode(stored_b64, validate=True)
            server_key = base64.b64decode(server_b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ScramKeyError("malformed SCRAM credential") from exc
        if prefix != PREFIX:
            raise ScramKeyError(f"not a {PREFIX} credential")
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS or not salt:
            raise ScramKeyError("SCRAM credential with an impossible iteration count or salt")
        if len(stored_key) != _KEY_BYTES or len(server_key) != _KEY_BYTES:
            raise ScramKeyError("SCRAM credential with keys of the wrong length")
        return cls(iterations, salt, stored_key, server_key)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def keys_from_salted_password(salted: bytes, salt: bytes, iterations: int) -> ScramKeys:
    """RFC 5802 §3: ClientKey, StoredKey = H(ClientKey), ServerKey from SaltedPassword."""
    client_key = hmac_sha256(salted, b"Client Key")
    return ScramKeys(
        iterations=iterations,
        salt=salt,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=hmac_sha256(salted, b"Server Key"),
    )


def derive_keys(password: str, iterations: int, salt: bytes | None = None) -> ScramKeys:
    """The keys for ``password`` with a fresh random salt. Blocking (PBKDF2): run it in a
    worker thread from the event loop."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"SCRAM iteration count must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    secret = prepare_password(password)
    salted = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, _KEY_BYTES)
    return keys_from_salted_password(salted, salt, iterations)


def mock_keys(secret: bytes, username: str, iterations: int) -> ScramKeys:
    """Keys for an account that has none (unknown, or not yet given keys): RFC 5802 §5.1
    asks for a salt that is the same on every attempt for the same name, so the
    server-first message does not tell which accounts exist. Nobody's proof matches."""
    seed = hmac_sha256(secret, username.casefold().encode("utf-8", "surrogateescape"))
    return ScramKeys(
        iterations=iterations,
        salt=seed[:SALT_BYTES],
        stored_key=hmac_sha256(seed, b"stored"),
        server_key=hmac_sha256(seed, b"server"),
    )


def prepare_password(password: str) -> bytes:
    """The password as SCRAM hashes it: SASLprep'd (RFC 5802 §2.2), or, when SASLprep
    refuses it (prohibited characters), its plain UTF-8 as PostgreSQL does, so that every
    password that can log in with PLAIN also gets keys."""
    try:
        prepared = saslprep(password)
    except ValueError:
        prepared = password
    return prepared.encode("utf-8", "surrogateescape")


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep, the stringprep profile for passwords (stored strings: unassigned
    code points are refused). ValueError when the string is not allowed."""
    # RFC 4013 §2.1 mapping: non-ASCII spaces to SPACE, "commonly mapped to nothing" removed.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    # §2.2 normalization: form KC.
    normal = unicodedata.normalize("NFKC", mapped)
    if not normal:
        return normal
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,  # §2.5 unassigned code points, for stored strings
    )
    for c in normal:
        if any(check(c) for check in prohibited):
            raise ValueError("prohibited character in SASLprep input")
    # §2.4 bidirectional characters (RFC 3454 §6).
    if any(stringprep.in_table_d1(c) for c in normal):
        if any(stringprep.in_table_d2(c) for c in normal):
            raise ValueError("mixed bidirectional text in SASLprep input")
        if not (stringprep.in_table_d1(normal[0]) and stringprep.in_table_d1(normal[-1])):
            raise ValueError("right-to-left text must start and end with such a character")
    return normal
