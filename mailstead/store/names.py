"""Mailbox name rules: Unicode names that IMAP can carry and that stay inside the account."""

from __future__ import annotations

import unicodedata

from mailstead.core.errors import InvalidName

SEPARATOR = "/"
MAX_NAME_LENGTH = 512
MAX_DEPTH = 32


def normalize_mailbox_name(name: str) -> str:
    """Canonical form: NFC (RFC 5198), ``INBOX`` in any case as ``INBOX`` (RFC 9051 §5.1)."""
    name = unicodedata.normalize("NFC", name)
    head, sep, rest = name.partition(SEPARATOR)
    if head.upper() == "INBOX":
        name = "INBOX" + sep + rest
    return name


def validate_mailbox_name(name: str) -> str:
    """Return the normalised name or raise InvalidName saying what is wrong."""
    name = normalize_mailbox_name(name)
    if not name:
        raise InvalidName("mailbox name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName("mailbox name is too long")
    for ch in name:
        # RFC 9051 §5.1: wildcards cannot be in names; control characters never belong.
        if ch in "*%" or ord(ch) < 0x20 or ch == "\x7f" or unicodedata.category(ch) == "Cc":
            raise InvalidName(f"mailbox name contains a forbidden character {ch!r}")
    parts = name.split(SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise InvalidName("mailbox hierarchy is too deep")
    for part in parts:
        if not part:
            raise InvalidName("mailbox name has an empty level (leading, trailing or double '/')")
        if part in (".", ".."):
            raise InvalidName("mailbox name levels cannot be '.' or '..'")
        if part != part.strip():
            raise InvalidName("mailbox name levels cannot start or end with spaces")
    return name


def parents_of(name: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def is_inbox(name: str) -> bool:
    return normalize_mailbox_name(name) == "INBOX"
