"""What a command ends with: its tagged reply, or the error that becomes one.

A handler returns a :class:`Reply` or raises :class:`CommandError` (a protocol outcome with
client-safe text) or a core error from :mod:`mailstead.core.errors`, which
:func:`error_reply` maps to RFC 5530 response codes in one place. Anything else is a bug:
the session logs it and answers ``NO [SERVERBUG]`` without a word of the exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailstead.core.errors import (
    AlreadyExists,
    InvalidName,
    MailsteadError,
    NotEmpty,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
    StoreError,
)


class Status(StrEnum):
    """The three results of a command (RFC 9051 §7.1)."""

    OK = "OK"
    NO = "NO"  # the command failed; the session is fine
    BAD = "BAD"  # the client erred (syntax, state); counts against the error budget


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's tagged reply: ``tag status [code] text``."""

    status: Status = Status.OK
    text: str = "completed"
    code: str | None = None
    sent: bool = False  # the handler already wrote its tagged reply (STARTTLS)


def done(text: str, code: str | None = None) -> Reply:
    """``OK`` with ``text`` (and a response code such as ``APPENDUID 3 7``)."""
    return Reply(Status.OK, text, code)


class CommandError(Exception):
    """A command failed with a protocol outcome; ``text`` is client-safe."""

    def __init__(self, status: Status, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def no(text: str, code: str | None = None) -> CommandError:
    """``raise no("Mailbox does not exist", "TRYCREATE")``."""
    return CommandError(Status.NO, text, code)


def bad(text: str, code: str | None = None) -> CommandError:
    return CommandError(Status.BAD, text, code)


class Disconnect(Exception):
    """End the session after what was already written (LOGOUT, BYE)."""


def error_reply(exc: MailsteadError) -> Reply:
    """The one place core errors become IMAP replies (RFC 5530 response codes)."""
    if isinstance(exc, NotFound):
        return Reply(Status.NO, "No such mailbox or message", "NONEXISTENT")
    if isinstance(exc, AlreadyExists):
        return Reply(Status.NO, "Mailbox already exists", "ALREADYEXISTS")
    if isinstance(exc, NotEmpty):
        # RFC 9051 §6.3.5: a \\Noselect mailbox with children cannot be deleted.
        return Reply(
            Status.NO, "Mailbox is \\Noselect and has children, delete them first", "INUSE"
        )
    if isinstance(exc, InvalidName):
        return Reply(Status.NO, "Invalid mailbox name", "CANNOT")
    if isinstance(exc, QuotaExceeded):  # APPEND, COPY: RFC 9208 §4.3.1
        return Reply(Status.NO, "Quota exceeded", "OVERQUOTA")
    if isinstance(exc, StorageUnavailable):
        return Reply(Status.NO, "Temporary failure, try again", "UNAVAILABLE")
    if isinstance(exc, StoreError):
        return Reply(Status.NO, "Operation failed", "SERVERBUG")
    return Reply(Status.NO, "Operation failed")
