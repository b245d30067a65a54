"""SEARCH grammar (RFC 9051 §6.4.4, RFC 4731 ESEARCH return options, RFC 5182 SAVE, RFC 9394
PARTIAL)."""

from __future__ import annotations

from dataclasses import dataclass

from mailstead.core.types import normalize_flag
from mailstead.imap.parse.primitives import MAX_NUMBER64, PartialRange, Reader

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL"})

# Keys without arguments, mapped to (op, argument).
_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_STRING_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS = frozenset({
    "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE",
    "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE",  # RFC 8514 §4.2
})


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One node of the search program. ``op`` is ALL, FLAG (a=flag, b=wanted), RECENT, NEW,
    OLD, a string key (a=text), a date key (a=date), HEADER (a=name, b=text), LARGER/SMALLER
    (a=size), MODSEQ (a=lowest mod-sequence), SEQ/UID (a=SequenceSet), NOT (a=key), OR (a, b
    keys), AND (a=tuple of keys)."""

    op: str
    a: object = None
    b: object = None


@dataclass(frozen=True, slots=True)
class SearchArgs:
    key: SearchKey
    charset: str | None
    return_opts: tuple[str, ...] | None  # None: plain SEARCH; () means RETURN () = ALL
    partial: PartialRange | None = None  # RETURN (PARTIAL range), RFC 9394 §3.1


def search_key(r: Reader) -> SearchKey:
    c = r.peek()
    if c == b"(":
        r.open_paren()
        keys = [search_key(r)]
        while r.more_in_list():
            keys.append(search_key(r))
        r.close_paren()
        return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
    if c.isdigit() or c in (b"*", b"$"):
        return SearchKey("SEQ", r.sequence_set())
    word = r.atom("a search key").upper()
    if word in _FLAG_KEYS:
        flag, wanted = _FLAG_KEYS[word]
        return SearchKey("FLAG", flag, wanted)
    if word in ("ALL", "NEW", "OLD", "RECENT", "SAVEDATESUPPORTED"):
        return SearchKey(word)
    r.depth += 1  # NOT/OR chains nest like parentheses
    try:
        if word in ("KEYWORD", "UNKEYWORD"):
            r.sp()
            flag = normalize_flag(r.flag())
            return SearchKey("FLAG", flag, word == "KEYWORD")
        if word in _STRING_KEYS:
            r.sp()
            return SearchKey(word, r.astring().decode("utf-8", "replace"))
        if word in _DATE_KEYS:
            r.sp()
            return SearchKey(word, r.date().date())
        if word == "HEADER":
            r.sp()
            name = r.text_astring("a header field name")
            r.sp()
            return SearchKey("HEADER", name, r.astring().decode("utf-8", "replace"))
        if word in ("LARGER", "SMALLER"):
            r.sp()
            return SearchKey(word, r.number(limit=MAX_NUMBER64))
        if word == "UID":
            r.sp()
            return SearchKey("UID", r.sequence_set())
        if word == "MODSEQ":
            return _modseq_key(r)
        if word in ("EMAILID", "THREADID"):  # RFC 8474 §6: objectid
            r.sp()
            return SearchKey(word, r.atom("an object id"))
        if word == "NOT":
            r.sp()
            if r.depth > 64:
                raise r.error("search program nested too deeply")
            return SearchKey("NOT", search_key(r))
        if word == "OR":
            r.sp()
            if r.depth > 64:
                raise r.error("search program nested too deeply")
            first = search_key(r)
            r.sp()
            return SearchKey("OR", first, search_key(r))
    finally:
        r.depth -= 1
    raise r.error(f"unknown search key {word[:40]}")


_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})


def _modseq_key(r: Reader) -> SearchKey:
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
    return SearchKey("MODSEQ", r.number(limit=MAX_NUMBER64))


def search_args(r: Reader) -> SearchArgs:
    """``[RETURN (opts)] [CHARSET name] key *(SP key)``; unknown charsets are reported by the
    handler as NO [BADCHARSET] (RFC 9051 §6.4.4), so the charset is returned as given."""
    return_opts: tuple[str, ...] | None = None
    partial: PartialRange | None = None
    charset: str | None = None
    if r.skip(b"RETURN "):
        r.open_paren()
        opts: list[str] = []
        while r.peek() != b")":
            if opts:
                r.sp()
            opt = r.atom("a return option").upper()
            if opt not in RETURN_OPTIONS:
                raise r.error(f"unknown SEARCH return option {opt[:40]}")
            if opt in ("ALL", "PARTIAL") and ("ALL" in opts or "PARTIAL" in opts):
                # RFC 9394 §3.1: "A single command MUST NOT contain more than one PARTIAL
                # or ALL search return option".
                raise r.error("at most one PARTIAL or ALL return option")
            if opt == "PARTIAL":  # RFC 9394 §4: modifier-partial = "PARTIAL" SP partial-range
                r.sp()
                partial = r.partial_range()
            opts.append(opt)
        r.close_paren()
        return_opts = tuple(opts)
        r.sp()
    if r.skip(b"CHARSET "):
        charset = r.text_astring("a charset").upper()
        r.sp()
    keys = [search_key(r)]
    while r.more():
        r.sp()
        keys.append(search_key(r))
    r.end()
    key = keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
    return SearchArgs(key, charset, return_opts, partial)
