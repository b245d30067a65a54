"""SEARCH evaluation over stored metadata and the structures ``mime/`` stored at delivery.

The program is inspected once to see what it needs (flags and sizes only; the parsed
structure; the header bytes; the whole message), so most searches never read a body.
Text matching is case-insensitive substring matching on decoded text (RFC 9051 §6.4.4).
"""

from __future__ import annotations

import email.header
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from mailstead.imap import objectid
from mailstead.imap.parse.search import SearchKey
from mailstead.imap.structure import StoredStructure
from mailstead.mime.imap_views import decode_part_body
from mailstead.mime.parse import Part
from mailstead.store.models import MessageMeta

_STRUCTURE_OPS = frozenset({
    "FROM", "TO", "CC", "BCC", "SUBJECT", "SENTBEFORE", "SENTON", "SENTSINCE", "HEADER",
    "BODY", "TEXT", "THREADID",
})


_SAVEDATE_OPS = frozenset({"SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"})


@dataclass(frozen=True, slots=True)
class Needs:
    structure: bool = False
    header: bool = False
    body: bool = False
    savedate: bool = False  # RFC 8514: read with Store.save_dates, apart from the rest


def _nodes(key: SearchKey) -> Iterator[SearchKey]:
    """Every key of the program, ``key`` itself included."""
    stack = [key]
    while stack:
        k = stack.pop()
        yield k
        if k.op == "NOT" and isinstance(k.a, SearchKey):
            stack.append(k.a)
        elif k.op == "OR":
            stack += [k.a, k.b]  # type: ignore[list-item]
        elif k.op == "AND" and isinstance(k.a, tuple):
            stack.extend(k.a)


def needs(key: SearchKey) -> Needs:
    """What data evaluating ``key`` requires, so the caller loads only that."""
    ops = {k.op for k in _nodes(key)}
    body = bool(ops & {"BODY", "TEXT"})
    return Needs(
        structure=bool(ops & _STRUCTURE_OPS),
        header=body or bool(ops & {"HEADER", "THREADID"}),
        body=body,
        savedate=bool(ops & _SAVEDATE_OPS),
    )


def uses_modseq(key: SearchKey) -> bool:
    """Whether the program has a MODSEQ key: then the result carries the highest
    mod-sequence found (RFC 7162 §3.1.5) and CONDSTORE is on for the session."""
    return any(k.op == "MODSEQ" for k in _nodes(key))


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
            self._flags_lower = frozenset(f.lower() for f in self.meta.flags)
        return self._flags_lower


def _fold(text: str) -> str:
    return text.casefold()


def _decode_header_value(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    text = text.replace("\r\n", "").replace("\n", "")
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except Exception:  # malformed encoded-words: search the raw text
        return text


def _header_values(c: Candidate, name: str) -> list[str]:
    if c.structure is None or c.raw is None:
        return []
    wanted = name.lower()
    out = []
    for field_name, start, end in c.structure.parsed.root.headers:
        if field_name == wanted:
            line = c.raw[start:end]
            colon = line.find(b":")
            out.append(_decode_header_value(line[colon + 1 :] if colon >= 0 else b"").strip())
    return out


#: Leaf types whose decoded content is searched as text. Dovecot searches these alone; an
#: image, archive or PDF decoded from base64 is bytes, and a short word would match by
#: chance in nearly every such attachment.
_TEXT_TYPES = frozenset({"text", "message"})


def _every_part(part: Part) -> Iterator[Part]:
    """The part and everything inside it: body parts of a multipart and the message of a
    message/rfc822 part, each with a header of its own."""
    yield part
    for child in part.children:
        yield from _every_part(child)


def _text_parts(part: Part) -> list[Part]:
    """Every text leaf, attached messages' included (RFC 9051 §6.4.4 "the body")."""
    return [p for p in _every_part(part) if not p.children and p.content_type in _TEXT_TYPES]


def _body_text(c: Candidate) -> str:
    if c.structure is None or c.raw is None:
        return ""
    chunks = []
    for part in _text_parts(c.structure.parsed.root):
        data = decode_part_body(c.raw, part)
        charset = part.param("charset") or "us-ascii"
        try:
            chunks.append(data.decode(charset, "replace"))
        except LookupError:
            chunks.append(data.decode("utf-8", "replace"))
    return "\n".join(chunks)


def _header_text(c: Candidate) -> str:
    """Every header field of the message: the top-level header, the MIME header of each body
    part and the header of each attached message. TEXT looks at the "header (including MIME
    header fields)" (RFC 9051 §6.4.4), and Dovecot searches all of these. Fields are decoded
    one by one so that a word cannot run on from one field into the next."""
    if c.structure is None or c.raw is None:
        return ""
    fields = []
    for part in _every_part(c.structure.parsed.root):
        for _name, start, end in part.headers:
            fields.append(_decode_header_value(c.raw[start:end]))
    return "\n".join(fields)


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


def matcher(
    key: SearchKey, seq_uids: Callable[[SearchKey], set[int]], user_id: int = 0
) -> Callable[[Candidate], bool]:
    """Compile the program into a predicate. ``seq_uids`` resolves SEQ/UID keys to UID sets
    (done once per key, not per message); ``user_id`` scopes THREADID."""
    op = key.op
    if op == "EMAILID":
        wanted_id = str(key.a)
        return lambda c: objectid.email_id(c.meta.blob_id) == wanted_id
    if op == "THREADID":
        wanted_id = str(key.a)
        return lambda c: _thread_id(c, user_id) == wanted_id
    if op == "ALL":
        return lambda c: True
    if op == "FLAG":
        flag = str(key.a).lower()
        wanted = bool(key.b)
        return lambda c: (flag in c.flags_lower) == wanted
    if op == "RECENT":
        return lambda c: c.recent
    if op == "NEW":
        return lambda c: c.recent and "\\seen" not in c.flags_lower
    if op == "OLD":
        return lambda c: not c.recent
    if op == "SAVEDATESUPPORTED":
        return lambda c: True  # RFC 8514 §4.2: every mailbox keeps save dates
    if op in ("SEQ", "UID"):
        uids = seq_uids(key)
        return lambda c: int(c.meta.uid) in uids
    if op == "NOT":
        inner = matcher(key.a, seq_uids, user_id)  # type: ignore[arg-type]
        return lambda c: not inner(c)
    if op == "OR":
        left = matcher(key.a, seq_uids, user_id)  # type: ignore[arg-type]
        right = matcher(key.b, seq_uids, user_id)  # type: ignore[arg-type]
        return lambda c: left(c) or right(c)
    if op == "AND":
        assert isinstance(key.a, tuple)
        parts = [matcher(k, seq_uids, user_id) for k in key.a]
        return lambda c: all(p(c) for p in parts)
    if op == "MODSEQ":
        lowest = int(key.a)  # type: ignore[call-overload]
        return lambda c: c.meta.modseq >= lowest  # RFC 7162 §3.1.5: "equal or greater"
    if op == "LARGER":
        size = int(key.a)  # type: ignore[call-overload]
        return lambda c: c.meta.size > size
    if op == "SMALLER":
        size = int(key.a)  # type: ignore[call-overload]
        return lambda c: c.meta.size < size
    if op in ("BEFORE", "ON", "SINCE"):
        day: date = key.a  # type: ignore[assignment]
        return _date_matcher(op, day, lambda c: c.meta.internaldate.date())
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        day = key.a  # type: ignore[assignment]
        return _date_matcher(op[4:], day, _sent_date)
    if op in _SAVEDATE_OPS:
        day = key.a  # type: ignore[assignment]
        return _date_matcher(op[5:], day, _saved_date)
    needle = _fold(str(key.b if op == "HEADER" else key.a))
    if op == "SUBJECT":
        return lambda c: needle in _fold((c.structure.subject if c.structure else None) or "")
    if op in ("FROM", "TO", "CC", "BCC"):
        attr = {"FROM": "from_addrs", "TO": "to", "CC": "cc", "BCC": "bcc"}[op]
        return lambda c: c.structure is not None and any(
            needle in _fold(a) for a in getattr(c.structure, attr)
        )
    if op == "HEADER":
        name = str(key.a)
        return lambda c: any(needle in _fold(v) for v in _header_values(c, name))
    if op == "BODY":
        return lambda c: needle in _fold(_body_text(c))
    if op == "TEXT":
        return lambda c: needle in _fold(_header_text(c)) or needle in _fold(_body_text(c))
    raise ValueError(f"unknown search op {op}")


def _date_matcher(
    op: str, day: date, get: Callable[[Candidate], date | None]
) -> Callable[[Candidate], bool]:
    def check(c: Candidate) -> bool:
        d = get(c)
        if d is None:
            return False
        if op == "BEFORE":
            return d < day
        if op == "ON":
            return d == day
        return d >= day  # SINCE: on or after

    return check
