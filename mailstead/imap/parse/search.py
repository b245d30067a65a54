"""SEARCH grammar (RFC 9051 §6.4.4, RFC 4731 ESEARCH return options, RFC 5182 SAVE, RFC 9394
PARTIAL, RFC 5267 CONTEXT and UPDATE): a search program as a tree of typed keys.

Each kind of key is its own frozen record, and :data:`SearchKey` is their union, so the
evaluator (:mod:`mailstead.imap.search`) matches on the kind and reads typed fields: a date
key holds a ``date``, a size key an ``int``, a sequence key a :class:`SequenceSet`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from mailstead.core.types import normalize_flag
from mailstead.imap.parse.primitives import MAX_NUMBER64, PartialRange, Reader, SequenceSet

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")


class ReturnOption(StrEnum):
    """ESEARCH result options (RFC 4731 §3.1, RFC 5182 SAVE, RFC 9394 PARTIAL, RFC 5267
    §4.2 CONTEXT and §4.3 UPDATE), for SEARCH and (RFC 5267 §3.1) SORT."""

    MIN = "MIN"
    MAX = "MAX"
    ALL = "ALL"
    COUNT = "COUNT"
    SAVE = "SAVE"
    PARTIAL = "PARTIAL"
    CONTEXT = "CONTEXT"  # a hint that the program will be used again; nothing to do
    UPDATE = "UPDATE"  # keep the result live: ADDTO/REMOVEFROM as the mailbox changes


#: More return options than there are kinds only repeat one; a bound keeps a line cheap.
MAX_RETURN_OPTIONS = 16


@dataclass(frozen=True, slots=True)
class ReturnOptions:
    """``RETURN (...)`` as given: the options in order, and PARTIAL's range if asked."""

    options: tuple[ReturnOption, ...]
    partial: PartialRange | None = None


class TextField(StrEnum):
    """What a string key searches (RFC 9051 §6.4.4)."""

    BCC = "BCC"
    BODY = "BODY"
    CC = "CC"
    FROM = "FROM"
    SUBJECT = "SUBJECT"
    TEXT = "TEXT"
    TO = "TO"


class DateField(StrEnum):
    """Which date a date key compares: INTERNALDATE (BEFORE/ON/SINCE), the Date: header
    (SENT*), or when the message was saved to the mailbox (SAVED*, RFC 8514 §4.2)."""

    INTERNAL = ""
    SENT = "SENT"
    SAVED = "SAVED"


class Relation(StrEnum):
    BEFORE = "BEFORE"  # earlier than the day
    ON = "ON"  # within the day
    SINCE = "SINCE"  # within or later than the day


@dataclass(frozen=True, slots=True)
class All:
    """ALL, and SAVEDATESUPPORTED (RFC 8514 §4.2: every mailbox keeps save dates)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """ANSWERED/UNANSWERED and the other flag keys, KEYWORD/UNKEYWORD."""

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class Recent:
    """RECENT, NEW (recent and unseen) and OLD (not recent), for IMAP4rev1 clients."""

    recent: bool = True
    unseen: bool = False  # NEW


@dataclass(frozen=True, slots=True)
class Text:
    field: TextField
    text: str


@dataclass(frozen=True, slots=True)
class Date:
    field: DateField
    relation: Relation
    day: date


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Size:
    """LARGER (``larger``) or SMALLER than ``size`` octets."""

    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class ModSeq:
    """MODSEQ: changed at or after ``lowest`` (RFC 7162 §3.1.5)."""

    lowest: int


@dataclass(frozen=True, slots=True)
class Numbers:
    """A sequence set: message sequence numbers, or UIDs after the UID key."""

    numbers: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class ObjectId:
    """EMAILID or THREADID (RFC 8474 §6)."""

    thread: bool
    id: str


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[SearchKey, ...]


SearchKey = (
    All | Flag | Recent | Text | Date | Header | Size | ModSeq | Numbers | ObjectId | Not | Or
    | And
)


@dataclass(frozen=True, slots=True)
class SearchArgs:
    key: SearchKey
    charset: str | None
    return_opts: tuple[ReturnOption, ...] | None  # None: plain SEARCH; () is RETURN () = ALL
    partial: PartialRange | None = None  # RETURN (PARTIAL range), RFC 9394 §3.1


def walk(key: SearchKey) -> Iterator[SearchKey]:
    """Every key of the program, ``key`` itself included."""
    stack = [key]
    while stack:
        k = stack.pop()
        yield k
        match k:
            case Not(inner):
                stack.append(inner)
            case Or(left, right):
                stack += [left, right]
            case And(keys):
                stack.extend(keys)


# Keys without arguments.
_FLAG_KEYS: dict[str, Flag] = {
    "ANSWERED": Flag("\\Answered", True),
    "DELETED": Flag("\\Deleted", True),
    "DRAFT": Flag("\\Draft", True),
    "FLAGGED": Flag("\\Flagged", True),
    "SEEN": Flag("\\Seen", True),
    "UNANSWERED": Flag("\\Answered", False),
    "UNDELETED": Flag("\\Deleted", False),
    "UNDRAFT": Flag("\\Draft", False),
    "UNFLAGGED": Flag("\\Flagged", False),
    "UNSEEN": Flag("\\Seen", False),
}
_PLAIN_KEYS: dict[str, SearchKey] = {
    "ALL": All(),
    "SAVEDATESUPPORTED": All(),
    "RECENT": Recent(),
    "NEW": Recent(unseen=True),
    "OLD": Recent(recent=False),
}
_DATE_KEYS: dict[str, tuple[DateField, Relation]] = {
    field.value + relation.value: (field, relation)
    for field in DateField
    for relation in Relation
}


def search_key(r: Reader) -> SearchKey:
    c = r.peek()
    if c == b"(":
        r.open_paren()
        keys = [search_key(r)]
        while r.more_in_list():
            keys.append(search_key(r))
        r.close_paren()
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if c.isdigit() or c in (b"*", b"$"):
        return Numbers(r.sequence_set(), uid=False)
    word = r.atom("a search key").upper()
    if word in _FLAG_KEYS:
        return _FLAG_KEYS[word]
    if word in _PLAIN_KEYS:
        return _PLAIN_KEYS[word]
    r.depth += 1  # NOT/OR chains nest like parentheses
    try:
        if word in ("KEYWORD", "UNKEYWORD"):
            r.sp()
            return Flag(normalize_flag(r.flag()), word == "KEYWORD")
        if word in TextField.__members__:
            r.sp()
            return Text(TextField(word), r.astring().decode("utf-8", "replace"))
        if word in _DATE_KEYS:
            r.sp()
            field, relation = _DATE_KEYS[word]
            return Date(field, relation, r.date().date())
        if word == "HEADER":
            r.sp()
            name = r.text_astring("a header field name")
            r.sp()
            return Header(name, r.astring().decode("utf-8", "replace"))
        if word in ("LARGER", "SMALLER"):
            r.sp()
            return Size(word == "LARGER", r.number(limit=MAX_NUMBER64))
        if word == "UID":
            r.sp()
            return Numbers(r.sequence_set(), uid=True)
        if word == "MODSEQ":
            return _modseq_key(r)
        if word in ("EMAILID", "THREADID"):  # RFC 8474 §6: objectid
            r.sp()
            return ObjectId(word == "THREADID", r.atom("an object id"))
        if word == "NOT":
            r.sp()
            if r.depth > 64:
                raise r.error("search program nested too deeply")
            return Not(search_key(r))
        if word == "OR":
            r.sp()
            if r.depth > 64:
                raise r.error("search program nested too deeply")
            first = search_key(r)
            r.sp()
            return Or(first, search_key(r))
    finally:
        r.depth -= 1
    raise r.error(f"unknown search key {word[:40]}")


_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})


def search_program(r: Reader) -> SearchKey:
    """``1*(SP search-key)`` up to the end of the command (the first SP already read):
    several keys are ANDed (RFC 9051 §6.4.4), as SEARCH, SORT and THREAD take them."""
    keys = [search_key(r)]
    while r.more():
        r.sp()
        keys.append(search_key(r))
    r.end()
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def _modseq_key(r: Reader) -> ModSeq:
    """RFC 7162 §3.1.5: ``MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer``.
    Flags have no mod-sequences of their own here (one per message), so the optional
    metadata item is checked for syntax and then ignored, as the RFC allows."""
    r.sp()
    if r.peek() == b'"':
        r.string()  # entry-name: "/flags/" flag-name
        r.sp()
        kind = r.atom("an entry type").upper()
        if kind not in _ENTRY_TYPES:
            raise r.error(f"unknown MODSEQ entry type {kind[:40]}")
        r.sp()
    return ModSeq(r.number(limit=MAX_NUMBER64))


def return_options(r: Reader) -> ReturnOptions:
    """``"RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"`` (RFC 4466 §2.6,
    RFC 4731 §3.1, RFC 9394 §4, RFC 5267 §5), the leading ``RETURN`` already read."""
    r.open_paren()
    opts: list[ReturnOption] = []
    partial: PartialRange | None = None
    while r.peek() != b")":
        if opts:
            r.sp()
        word = r.atom("a return option").upper()
        if word not in ReturnOption.__members__:
            raise r.error(f"unknown return option {word[:40]}")
        opt = ReturnOption(word)
        exclusive = (ReturnOption.ALL, ReturnOption.PARTIAL)
        if opt in exclusive and any(o in exclusive for o in opts):
            # RFC 9394 §3.1, RFC 5267 §4.4: "A single command MUST NOT contain more than
            # one PARTIAL or ALL search return option".
            raise r.error("at most one PARTIAL or ALL return option")
        if opt is ReturnOption.PARTIAL:
            # RFC 9394 §4: modifier-partial = "PARTIAL" SP partial-range
            r.sp()
            partial = r.partial_range()
        opts.append(opt)
        if len(opts) > MAX_RETURN_OPTIONS:
            raise r.error(f"more than {MAX_RETURN_OPTIONS} return options")
    r.close_paren()
    return ReturnOptions(tuple(opts), partial)


def search_args(r: Reader) -> SearchArgs:
    """``[RETURN (opts)] [CHARSET name] key *(SP key)``; unknown charsets are reported by the
    handler as NO [BADCHARSET] (RFC 9051 §6.4.4), so the charset is returned as given."""
    return_opts: tuple[ReturnOption, ...] | None = None
    partial: PartialRange | None = None
    charset: str | None = None
    if r.skip(b"RETURN "):
        given = return_options(r)
        return_opts, partial = given.options, given.partial
        r.sp()
    if r.skip(b"CHARSET "):
        charset = r.text_astring("a charset").upper()
        r.sp()
    return SearchArgs(search_program(r), charset, return_opts, partial)
