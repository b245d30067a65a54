"""Protocol-neutral errors that carry their outcome.

Each protocol turns these into its own reply in one place (SMTP code + enhanced code,
IMAP NO/BAD + response code, POP3 -ERR + response code). The message given to a client
is generic; details for the operator go to the log with the connection id.
"""

from __future__ import annotations


class MailsteadError(Exception):
    """Base of every error mailstead raises on purpose."""


class ConfigError(MailsteadError):
    """A configuration file or value is wrong; names the file and the key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.reason = message
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class StoreError(MailsteadError):
    """A mailstore operation failed. ``temporary`` says whether a retry may succeed."""

    temporary: bool = False


class NotFound(StoreError):
    """The domain, user, mailbox or message does not exist."""


class AlreadyExists(StoreError):
    """Something with that name already exists."""


class InvalidName(StoreError):
    """A name (mailbox, address, domain) is not acceptable."""


class NotEmpty(StoreError):
    """The object still has dependents (a domain with users, a mailbox with children)."""


class QuotaExceeded(StoreError):
    """The account is over its storage quota; temporary, since the user can free space."""

    temporary = True


class ChangesTooMany(StoreError):
    """One write changed more objects than a client takes in one answer: changes since a
    state cannot be paged there (JMAP's cannotCalculateChanges, RFC 8620 §5.2)."""


class TooMany(StoreError):
    """A write would take an account past a limit on how many of something it may keep
    (metadata entries); nothing was changed, and removing some makes room again."""


class StorageUnavailable(StoreError):
    """Disk or database failure: nothing was changed, the client should retry later."""

    temporary = True


class StorageFull(StorageUnavailable):
    """The file system holding the mailstore is full (or its quota reached): nothing was
    changed. SMTP says ``452 4.3.1`` (RFC 5321 §4.2.2 "insufficient system storage",
    RFC 3463 X.3.1), not the generic ``451 4.3.0``, so a sender's logs say what happened."""


class AuthError(MailsteadError):
    """Authentication failed (bad credentials, throttled, or mechanism misuse)."""


class AuthThrottled(AuthError):
    """Too many failures for this account or address; try again later."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins, retry in {retry_after:.0f}s")


class PermissionDenied(MailsteadError):
    """The caller is who it says, but may not do this (an API token's scope)."""
