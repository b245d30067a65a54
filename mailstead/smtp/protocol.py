"""The SMTP wire format as pure functions and small state machines: no sockets, no asyncio.

- :func:`parse_command` splits a command line into verb and argument.
- :func:`parse_params` reads ESMTP parameters (RFC 5321 §4.1.2 esmtp-param).
- :func:`decode_xtext` decodes ENVID/ORCPT values (RFC 3461 §4).
- :class:`DataDecoder` turns DATA lines into message bytes: dot-unstuffing (RFC 5321
  §4.5.2), the end-of-data line, size counting (RFC 1870 §6.3) and bare-LF detection.
- :func:`parse_bdat` reads ``BDAT <size> [LAST]`` (RFC 3030 §2).

SMTP smuggling (CVE-2023-51764 class): end-of-data is only ``CRLF . CRLF``. A ``.`` line
ending in a bare LF, or a ``.`` line that follows a line ending in a bare LF, is data, not the
end. With ``reject_bare_lf`` any bare LF marks the message for rejection after its real end;
otherwise bare LF endings are normalised to CRLF so the stored message is canonical.
Bare CR is never a line terminator (RFC 5321 §2.3.8) and is kept as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailstead.core.errors import MailsteadError

_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")


class ProtocolError(MailsteadError):
    """A command or parameter is syntactically wrong (the session answers 501)."""


@dataclass(frozen=True, slots=True)
class Command:
    """``verb`` is upper-case ASCII; ``argument`` is the rest of the line as bytes."""

    verb: str
    argument: bytes

    def text(self) -> str:
        """The argument as text: UTF-8 (RFC 6531 §3.3); invalid bytes raise ProtocolError."""
        try:
            return self.argument.decode("utf-8")
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


def decode_xtext(value: str) -> str:
    """RFC 3461 §4: ``+XX`` is a hex-escaped octet; '+' and '=' must be escaped."""
    if "=" in value:
        raise ProtocolError("unescaped = in xtext")
    if "+" in value:
        check = _XTEXT_HEX.sub("", value)
        if "+" in check:
            raise ProtocolError("bad + escape in xtext")
    raw = _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), value)
    return raw


def encode_xtext(value: str) -> str:
    """Inverse of :func:`decode_xtext` for ASCII text."""
    return "".join(
        f"+{ord(ch):02X}" if ch in "+=" or not (33 <= ord(ch) <= 126) else ch for ch in value
    )


@dataclass(frozen=True, slots=True)
class BdatCommand:
    size: int
    last: bool


def parse_bdat(argument: str) -> BdatCommand:
    """RFC 3030 §2: ``BDAT chunk-size [SP end-marker]``; chunk-size is 1*DIGIT."""
    parts = argument.split()
    if not parts or len(parts) > 2 or not parts[0].isdigit() or not parts[0].isascii():
        raise ProtocolError("BDAT needs a chunk size")
    if len(parts[0]) > 15:
        raise ProtocolError("BDAT chunk size too large")
    last = False
    if len(parts) == 2:
        if parts[1].upper() != "LAST":
            raise ProtocolError("BDAT end marker must be LAST")
        last = True
    return BdatCommand(int(parts[0]), last)


@dataclass(slots=True)
class DataDecoder:
    """Feed DATA lines (each ending in LF, as ``Stream.readline`` returns them) until done.

    ``max_size`` 0 means unlimited. Once the size is exceeded the decoder keeps counting to
    the end of the data but stops keeping bytes, so an oversized message costs no memory.
    """

    max_size: int = 0
    reject_bare_lf: bool = True
    size: int = 0
    oversized: bool = False
    bare_lf: bool = False
    done: bool = False
    _parts: list[bytes] = field(default_factory=list)
    _after_crlf: bool = True  # the previous line ended in CRLF (or there was none)

    def feed(self, line: bytes) -> bool:
        """Take one line; True when it was the end-of-data line (RFC 5321 §4.1.1.4)."""
        crlf = line.endswith(b"\r\n")
        if line == b".\r\n" and self._after_crlf:
            self.done = True
            return True
        self._after_crlf = crlf
        if not crlf:
            self.bare_lf = True
            if not self.reject_bare_lf:
                line = line[:-1] + b"\r\n"
        if line[:1] == b".":
            line = line[1:]  # RFC 5321 §4.5.2 transparency
        self.size += len(line)
        if self.max_size and self.size > self.max_size:
            self.oversized = True
            self._parts.clear()
        elif not self.oversized:
            self._parts.append(line)
        return False

    def message(self) -> bytes:
        return b"".join(self._parts)
