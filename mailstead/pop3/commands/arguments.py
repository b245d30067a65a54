"""The grammars: each turns a command's argument words into a typed, frozen record.

Pure functions of a :class:`~mailstead.pop3.protocol.Command`; a malformed argument
raises :class:`~mailstead.pop3.errors.CommandError`, which counts against the error
budget. Whether the message a number names exists is the handler's question, not the
grammar's. Extra words after the arguments a command takes are ignored, as they always
have been here: RFC 1939 §3 defines what a command's arguments are, not that a server
must refuse more, and refusing would only break lenient clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailstead.pop3.errors import CommandError
from mailstead.pop3.protocol import Command, parse_number


@dataclass(frozen=True, slots=True)
class MessageNumber:
    """A message in the maildrop, numbered from 1 (RFC 1939 §5 "msg")."""

    number: int


@dataclass(frozen=True, slots=True)
class TopArguments:
    """TOP msg n (RFC 1939 §7): the message, and how many body lines after its header."""

    number: int
    lines: int


@dataclass(frozen=True, slots=True)
class UserName:
    """USER name (RFC 1939 §7); UTF-8 after the UTF8 command (RFC 6856 §2)."""

    name: str


@dataclass(frozen=True, slots=True)
class Password:
    """PASS string (RFC 1939 §7). Never shown in a repr, so never in a log or traceback."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SaslStart:
    """AUTH mechanism [initial-response] (RFC 5034 §4). The initial response carries
    credentials (PLAIN), so it is never shown in a repr."""

    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)


def no_arguments(command: Command) -> None:
    """STAT, NOOP, RSET, QUIT (RFC 1939 §5-§6), CAPA (RFC 2449 §5), STLS (RFC 2595 §4),
    UTF8 (RFC 6856 §2): no record. Extra words are ignored (see the module docstring)."""
    return None


def message_number(command: Command) -> MessageNumber:
    """RETR msg, DELE msg (RFC 1939 §5): the number is required."""
    if not command.args:
        raise CommandError("message number required")
    return MessageNumber(parse_number(command.args[0]))


def optional_message_number(command: Command) -> MessageNumber | None:
    """LIST [msg] (RFC 1939 §5), UIDL [msg] (RFC 1939 §7): one message, or None for the
    listing of every message not marked deleted."""
    return MessageNumber(parse_number(command.args[0])) if command.args else None


def top_arguments(command: Command) -> TopArguments:
    """TOP msg n (RFC 1939 §7): both are required; n may be 0 (the header alone)."""
    if len(command.args) != 2:
        raise CommandError("syntax: TOP msg lines")
    return TopArguments(
        parse_number(command.args[0]), parse_number(command.args[1], allow_zero=True)
    )


def user_name(command: Command) -> UserName:
    """USER name (RFC 1939 §7): the rest of the line without its surrounding spaces."""
    name = command.rest.strip()
    if not name:
        raise CommandError("user name required")
    return UserName(name)


def password(command: Command) -> Password:
    """PASS string (RFC 1939 §7): the whole rest of the line, since a password may
    contain spaces. Empty is a password like any other (and fails like one)."""
    return Password(command.rest)


def sasl_start(command: Command) -> SaslStart | None:
    """AUTH mechanism [initial-response] (RFC 5034 §4). Bare AUTH (None) asks for the
    list of mechanisms: not in RFC 5034, but some clients probe with it."""
    if not command.args:
        return None
    if len(command.args) > 2:
        raise CommandError("syntax: AUTH mechanism [initial-response]")
    initial = command.args[1].encode("ascii", "replace") if len(command.args) == 2 else None
    return SaslStart(command.args[0], initial)
