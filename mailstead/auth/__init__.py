"""Credentials and SASL, shared by every protocol: hashing, mechanisms, throttling."""

from __future__ import annotations

from mailstead.auth.authenticator import Authenticator, UserLookup, UserRecord
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
    SUPPORTED_MECHANISMS,
    Challenge,
    Credentials,
    Mechanism,
    SaslCancelled,
    start_mechanism,
)
from mailstead.auth.throttle import Throttle, ThrottlePolicy

__all__ = [
    "DUMMY_HASH",
    "SUPPORTED_MECHANISMS",
    "Authenticator",
    "Challenge",
    "Credentials",
    "Mechanism",
    "PasswordPolicy",
    "PasswordRules",
    "SaslCancelled",
    "Throttle",
    "ThrottlePolicy",
    "UserLookup",
    "UserRecord",
    "WeakPassword",
    "check_new_password",
    "generate_password",
    "hash_password",
    "needs_rehash",
    "start_mechanism",
    "verify_password",
]
