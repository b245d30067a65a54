"""Primitive grammar of RFC 9051 §9 over one complete command frame (literals inline).

:class:`Reader` walks a :class:`~mailstead.imap.parse.receiver.Frame` and raises
:class:`ParseError` with a human reason on the first octet that does not fit, so every syntax
error can be answered ``BAD`` with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from mailstead.core.message_data import MessageData
from mailstead.imap.mutf7 import MUTF7Error, decode_mutf7
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.receiver import AsideLiteral

MAX_NUMBER = 2**32 - 1  # RFC 9051 §9 number / nz-number are 32-bit unsigned
MAX_NUMBER64 = 2**63 - 1
MAX_DEPTH = 32  # parenthesis nesting accepted in SEARCH and lists

# atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\\]]+")
_ASTRING_ATOM = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\]+")  # ASTRING-CHAR adds "]"
_LIST_CHARS = re.compile(rb"[^\x00-\x20\x7f(){\"\\]+")  # list-char adds % * ]
_TAG = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\+]+")  # tag: ASTRING-CHAR except "+"
_NUMBER = re.compile(rb"\d+")
_LITERAL = re.compile(rb"(~?)\{(\d+)\}\r\n")
_SEQ_NUMBER = re.compile(rb"\d+|\*")
# RFC 9394 §4 partial-range; the signs and numbers are checked after the match.
_PARTIAL_RANGE = re.compile(rb"(-?)(\d+):(-?)(\d+)")

_T = TypeVar("_T")

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_INDEX = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATE_TIME = re.compile(
    rb'" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
)


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """RFC 9051 §9 sequence-set. ``None`` stands for ``*`` (the largest number in use);
    ranges keep the client's order (``5:2`` equals ``2:5``). ``saved`` is ``$`` (RFC 5182)."""

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def one(v: int | None) -> str:
            return "*" if v is None else str(v)

        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)


@dataclass(frozen=True, slots=True)
class PartialRange:
    """RFC 9394 §4 partial-range: 1-based positions in a list of results in mailbox order.
    ``first:last`` counts from the start (1 is the lowest UID, §3.1); both negative
    (``-first:-last``) counts from the end (-1 is the highest UID, §3.1). ``first`` and
    ``last`` keep the client's order and signs, so ``str()`` is the range as sent, which the
    ESEARCH ``PARTIAL`` return data echoes (§3.1: "the original range")."""

    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.first}:{self.last}"

    def page(self, items: Sequence[_T]) -> Sequence[_T]:
        """The items at the range's positions, in their order; positions beyond either end
        of ``items`` are simply absent (§3.1), so the page may be short or empty."""
        low, high = sorted((abs(self.first), abs(self.last)))  # §4: 500:400 is 400:500
        if self.first > 0:
            return items[low - 1 : high]
        n = len(items)  # -low is the low-th item from the end, -high the high-th
        return items[max(n - high, 0) : max(n - low + 1, 0)]


class Reader:
    """Cursor over one command frame. ``utf8`` says whether mailbox names are UTF-8 (after
    ENABLE IMAP4rev2 / UTF8=ACCEPT) or modified UTF-7 (RFC 3501 §5.1.3)."""

    def __init__(
        self, data: bytes, *, utf8: bool = False, tag: str | None = None,
        aside: Mapping[int, AsideLiteral] | None = None,
    ) -> None:
        self.data = data
        self.aside = aside or {}  # spooled literals by offset (receiver.Frame)
        self.pos = 0
        self.utf8 = utf8
        self.tag = tag
        self.depth = 0
        # Where the command ends once trailing spaces are dropped: Dovecot and James accept
        # "LSUB "" "%"   ". A final literal's own trailing spaces fall after it too, harmlessly:
        # nothing can follow a final literal.
        end = len(data)
        while end and data[end - 1] == 0x20:
            end -= 1
        self._content_end = end

    # -- basics ---------------------------------------------------------------------------
    def error(self, reason: str, code: str | None = None) -> ParseError:
        return ParseError(reason, tag=self.tag, code=code)

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos : self.pos + n]

    def peek_upper(self, n: int) -> bytes:
        return self.data[self.pos : self.pos + n].upper()

    def skip(self, token: bytes) -> bool:
        """Consume ``token`` (ASCII case-insensitive) if it is next."""
        if self.data[self.pos : self.pos + len(token)].upper() == token.upper():
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        if not self.skip(token):
            raise self.error(f"expected {what or repr(token.decode())}")

    def sp(self) -> None:
        """One SP (RFC 9051 §9); runs of spaces are tolerated, as Dovecot and James do."""
        if self.peek() != b" ":
            raise self.error("expected a space")
        self.pos += 1
        while self.peek() == b" ":
            self.pos += 1

    def end(self) -> None:
        """The command must be complete here; trailing spaces are tolerated."""
        if self.pos < self._content_end:
            raise self.error("unexpected data at end of command")

    def more(self) -> bool:
        """True when a space and another argument follow (not just trailing spaces): the
        test before an optional or repeated argument at the end of a command."""
        return self.peek() == b" " and self.pos < self._content_end

    def skip_spaces(self) -> None:
        while self.peek() == b" ":
            self.pos += 1

    def open_paren(self) -> None:
        """``(`` plus any spaces after it (tolerated like runs of SP, see :meth:`sp`)."""
        self.expect(b"(", "'('")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("parentheses nested too deeply")
        self.skip_spaces()

    def close_paren(self) -> None:
        self.skip_spaces()
        self.expect(b")", "')'")
        self.depth -= 1

    def more_in_list(self) -> bool:
        """Between list items: True (separator consumed) if another item follows."""
        if self.peek() != b" ":
            return False
        save = self.pos
        self.skip_spaces()
        if self.peek() == b")":
            self.pos = save
            return False
        return True

    # -- atoms, numbers ---------------------------------------------------------------------
    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        m = pattern.match(self.data, self.pos)
        if m is None:
            raise self.error(f"expected {what}")
        self.pos = m.end()
        return m.group(0)

    def tag_token(self) -> str:
        return self._match(_TAG, "a tag").decode("ascii", "replace")

    def atom(self, what: str = "an atom") -> str:
        """An atom: 7-bit by RFC 9051 §9 (ATOM-CHAR is a CHAR, %x01-7F). 8-bit text has its
        own places (quoted strings, literals, mailbox names) and is BAD here, where it once
        reached flags and modifiers as undecodable text."""
        raw = self._match(_ATOM, what)
        if not raw.isascii():
            raise self.error(f"{what} must be 7-bit ASCII")
        return raw.decode("ascii")

    def number(self, *, nonzero: bool = False, limit: int = MAX_NUMBER) -> int:
        text = self._match(_NUMBER, "a number")
        value = int(text)
        if value > limit:
            raise self.error("number out of range")
        if nonzero and value == 0:
            raise self.error("number must not be zero")
        return value

    # -- strings ----------------------------------------------------------------------------
    def quoted(self) -> bytes:
        """RFC 9051 §4.3 quoted string: ``\\`` escapes only ``"`` and ``\\``; no CR/LF/NUL."""
        if self.peek() != b'"':
            raise self.error("expected a quoted string")
        self.pos += 1
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise self.error("unterminated quoted string")
            c = data[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                if self.pos >= len(data) or data[self.pos] not in b'"\\':
                    raise self.error("invalid escape in quoted string")
                out.append(data[self.pos])
                self.pos += 1
            elif c in (0x00, 0x0D, 0x0A):
                raise self.error("invalid character in quoted string")
            else:
                out.append(c)

    def literal(self, *, binary: bool = False) -> bytes:
        m = _LITERAL.match(self.data, self.pos)
        if m is None:
            raise self.error("expected a literal")
        if m.group(1) and not binary:
            raise self.error("literal8 is not allowed here")
        size = int(m.group(2))
        start = m.end()
        if start in self.aside:
            raise self.error("literal too large here", "TOOBIG")
        if start + size > len(self.data):
            raise self.error("literal shorter than announced")
        self.pos = start + size
        value = self.data[start : self.pos]
        if not m.group(1) and b"\x00" in value:
            raise self.error("NUL in literal (use literal8)")
        return value

    def message_literal(self) -> bytes | MessageData | None:
        """A literal holding a message (APPEND): the octets, or the spooled message the
        session set aside for it (None when the budgets refused it)."""
        m = _LITERAL.match(self.data, self.pos)
        if m is None or m.end() not in self.aside:
            return self.literal(binary=True)
        aside = self.aside[m.end()]
        if aside.nul and not m.group(1):
            raise self.error("NUL in literal (use literal8)")
        self.pos = m.end()
        return aside.data

    def at_string(self) -> bool:
        """True when a quoted string, a literal or a literal8 starts here. ``~`` on its own
        is an ordinary ATOM-CHAR (RFC 9051 §9): only ``~{`` announces a literal8 (RFC 3516
        §4.2), so ``SELECT ~foo`` names the mailbox ``~foo``."""
        c = self.peek()
        return c in (b'"', b"{") or (c == b"~" and self.peek(2) == b"~{")

    def string(self) -> bytes:
        c = self.peek()
        if c == b'"':
            return self.quoted()
        if self.at_string():
            return self.literal()
        raise self.error("expected a string")

    def astring(self, what: str = "a string") -> bytes:
        if self.at_string():
            return self.string()
        return self._match(_ASTRING_ATOM, what)

    def nstring(self) -> bytes | None:
        if self.peek_upper(3) == b"NIL" and not _ATOM.match(self.data, self.pos + 3):
            self.pos += 3
            return None
        return self.string()

    def text_astring(self, what: str = "a string") -> str:
        return self.astring(what).decode("utf-8", "surrogateescape")

    # -- mailbox names ----------------------------------------------------------------------
    def mailbox(self) -> str:
        """A mailbox name: ``INBOX`` in any case is INBOX (RFC 9051 §5.1); modified UTF-7 is
        decoded unless the client enabled UTF-8; 8-bit names are taken as UTF-8 either way."""
        raw = self.astring("a mailbox name")
        return self.decode_name(raw)

    def decode_name(self, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("mailbox name is not valid UTF-8") from None
        if text.upper() == "INBOX":
            return "INBOX"
        if not self.utf8 and text.isascii():
            try:
                return decode_mutf7(text)
            except MUTF7Error as exc:
                raise self.error(f"mailbox name is not valid modified UTF-7: {exc}") from None
        return text

    def list_mailbox(self) -> str:
        """list-mailbox: like astring, but ``%`` and ``*`` may appear unquoted."""
        raw = self.string() if self.at_string() else self._match(_LIST_CHARS, "a pattern")
        return self.decode_name(raw) if raw else ""

    # -- flags ------------------------------------------------------------------------------
    def flag(self, *, allow_wildcard: bool = False) -> str:
        """``\\Seen`` style system flag or a keyword atom (RFC 9051 §2.3.2)."""
        if self.peek() == b"\\":
            self.pos += 1
            if allow_wildcard and self.peek() == b"*":
                self.pos += 1
                return "\\*"
            return "\\" + self.atom("a flag name")
        return self.atom("a flag")

    def flag_list(self) -> list[str]:
        self.open_paren()
        flags: list[str] = []
        while self.peek() != b")":
            if flags:
                self.sp()
            flags.append(self.flag())
        self.close_paren()
        return flags

    # -- sequence sets ----------------------------------------------------------------------
    def _seq_number(self) -> int | None:
        text = self._match(_SEQ_NUMBER, "a message number or '*'")
        if text == b"*":
            return None
        value = int(text)
        if value == 0 or value > MAX_NUMBER:
            raise self.error("message numbers start at 1 and are 32-bit")
        return value

    def sequence_set(self) -> SequenceSet:
        """RFC 9051 §9 sequence-set, plus ``$`` (RFC 5182 SEARCHRES) on its own."""
        if self.peek() == b"$":
            self.pos += 1
            return SequenceSet(saved=True)
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            first = self._seq_number()
            last = first
            if self.peek() == b":":
                self.pos += 1
                last = self._seq_number()
            ranges.append((first, last))
            if self.peek() != b",":
                break
            self.pos += 1
        return SequenceSet(tuple(ranges))

    def partial_range(self) -> PartialRange:
        """RFC 9394 §4: ``partial-range-first = nz-number ":" nz-number`` or
        ``partial-range-last = MINUS nz-number ":" MINUS nz-number``: both ends positive or
        both negative, never ``*`` (unlike a seq-range), each a 32-bit nz-number."""
        m = _PARTIAL_RANGE.match(self.data, self.pos)
        if m is None:
            raise self.error("expected a partial range such as 1:100 or -1:-100")
        minus_first, first, minus_last, last = m.groups()
        if minus_first != minus_last:
            raise self.error("a partial range has both ends negative or neither")
        for digits in (first, last):
            if digits.startswith(b"0"):  # nz-number = digit-nz *DIGIT
                raise self.error("partial range numbers start at 1, without leading zeros")
            if int(digits) > MAX_NUMBER:
                raise self.error("partial range numbers are 32-bit")
        self.pos = m.end()
        sign = -1 if minus_first else 1
        return PartialRange(sign * int(first), sign * int(last))

    # -- dates ------------------------------------------------------------------------------
    def date(self) -> datetime:
        """date = date-text / DQUOTE date-text DQUOTE; used by SEARCH BEFORE/ON/SINCE."""
        quoted = self.peek() == b'"'
        if quoted:
            self.pos += 1
        m = _DATE.match(self.data, self.pos)
        if m is None:
            raise self.error("expected a date such as 1-Feb-2024")
        self.pos = m.end()
        if quoted:
            self.expect(b'"', "closing quote")
        return _make_date(self, m.group(1), m.group(2), m.group(3))

    def date_time(self) -> datetime:
        """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE"""
        m = _DATE_TIME.match(self.data, self.pos)
        if m is None:
            raise self.error('expected a date-time such as "01-Feb-2024 10:00:00 +0000"')
        self.pos = m.end()
        day, month, year, hh, mm, ss, sign, zh, zm = m.groups()
        base = _make_date(self, day, month, year)
        try:
            offset = timedelta(hours=int(zh), minutes=int(zm))
            tz = timezone(-offset if sign == b"-" else offset)
            return base.replace(hour=int(hh), minute=int(mm), second=int(ss), tzinfo=tz)
        except ValueError:
            raise self.error("invalid time of day or zone") from None


def _make_date(reader: Reader, day: bytes, month: bytes, year: bytes) -> datetime:
    index = _MONTH_INDEX.get(month.decode("ascii").lower())
    if index is None:
        raise reader.error("invalid month name")
    try:
        return datetime(int(year), index, int(day), tzinfo=UTC)
    except ValueError:
        raise reader.error("invalid date") from None
