"""GETMETADATA and SETMETADATA (RFC 5464 §4, grammar in §5) and entry names (§3.2).

Entry names are checked here, so that a name the RFC forbids is BAD before anything runs,
and normalised to lower case (§3.2: they are case-insensitive; Dovecot shows them lower
case too). Options may come before the mailbox, as the ABNF says, or after it, as the RFC's
own examples and several clients send them: an entry name always starts with ``/``, so a
list after the mailbox that starts with ``MAXSIZE`` or ``DEPTH`` can only be options.
Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mailstead.imap.parse.primitives import MAX_NUMBER, Reader

#: The longest entry name accepted; no client writes names anywhere near it.
MAX_ENTRY_NAME = 1024
#: Entries one command may name or set; each is a row read or written in one transaction.
MAX_ENTRIES_PER_COMMAND = 1000

#: RFC 5464 §3.2: the two namespaces every entry lives in.
PRIVATE = "/private"
SHARED = "/shared"

# §3.2: ASCII without controls (%x00-19, and DEL), "*" or "%"; no "//"; no "/" at the end.
_ENTRY_CHARS = re.compile(r"[\x20-\x7e]*")


class EntryNameError(ValueError):
    """Why an entry name is not one RFC 5464 §3.2 allows (the text goes into the BAD)."""


def entry_name(raw: bytes) -> str:
    """A checked entry name, lower-cased (§3.2); EntryNameError says what is wrong."""
    if len(raw) > MAX_ENTRY_NAME:
        raise EntryNameError(f"entry name longer than {MAX_ENTRY_NAME} octets")
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise EntryNameError("entry name must be ASCII") from None
    if not _ENTRY_CHARS.fullmatch(name):
        raise EntryNameError("entry name must not contain control characters")
    if "*" in name or "%" in name:
        raise EntryNameError("entry name must not contain '*' or '%'")
    if "//" in name:
        raise EntryNameError("entry name must not contain '//'")
    if name.endswith("/"):
        raise EntryNameError("entry name must not end with '/'")
    name = name.lower()
    if not any(name == top or name.startswith(top + "/") for top in (PRIVATE, SHARED)):
        raise EntryNameError("entry name must begin with /private or /shared")
    return name


class Depth(StrEnum):
    """§4.2.2 DEPTH: the entry only, its children too, or everything below it."""

    ZERO = "0"
    ONE = "1"
    INFINITY = "infinity"


@dataclass(frozen=True, slots=True)
class GetMetadata:
    mailbox: str
    entries: tuple[str, ...]
    maxsize: int | None = None  # §4.2.1 MAXSIZE: longer values are left out
    depth: Depth = Depth.ZERO


@dataclass(frozen=True, slots=True)
class SetMetadata:
    mailbox: str
    #: (entry, value) in the order given; None removes the entry (§4.3).
    values: tuple[tuple[str, bytes | None], ...]


def _entry(r: Reader) -> str:
    at = r.pos
    raw = r.astring("an entry name")
    try:
        return entry_name(raw)
    except EntryNameError as exc:
        r.pos = at
        raise r.error(str(exc)) from None


def _options(r: Reader) -> tuple[int | None, Depth | None]:
    """getmetadata-options: ``(MAXSIZE n DEPTH d)``, each at most once."""
    maxsize: int | None = None
    depth: Depth | None = None
    r.open_paren()
    while True:
        option = r.atom("a GETMETADATA option").upper()
        r.sp()
        if option == "MAXSIZE" and maxsize is None:
            maxsize = r.number(limit=MAX_NUMBER)
        elif option == "DEPTH" and depth is None:
            value = r.atom("a DEPTH value").lower()
            try:
                depth = Depth(value)
            except ValueError:
                raise r.error("DEPTH must be 0, 1 or infinity") from None
        else:
            raise r.error(f"unsupported or repeated GETMETADATA option {option[:40]}")
        if not r.more_in_list():
            break
    r.close_paren()
    return maxsize, depth


def _options_follow(r: Reader) -> bool:
    if r.peek() != b"(":
        return False
    rest = r.data[r.pos + 1 : r.pos + 16].lstrip(b" ").upper()
    return rest.startswith((b"MAXSIZE", b"DEPTH"))


def _entries(r: Reader) -> tuple[str, ...]:
    """entries = entry / "(" entry *(SP entry) ")"."""
    if r.peek() != b"(":
        return (_entry(r),)
    r.open_paren()
    names: list[str] = []
    while r.peek() != b")":
        if len(names) >= MAX_ENTRIES_PER_COMMAND:
            raise r.error(f"more than {MAX_ENTRIES_PER_COMMAND} entries in one command")
        names.append(_entry(r))
        if not r.more_in_list():
            break
    r.close_paren()
    return tuple(names)


def getmetadata(r: Reader) -> GetMetadata:
    """getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries."""
    r.sp()
    maxsize: int | None = None
    depth: Depth | None = None
    if _options_follow(r):
        maxsize, depth = _options(r)
        r.sp()
    mailbox = r.mailbox()
    r.sp()
    if maxsize is None and depth is None and _options_follow(r):  # as the RFC's examples
        maxsize, depth = _options(r)
        r.sp()
    entries = _entries(r)
    r.end()
    return GetMetadata(mailbox, entries, maxsize, depth or Depth.ZERO)


def _value(r: Reader) -> bytes | None:
    """value = nstring / literal8 (§5): literal8 carries values with NUL."""
    if r.peek(2) == b"~{":
        return r.literal(binary=True)
    return r.nstring()


def setmetadata(r: Reader) -> SetMetadata:
    """setmetadata = "SETMETADATA" SP mailbox SP entry-values;
    entry-values = "(" entry-value *(SP entry-value) ")"; entry-value = entry SP value."""
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    r.open_paren()
    values: list[tuple[str, bytes | None]] = []
    while True:
        if len(values) >= MAX_ENTRIES_PER_COMMAND:
            raise r.error(f"more than {MAX_ENTRIES_PER_COMMAND} entries in one command")
        name = _entry(r)
        if name in (PRIVATE, SHARED):
            raise r.error("an entry name must name an entry below /private or /shared")
        r.sp()
        values.append((name, _value(r)))
        if not r.more_in_list():
            break
    r.close_paren()
    r.end()
    return SetMetadata(mailbox, tuple(values))


__all__ = [
    "MAX_ENTRIES_PER_COMMAND",
    "MAX_ENTRY_NAME",
    "PRIVATE",
    "SHARED",
    "Depth",
    "EntryNameError",
    "GetMetadata",
    "SetMetadata",
    "entry_name",
    "getmetadata",
    "setmetadata",
]
