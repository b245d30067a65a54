"""The SMTP wire format as pure functions and small state machines: no sockets, no asyncio.

The primitives every command shares; each command's own argument grammar, built on them,
is in :mod:`mailstead.smtp.grammar`.

- :func:`parse_command` splits a command line into verb and argument;
  :func:`decode_argument` reads an argument as UTF-8.
- :func:`parse_params` reads ESMTP parameters (RFC 5321 §4.1.2 esmtp-param).
- :class:`DataDecoder` finds the end of DATA and counts its size (RFC 1870 §6.3);
  :class:`Unstuffer` then makes the message: bare-LF detection and dot-unstuffing
  (RFC 5321 §4.5.2), with bytes operations on whole pieces rather than a Python loop per
  line.

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
    """Feed DATA bytes in chunks of any size until :meth:`feed` reports the end; :meth:`take`
    the octets received so far, still dot-stuffed, so the caller can spool them as they
    arrive. :class:`Unstuffer` makes the message of them once it is complete.

    The end is the first ``CRLF . CRLF`` (or ``. CRLF`` at the very start: an empty
    message), found with ``bytes.find`` rather than line by line. Everything before it is
    the message; the caller pushes the bytes after it back (pipelined commands). Finding
    the end is all the work done per chunk: a sender that never finishes its message
    (the hostile-load benchmark holds sixty) costs one search over what it sends.

    ``max_size`` 0 means unlimited. Once the data passes it the decoder keeps only the last
    few bytes (to see the end marker) and counts the rest, so an oversized message costs no
    memory; ``size`` is counted as transmitted, dot-stuffing included.
    """

    max_size: int = 0
    size: int = 0
    oversized: bool = False
    done: bool = False
    #: Keep nothing more (the budgets for message data are spent): only the end is
    #: looked for, as past the size limit, and the message is refused.
    discarding: bool = False
    # The first two octets are ones already given out, or at first a CRLF that was never
    # sent, so ". CRLF" as the very first line is found as an end marker like any other.
    _raw: bytearray = field(default_factory=lambda: bytearray(b"\r\n"))
    _out: list[bytes] = field(default_factory=list)

    @property
    def keeping(self) -> bool:
        """Whether the message is still being kept (neither oversized nor refused)."""
        return not (self.oversized or self.discarding)

    def feed(self, chunk: bytes) -> int:
        """Take the next bytes; -1 while the end is not in them, else how many of them
        belong to the data (end marker included)."""
        if self.done:
            raise ProtocolError("data already complete")
        raw = self._raw
        start = len(raw)
        raw += chunk
        # An end marker found now takes at least one new octet: the earlier ones were
        # searched at the last feed.
        end = raw.find(_END, max(0, start - 4))
        if end < 0:
            self.size += len(chunk)
            if self.max_size and self.size > self.max_size:
                self.oversized = True
            if self.keeping and len(raw) > 6:
                self._out.append(bytes(memoryview(raw)[2:-4]))
            else:
                self._out.clear()
            del raw[:-6]  # enough to recognise an end marker split across chunks
            return -1
        used = end + len(_END) - start
        self.done = True
        self.size += used - 3  # the message, without the ". CRLF" that ends it
        if self.max_size and self.size > self.max_size:
            self.oversized = True
        if self.keeping:
            self._out.append(bytes(memoryview(raw)[2 : end + 2]))
        else:
            self._out.clear()
        self._raw = bytearray()
        return used

    def take(self) -> list[bytes]:
        """The octets of the message received since the last call (still dot-stuffed)."""
        out, self._out = self._out, []
        return out


class Unstuffer:
    """The message of DATA's octets: the bare-LF check (and, when allowed, CRLF
    normalisation) and dot-unstuffing (RFC 5321 §4.5.2), over the octets in pieces of any
    split: :meth:`feed` each, then :meth:`end`. A CR at the end of a piece waits for the
    next, so a CR and its LF are judged together however the data was cut.

    It runs once the message is complete (on a worker thread for a spooled one), not per
    chunk as it arrives: an unfinished message is never decoded at all.
    """

    __slots__ = ("_cr", "_line_start", "bare_lf", "reject_bare_lf")

    def __init__(self, reject_bare_lf: bool = True) -> None:
        self.reject_bare_lf = reject_bare_lf
        self.bare_lf = False
        self._line_start = True  # the next octet begins a line
        self._cr = False  # a CR held back from the end of the last piece

    def feed(self, piece: bytes) -> bytes:
        if self._cr:
            piece = b"\r" + piece
            self._cr = False
        if piece.endswith(b"\r"):
            self._cr = True
            piece = piece[:-1]
        return self._decode(piece)

    def end(self) -> bytes:
        held, self._cr = self._cr, False
        return self._decode(b"\r") if held else b""

    def _decode(self, piece: bytes) -> bytes:
        if not piece or (self.bare_lf and self.reject_bare_lf):
            return b""  # a refused message: nothing of it matters
        ends_line = piece.endswith(b"\n")
        if piece.count(b"\n") != piece.count(b"\r\n"):
            self.bare_lf = True
            if self.reject_bare_lf:
                return b""
            piece = _BARE_LF.sub(b"\r\n", piece)
        # A line that starts with a period loses that period.
        piece = piece.replace(b"\r\n.", b"\r\n")
        if self._line_start and piece.startswith(b"."):
            piece = piece[1:]
        self._line_start = ends_line
        return piece
