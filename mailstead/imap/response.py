"""Building response octets: tagged/untagged lines, strings, flags, dates, mailbox names.

Everything returns ``bytes`` ready for the wire. Strings are quoted when RFC 9051 §4.3 allows
it and sent as literals otherwise, so data never needs escaping beyond ``\\`` and ``"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from mailstead.imap.mutf7 import encode_mutf7

CRLF = b"\r\n"
_QUOTABLE = re.compile(rb"[^\x00\r\n]*")
_QUOTABLE_ASCII = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Status:
    OK = "OK"
    NO = "NO"
    BAD = "BAD"


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``tag OK [CODE] text``; text is free-form and never empty (RFC 9051 §7.1)."""
    middle = f"[{code}] " if code else ""
    return f"{tag} {status} {middle}{text or status}".encode("utf-8", "replace") + CRLF


def untagged(text: str | bytes) -> bytes:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    return b"* " + data + CRLF


def literal(data: bytes, *, binary: bool = False) -> bytes:
    """``{n}\\r\\n`` + data; literal8 ``~{n}`` when binary data holds NUL (RFC 3516 §4.2)."""
    return literal_head(data, binary=binary) + data


def literal_head(data: bytes, *, binary: bool = False) -> bytes:
    """The ``{n}\\r\\n`` (or ``~{n}\\r\\n``) that goes before ``data``: a large literal is
    sent as this and then its data, never copied into one long line."""
    prefix = b"~" if binary and b"\x00" in data else b""
    return prefix + b"{%d}\r\n" % len(data)


def string(value: str | bytes, *, utf8: bool = True) -> bytes:
    """A quoted string when possible, else a literal. 8-bit text is quoted only for UTF-8
    clients (RFC 9051 §4.3 allows UTF-8 in quoted strings); rev1 clients get a literal."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    pattern = _QUOTABLE if utf8 else _QUOTABLE_ASCII
    if len(raw) < 1024 and pattern.fullmatch(raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(raw)


def nstring(value: str | bytes | None, *, utf8: bool = True) -> bytes:
    return b"NIL" if value is None else string(value, utf8=utf8)


def mailbox_name(name: str, *, utf8: bool) -> bytes:
    """A mailbox name as the client expects it: UTF-8 after ENABLE, else modified UTF-7
    (RFC 3501 §5.1.3). Always a quoted string or literal, never an atom, like Dovecot."""
    if not utf8:
        name = encode_mutf7(name)
    return string(name, utf8=utf8)


def sort_flags(flags: Iterable[str]) -> list[str]:
    """System flags alphabetically, then keywords alphabetically. RFC 9051 leaves the order
    open; this is Apache James's order, so its conformance scripts compare exactly."""
    flags = set(flags)
    return sorted(f for f in flags if f.startswith("\\")) + sorted(
        f for f in flags if not f.startswith("\\")
    )


def flag_list(flags: Iterable[str]) -> bytes:
    return ("(" + " ".join(sort_flags(flags)) + ")").encode("utf-8", "surrogateescape")


def internaldate(value: datetime) -> bytes:
    """RFC 9051 date-time, always in UTC: ``"17-Jul-1996 09:44:25 +0000"``.

    The internal date is an instant; the zone an APPEND gave it is not kept (Dovecot keeps
    only a timestamp too), so a value with another offset, such as a row stored before the
    store normalised dates, is shown as the same instant in UTC. Naive values are UTC."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return (
        f'"{value.day:02d}-{MONTHS[value.month - 1]}-{value.year:04d} '
        f'{value.hour:02d}:{value.minute:02d}:{value.second:02d} +0000"'
    ).encode("ascii")


def uid_set(uids: Iterable[int]) -> str:
    """Compact sequence-set text for sorted or unsorted numbers: ``1:3,7,9:10``."""
    out: list[str] = []
    start = prev = None
    for n in sorted(uids):
        if start is None:
            start = prev = n
        elif prev is not None and n == prev + 1:
            prev = n
        elif n == prev:
            continue
        else:
            out.append(str(start) if start == prev else f"{start}:{prev}")
            start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)

