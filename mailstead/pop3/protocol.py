"""POP3 wire format, sans-I/O: command lines in, response bytes out.

Nothing here touches a socket or an event loop; the session feeds it lines it has read and
writes the bytes it gets back. Everything is unit-tested with hypothesis, including the
multi-line encoders fed with chunks split at every byte.

- :func:`parse_command` turns one command line into a :class:`Command` (RFC 1939 §3,
  RFC 2449 §4) or raises :class:`~mailstead.pop3.errors.CommandError`.
- :func:`ok` / :func:`err` / :func:`multiline` build single- and multi-line responses with
  optional RFC 2449 §8 response codes (:class:`~mailstead.pop3.errors.ResponseCode`).
- :class:`Capability` names what CAPA can announce (RFC 2449 §6).
- :class:`DotStuffer` turns message bytes, in chunks of any size, into the body of a
  multi-line response: CRLF line endings, byte-stuffed leading dots, the final ``.CRLF``
  (RFC 1939 §3).
- :class:`LineLimiter` cuts a body after *n* lines for TOP (RFC 1939 §7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mailstead.pop3.errors import CommandError, ResponseCode

CRLF = b"\r\n"
TERMINATOR = b".\r\n"

#: RFC 2449 §4: keywords are 3 or 4 characters; arguments at most 40 octets each.
MAX_KEYWORD = 4
MAX_ARGUMENT = 40
#: Messages are numbered from 1; ten digits is far beyond any maildrop we would serve.
MAX_NUMBER_DIGITS = 10

_BARE_LF = re.compile(rb"(?<!\r)\n")


class Capability(StrEnum):
    """The capabilities CAPA can announce (RFC 2449 §6, RFC 2595 §4, RFC 3206,
    RFC 6856 §2), in the order it lists them. The value is the capability's tag; what
    follows the tag on the line, and when it is offered, is the session's business."""

    TOP = "TOP"  # RFC 2449 §6.1
    UIDL = "UIDL"  # RFC 2449 §6.8
    RESP_CODES = "RESP-CODES"  # RFC 2449 §6.4
    AUTH_RESP_CODE = "AUTH-RESP-CODE"  # RFC 3206
    PIPELINING = "PIPELINING"  # RFC 2449 §6.6
    USER = "USER"  # RFC 2449 §6.2
    SASL = "SASL"  # RFC 2449 §6.3
    STLS = "STLS"  # RFC 2595 §4
    UTF8 = "UTF8"  # RFC 6856 §2
    EXPIRE = "EXPIRE"  # RFC 2449 §6.7
    LOGIN_DELAY = "LOGIN-DELAY"  # RFC 2449 §6.5
    IMPLEMENTATION = "IMPLEMENTATION"  # RFC 2449 §6.9


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command. ``name`` is upper-case; ``args`` split on spaces.

    ``rest`` is everything after the keyword and one space, unsplit: PASS takes it whole
    because a password may contain spaces (RFC 1939 §7, PASS discussion).
    """

    name: str
    args: tuple[str, ...] = ()
    rest: str = ""


def parse_command(line: bytes) -> Command:
    """Parse one command line (with or without its CRLF).

    RFC 1939 §3: a case-insensitive keyword, then arguments separated by single spaces.
    We accept runs of spaces between arguments (clients in the wild send them) and a bare
    LF ending. Arguments are UTF-8 (RFC 6856 §2 lets USER/PASS carry UTF-8); anything else
    is a syntax error, as are control characters.
    """
    text_bytes = line.removesuffix(b"\n").removesuffix(b"\r")
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("command is not valid UTF-8") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise CommandError("control characters in command")
    keyword, _, rest = text.partition(" ")
    if not keyword:
        raise CommandError("empty command")
    if len(keyword) > MAX_KEYWORD or not keyword.isascii() or not keyword.isalnum():
        raise CommandError("unknown command")
    args = tuple(part for part in rest.split(" ") if part)
    return Command(keyword.upper(), args, rest)


def parse_number(text: str, *, allow_zero: bool = False) -> int:
    """A message number or line count: decimal digits only (RFC 1939 §3 "msg" argument)."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
        raise CommandError("invalid number")
    value = int(text)
    if value == 0 and not allow_zero:
        raise CommandError("invalid message number")
    return value


def _status(indicator: bytes, text: str, code: ResponseCode | None) -> bytes:
    # RFC 2449 §8: the response code is the first thing after the status indicator.
    body = f"[{code}] {text}" if code else text
    body = body.replace("\r", " ").replace("\n", " ")
    return indicator + (b" " + body.encode("utf-8") if body else b"") + CRLF


def ok(text: str = "", code: ResponseCode | None = None) -> bytes:
    return _status(b"+OK", text, code)


def err(text: str, code: ResponseCode | None = None) -> bytes:
    return _status(b"-ERR", text, code)


def continuation(data: bytes) -> bytes:
    """RFC 5034 §4: a SASL challenge is ``+`` SP base64 CRLF (``+`` alone when empty)."""
    return b"+ " + data + CRLF if data else b"+ " + CRLF


def multiline(first: bytes, lines: Iterable[bytes]) -> bytes:
    """A whole small multi-line response (CAPA, LIST, UIDL), stuffed and terminated."""
    out = bytearray(first)
    for line in lines:
        if line.startswith(b"."):
            out += b"."  # RFC 1939 §3 byte-stuffing
        out += line + CRLF
    out += TERMINATOR
    return bytes(out)


class DotStuffer:
    """Streaming encoder for a message in a multi-line response (RFC 1939 §3).

    Feed the stored bytes in chunks of any size; the concatenated output is the same
    whatever the split. Bare LF becomes CRLF (lines on the wire end in CRLF; stored
    messages are canonical CRLF already, so normally nothing changes), a line starting with
    ``.`` gets another ``.``, and :meth:`finish` closes an unterminated last line before
    the ``.CRLF`` terminator.
    """

    __slots__ = ("_at_line_start", "_pending_cr")

    def __init__(self) -> None:
        self._at_line_start = True
        self._pending_cr = False  # the last byte emitted was CR (an LF may follow)

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        lf = chunk.count(b"\n")
        if lf:
            crlf = chunk.count(b"\r\n")
            continues_crlf = self._pending_cr and chunk[0] == 0x0A
            if lf != crlf + continues_crlf:
                if continues_crlf:
                    chunk = b"\n" + _BARE_LF.sub(CRLF, chunk[1:])
                else:
                    chunk = _BARE_LF.sub(CRLF, chunk)
            chunk = chunk.replace(b"\n.", b"\n..")
        if self._at_line_start and chunk[0] == 0x2E:
            chunk = b"." + chunk
        self._at_line_start = chunk[-1] == 0x0A
        self._pending_cr = chunk[-1] == 0x0D
        return chunk

    def finish(self) -> bytes:
        """The end of the response: close an open last line, then ``.CRLF``."""
        if self._at_line_start:
            return TERMINATOR
        if self._pending_cr:
            return b"\n" + TERMINATOR
        return CRLF + TERMINATOR


class LineLimiter:
    """Passes through the first ``limit`` lines of a body fed in chunks (TOP, RFC 1939 §7).

    A line ends at LF; an unterminated last line counts as a line. :attr:`done` turns true
    once the limit is reached, so the caller can stop reading the message.
    """

    __slots__ = ("_remaining",)

    def __init__(self, limit: int) -> None:
        self._remaining = limit

    @property
    def done(self) -> bool:
        return self._remaining <= 0

    def feed(self, chunk: bytes) -> bytes:
        if self._remaining <= 0:
            return b""
        count = chunk.count(b"\n")
        if count < self._remaining:
            self._remaining -= count
            return chunk
        end = -1
        for _ in range(self._remaining):
            end = chunk.index(b"\n", end + 1)
        self._remaining = 0
        return chunk[: end + 1]


def find_header_end(data: bytes, *, at_start: bool = True) -> int | None:
    """Offset just past the blank line ending the header, or None if not in ``data``.

    ``at_start`` says ``data`` begins the message, where a leading blank line means an
    empty header. Only for messages whose stored structure is missing; normally TOP uses
    the parsed root part's ``header_end`` and never scans.
    """
    if at_start and data.startswith(b"\r\n"):
        return 2
    if at_start and data.startswith(b"\n"):
        return 1
    hits = [pos + len(sep) for sep in (b"\n\r\n", b"\n\n") if (pos := data.find(sep)) >= 0]
    return min(hits) if hits else None
