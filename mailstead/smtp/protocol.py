"""The SMTP wire format as pure functions and small state machines: no sockets, no asyncio.

The primitives every command shares; each command's own argument grammar, built on them,
is in :mod:`mailstead.smtp.grammar`.

- :func:`parse_command` splits a command line into verb and argument;
  :func:`decode_argument` reads an argument as UTF-8.
- :func:`parse_params` reads ESMTP parameters (RFC 5321 §4.1.2 esmtp-param).
- :class:`DataDecoder` turns DATA bytes into the message: the end-of-data marker, size
  counting (RFC 1870 §6.3), bare-LF detection and dot-unstuffing (RFC 5321 §4.5.2), with
  bytes operations on whole chunks rather than a Python loop per line.

SMTP smuggling (CVE-2023-51764 class): end-of-data is only ``CRLF . CRLF``; ``LF . LF``,
``LF . CRLF``, ``CRLF . LF`` and ``CR . CR`` are data, not the end. With ``reject_bare_lf``
any bare LF marks the message for rejection after its real end; otherwise bare LF endings
are normalised to CRLF so the stored message is canonical. Bare CR is never a line
terminator (RFC 5321 §2.3.8) and is kept as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailstead.core.errors import MailsteadError

_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class ProtocolError(MailsteadError):
    """A command or parameter is syntactically wrong (the session answers 501)."""


@dataclass(frozen=True, slots=True)
class Command:
    """``verb`` is upper-case ASCII; ``argument`` is the rest of the line as bytes."""

    verb: str
    argument: bytes


def decode_argument(argument: bytes) -> str:
    """A command argument as text: UTF-8 (RFC 6531 §3.3); invalid bytes raise ProtocolError."""
    try:
        return argument.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("argument is not valid UTF-8") from None


def parse_command(line: bytes) -> Command:
    """One command line (with or without its line ending) -> Command.

    Commands accept CRLF or a bare LF ending (robustness, RFC 5321 §4.1.1: the server
    recognises the verb case-insensitively); DATA content is stricter, see DataDecoder.
    """
    stripped = line.rstrip(b"\r\n")
    verb, _, argument = stripped.partition(b" ")
    try:
        name = verb.decode("ascii").upper()
    except UnicodeDecodeError:
        name = ""
    if not name.isalpha() or len(name) > 16:
        name = ""  # the dispatcher answers "unrecognized"
    return Command(name, argument.strip(b" "))


def parse_params(text: str, *, utf8: bool = False) -> dict[str, str | None]:
    """``KEY=VALUE KEY2`` -> {"KEY": "VALUE", "KEY2": None}; keywords upper-cased.

    RFC 5321 §4.1.2: esmtp-value is printable ASCII except "=" and SP; RFC 6531 §3.3 adds
    UTF-8 when SMTPUTF8 is in use. A repeated keyword is a syntax error (RFC 3461 §4.1).
    """
    params: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not _KEYWORD.match(key):
            raise ProtocolError(f"bad parameter keyword {key[:30]!r}")
        key = key.upper()
        if key in params:
            raise ProtocolError(f"parameter {key} given twice")
        if sep:
            if not value:
                raise ProtocolError(f"parameter {key} has an empty value")
            for ch in value:
                code = ord(ch)
                if code >= 0x80 and utf8:
                    continue
                if code < 33 or code > 126 or ch == "=":
                    raise ProtocolError(f"bad character in parameter {key}")
            params[key] = value
        else:
            params[key] = None
    return params


_BARE_LF = re.compile(rb"(?<!\r)\n")
_END = b"\r\n.\r\n"


@dataclass(slots=True)
class DataDecoder:
    """Feed DATA bytes in chunks of any size until :meth:`feed` reports the end.

    The end is the first ``CRLF . CRLF`` (or ``. CRLF`` at the very start: an empty
    message), found with ``bytes.find`` rather than line by line. Everything before it is
    the message; the caller pushes the bytes after it back (pipelined commands).

    ``max_size`` 0 means unlimited. Once the data passes it the decoder keeps only the last
    few bytes (to see the end marker) and counts the rest, so an oversized message costs no
    memory; ``size`` is counted as transmitted, dot-stuffing included.
    """

    max_size: int = 0
    reject_bare_lf: bool = True
    size: int = 0
    oversized: bool = False
    bare_lf: bool = False
    done: bool = False
    #: Keep nothing more (the process's budget for message data is spent): only the end
    #: is looked for, as past the size limit, and the message is refused.
    discarding: bool = False
    # Starts with a CRLF that was never sent, so ". CRLF" as the very first line is found
    # as an end marker like any other (an empty message).
    _raw: bytearray = field(default_factory=lambda: bytearray(b"\r\n"))
    _message: bytes = b""

    def feed(self, chunk: bytes) -> int:
        """Take the next bytes; -1 while the end is not in them, else how many of them
        belong to the data (end marker included)."""
        if self.done:
            raise ProtocolError("data already complete")
        raw = self._raw
        start = len(raw)
        raw += chunk
        end = raw.find(_END, max(0, start - 4))
        if end < 0:
            self.size += len(chunk)
            if self.max_size and self.size > self.max_size:
                self.oversized = True
            if self.oversized or self.discarding:
                del raw[:-4]  # enough to recognise an end marker split across chunks
            return -1
        used = end + len(_END) - start
        self.done = True
        self.size += used - 3  # the message, without the ". CRLF" that ends it
        if self.max_size and self.size > self.max_size:
            self.oversized = True
        if not self.oversized and not self.discarding:
            # Through a view: slicing the bytearray first would copy the message twice.
            self._message = self._decode(bytes(memoryview(raw)[2 : end + 2]))
        self._raw = bytearray()
        return used

    def _decode(self, body: bytes) -> bytes:
        """Bare-LF check (and, when allowed, CRLF normalisation) and dot-unstuffing."""
        if body.count(b"\n") != body.count(b"\r\n"):
            self.bare_lf = True
            if self.reject_bare_lf:
                return b""
            body = _BARE_LF.sub(b"\r\n", body)
        # RFC 5321 §4.5.2: a line that starts with a period loses that period.
        body = body.replace(b"\r\n.", b"\r\n")
        return body[1:] if body.startswith(b".") else body

    def message(self) -> bytes:
        return self._message
