"""What a password a person chooses must be: long enough, not their own name, not common.

The rules follow NIST SP 800-63B (rev. 4 §3.1.1.2; docs/decisions/0015): a minimum
length instead of composition rules ("one digit, one symbol"), which people meet with
``Password1!``; a maximum far above any passphrase; and a check against passwords that
crackers try first — a list of passwords seen in breaches, and the names an attacker
already knows from the address itself.

:func:`check_new_password` is pure and cheap (one set lookup per rule); every place that
sets a password a person chose calls it before hashing: ``mailstead user add`` and ``user
passwd``, the admin API, a user changing their own password. Generated passwords
(:func:`mailstead.auth.passwords.generate_password`) are random and pass.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from dataclasses import dataclass

from mailstead.core.errors import InvalidName

#: NIST SP 800-63B rev. 3 asks at least 8, rev. 4 15 for a single factor; 10 is the
#: default, which an admin may raise (the decision record argues it).
DEFAULT_MIN_LENGTH = 10
#: argon2 hashes any length in the same time, but a bound keeps a request or a stdin line
#: from feeding it megabytes; 1024 is far beyond any passphrase a person types.
MAX_LENGTH = 1024
#: Digits and symbols around a common password ("Password2024!") are the first thing a
#: cracker adds to a list: with them stripped, a listed password that is still most of the
#: whole counts as that password.
_DECORATION_CHARS = string.digits + string.punctuation + " "
#: A name shorter than this is not looked for inside a password (every password holds "a").
_MIN_NAME = 3


class WeakPassword(InvalidName):
    """A chosen password breaks a rule; the message says which, in words for a person."""


@dataclass(frozen=True, slots=True)
class PasswordRules:
    """The policy for passwords people choose (``[auth]`` password_* settings)."""

    min_length: int = DEFAULT_MIN_LENGTH
    max_length: int = MAX_LENGTH
    check_common: bool = True  # refuse passwords from the breached-password list


def check_new_password(password: str, address: str, rules: PasswordRules) -> None:
    """Return if ``password`` may be set for the account ``address``; raise
    :class:`WeakPassword` with the reason otherwise. Never logs or echoes the password."""
    length = len(password)
    if not password:
        raise WeakPassword("the password is empty")
    if length < rules.min_length:
        raise WeakPassword(
            f"the password is too short: use at least {rules.min_length} characters "
            "(a few unrelated words make a good one)"
        )
    if length > rules.max_length:
        raise WeakPassword(f"the password is too long: at most {rules.max_length} characters")
    for char in password:
        # NUL separates the fields of SASL PLAIN (RFC 4616 §2), CR and LF end an IMAP or
        # POP3 command line; a surrogate is a byte that was not UTF-8 text. None of them can
        # be typed into a mail client's password field and then sent intact.
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise WeakPassword(
                "the password contains a control character or bytes that are not UTF-8 text"
            )
    lowered = password.casefold()
    for name in _names_of(address):
        if len(name) >= _MIN_NAME and name in lowered and 2 * len(name) >= length:
            raise WeakPassword(
                "the password is too close to the account's address: "
                "an attacker tries the name first"
            )
    if rules.check_common and _is_common(lowered):
        raise WeakPassword(
            "the password is one of the most common passwords (from lists of passwords "
            "seen in breaches): choose another"
        )


def _names_of(address: str) -> set[str]:
    """The address, its local part, its domain and the domain's labels but the last: what
    anybody who knows the address would guess first."""
    folded = address.strip().casefold()
    local, _, domain = folded.rpartition("@")
    names = {folded, local, domain}
    labels = domain.split(".")
    names.update(labels[:-1] if len(labels) > 1 else labels)
    names.discard("")
    return names


def _is_common(lowered: str) -> bool:
    """In the list as it is, or as most of it with digits and symbols added around."""
    common = common_passwords()
    if lowered in common:
        return True
    core = lowered.strip(_DECORATION_CHARS)
    return 2 * len(core) >= len(lowered) and core in common


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most frequent passwords of Mark Burnett's 10-million-password corpus,
    as the zxcvbn package ships them (its ``frequency_lists`` data module; MIT licence),
    lower-cased. Loaded once, on first use (about 50 ms), then one set lookup a check."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    entries = FREQUENCY_LISTS["passwords"]
    # Older zxcvbn releases ship the list as one comma-separated string.
    words = entries.split(",") if isinstance(entries, str) else entries
    return frozenset(word.casefold() for word in words if word)
