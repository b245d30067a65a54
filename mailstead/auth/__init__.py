"""Credentials and SASL, shared by every protocol: hashing, mechanisms, throttling."""

from __future__ import annotations

from mailstead.auth.authenticator import Authenticator, UserLookup, UserRecord
from mailstead.auth.exchange import SaslLogin, authenticate, start_mechanism
from mailstead.auth.password_rules import PasswordRules, WeakPassword, check_new_password
from mailstead.auth.passwords import (
    DUMMY_HASH,
    PasswordPolicy,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from mailstead.auth.sasl import (
    Challenge,
    Credentials,
    Mechanism,
    SaslCancelled,
    SaslMalformed,
    SaslRefused,
    UnknownMechanism,
)
from mailstead.auth.scram_keys import ScramKeys, derive_keys
from mailstead.auth.throttle import Throttle, ThrottlePolicy

__all__ = [
    "DUMMY_HASH",
    "Authenticator",
    "Challenge",
    "Credentials",
    "Mechanism",
    "PasswordPolicy",
    "PasswordRules",
    "SaslCancelled",
    "SaslLogin",
    "SaslMalformed",
    "SaslRefused",
    "ScramKeys",
    "Throttle",
    "ThrottlePolicy",
    "UnknownMechanism",
    "UserLookup",
    "UserRecord",
    "WeakPassword",
    "authenticate",
    "check_new_password",
    "derive_keys",
    "generate_password",
    "hash_password",
    "needs_rehash",
    "start_mechanism",
    "verify_password",
]
