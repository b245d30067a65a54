"""SEARCH evaluation over stored metadata and the structures ``mime/`` stored at delivery.

The program is inspected once to see what it needs (flags and sizes only; the parsed
structure; the header bytes; the whole message), so most searches never read a body.
Text matching is case-insensitive substring matching on decoded text (RFC 9051 §6.4.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from mailstead.imap import objectid
from mailstead.imap.parse.search import (
    All,
    And,
    Date,
    DateField,
    Flag,
    Header,
    ModSeq,
    Not,
    Numbers,
    ObjectId,
    Or,
    Recent,
    Relation,
    SearchKey,
    Size,
    Text,
    TextField,
    walk,
)
from mailstead.imap.search_index import IndexAnswers
from mailstead.mime import searchtext
from mailstead.mime.searchtext import fold as _fold
from mailstead.mime.stored import StoredStructure
from mailstead.store.models import MessageMeta


@dataclass(frozen=True, slots=True)
class Needs:
    structure: bool = False
    header: bool = False
    body: bool = False
    savedate: bool = False  # RFC 8514: read with Store.save_dates, apart from the rest


def needs(key: SearchKey, *, text: bool = True) -> Needs:
    """What data evaluating ``key`` requires, so the caller loads only that; without
    ``text``, what it requires once the index has settled every text key."""
    structure = header = body = savedate = False
    for k in walk(key):
        if not text and isinstance(k, Text | Header):
            continue
        match k:
            case Text(field=TextField.BODY | TextField.TEXT):
                structure = header = body = True
            case Text() | Date(field=DateField.SENT):
                structure = True
            case Header() | ObjectId(thread=True):
                structure = header = True
            case Date(field=DateField.SAVED):
                savedate = True
    return Needs(structure=structure, header=header, body=body, savedate=savedate)


def uses_modseq(key: SearchKey) -> bool:
    """Whether the program has a MODSEQ key: then the result carries the highest
    mod-sequence found (RFC 7162 §3.1.5) and CONDSTORE is on for the session."""
    return any(isinstance(k, ModSeq) for k in walk(key))


@dataclass
class Candidate:
    """One message as the evaluator sees it; loaders fill what :func:`needs` asked for."""

    meta: MessageMeta
    seq: int
    recent: bool
    structure: StoredStructure | None = None
    raw: bytes | None = None  # the header only, or the whole message when body text is needed
    savedate: datetime | None = None  # filled only when the program has a SAVED* key
    _flags_lower: frozenset[str] | None = None

    @property
    def flags_lower(self) -> frozenset[str]:
        if self._flags_lower is None:
            self._flags_lower = _lowered(self.meta.flags)
        return self._flags_lower


@lru_cache(maxsize=4096)
def _lowered(flags: frozenset[str]) -> frozenset[str]:
    """A mailbox has few distinct flag sets, and every SEARCH of a flag key lowered each
    message's set anew (a tenth of a SEARCH UNSEEN on 200 messages): once per set now."""
    return frozenset(f.lower() for f in flags)



def _header_values(c: Candidate, name: str) -> list[str]:
    if c.structure is None or c.raw is None:
        return []
    return searchtext.header_values(c.raw, c.structure, name)


def _body_text(c: Candidate) -> str:
    if c.structure is None or c.raw is None:
        return ""
    return searchtext.body_text(c.raw, c.structure)


def _header_text(c: Candidate) -> str:
    if c.structure is None or c.raw is None:
        return ""
    return searchtext.header_text(c.raw, c.structure)


def _thread_id(c: Candidate, user_id: int) -> str | None:
    if c.structure is None or c.raw is None:
        return None
    fields = objectid.header_values(c.raw, c.structure.top_headers)
    return objectid.thread_id(user_id, c.meta.blob_id, fields)


def _saved_date(c: Candidate) -> date | None:
    return c.savedate.date() if c.savedate is not None else None


def _sent_date(c: Candidate) -> date:
    """The Date: field's day; without a readable Date:, the INTERNALDATE's, the rule RFC
    5256 §2.2 gives for the sent date (RFC 9051 §6.4.4 names none; Dovecot takes 1970)."""
    sent = c.structure.date if c.structure is not None else None
    return sent.date() if sent is not None else c.meta.internaldate.date()


Predicate = Callable[["Candidate"], bool]


def matcher(
    key: SearchKey, seq_uids: Callable[[Numbers], set[int]], user_id: int = 0,
    index: IndexAnswers | None = None,
) -> Predicate:
    """Compile the program into a predicate. ``seq_uids`` resolves sequence-set keys to UID
    sets (done once per key, not per message); ``user_id`` scopes THREADID; the full-text
    ``index`` answers text keys where it can (the scan decides the rest)."""
    match key:
        case All():
            return lambda c: True
        case Flag(flag, present):
            lower = flag.lower()
            return lambda c: (lower in c.flags_lower) == present
        case Recent(recent=False):
            return lambda c: not c.recent
        case Recent(unseen=True):
            return lambda c: c.recent and "\\seen" not in c.flags_lower
        case Recent():
            return lambda c: c.recent
        case Numbers():
            uids = seq_uids(key)
            return lambda c: int(c.meta.uid) in uids
        case Not(inner):
            negated = matcher(inner, seq_uids, user_id, index)
            return lambda c: not negated(c)
        case Or(left, right):
            first = matcher(left, seq_uids, user_id, index)
            second = matcher(right, seq_uids, user_id, index)
            return lambda c: first(c) or second(c)
        case And(keys):
            parts = [matcher(k, seq_uids, user_id, index) for k in keys]
            return lambda c: all(p(c) for p in parts)
        case ModSeq(lowest):
            return lambda c: c.meta.modseq >= lowest  # RFC 7162 §3.1.5: "equal or greater"
        case Size(larger=True, size=size):
            return lambda c: c.meta.size > size
        case Size(larger=False, size=size):
            return lambda c: c.meta.size < size
        case ObjectId(thread=False, id=wanted):
            return lambda c: objectid.email_id(c.meta.blob_id) == wanted
        case ObjectId(thread=True, id=wanted):
            return lambda c: _thread_id(c, user_id) == wanted
        case Date(DateField.INTERNAL, relation, day):
            return _date_matcher(relation, day, lambda c: c.meta.internaldate.date())
        case Date(DateField.SENT, relation, day):
            return _date_matcher(relation, day, _sent_date)
        case Date(DateField.SAVED, relation, day):
            return _date_matcher(relation, day, _saved_date)
        case Header(name, text):
            needle = _fold(text)
            return _indexed(
                key, index, lambda c: any(needle in _fold(v) for v in _header_values(c, name))
            )
        case Text(field, text):
            return _indexed(key, index, _text_matcher(field, _fold(text)))
    raise AssertionError(f"unhandled search key {key!r}")


def _indexed(key: SearchKey, index: IndexAnswers | None, scan: Predicate) -> Predicate:
    """The index's answer for the message where it has one, else the scan's."""
    if index is None:
        return scan

    def check(c: Candidate) -> bool:
        answer = index.answer(key, int(c.meta.uid))
        return scan(c) if answer is None else answer

    return check


_ADDRESS_FIELDS = {
    TextField.FROM: "from_addrs", TextField.TO: "to", TextField.CC: "cc", TextField.BCC: "bcc",
}


def _text_matcher(field: TextField, needle: str) -> Predicate:
    if field is TextField.SUBJECT:
        return lambda c: needle in _fold((c.structure.subject if c.structure else None) or "")
    if field in _ADDRESS_FIELDS:
        attr = _ADDRESS_FIELDS[field]
        return lambda c: c.structure is not None and any(
            needle in _fold(a) for a in getattr(c.structure, attr)
        )
    if field is TextField.BODY:
        return lambda c: needle in _fold(_body_text(c))
    return lambda c: needle in _fold(_header_text(c)) or needle in _fold(_body_text(c))


def _date_matcher(
    relation: Relation, day: date, get: Callable[[Candidate], date | None]
) -> Predicate:
    def check(c: Candidate) -> bool:
        d = get(c)
        if d is None:
            return False
        if relation is Relation.BEFORE:
            return d < day
        if relation is Relation.ON:
            return d == day
        return d >= day  # SINCE: on or after

    return check
