"""Parse a message once, at append: bytes in, a part tree with offsets and IMAP strings out.

The mailstore keeps the result in the form ``mime/stored.py`` writes; FETCH (ENVELOPE,
BODYSTRUCTURE, BODY[section], BINARY), SEARCH and POP3 TOP read only that, never re-parsing a
whole message.

Invariants (tested on the whole corpus):
- ``parse_message`` is linear in the input size; nesting deeper than ``MAX_DEPTH`` and parts
  beyond ``MAX_PARTS`` become opaque leaves. It never raises in production: a bug that makes
  the parser fail is logged and the message is stored as one text part; with the sanity flag
  on (``core/sanity.py``, always under test) it raises instead.
- Offsets index the raw bytes: ``header_start <= header_end == body_start <= body_end``,
  children lie inside their parent's body, and the top-level part spans the whole input,
  so ``raw[:header_end] + raw[body_start:] == raw``.
- Boundaries follow Dovecot's reading of RFC 2046 §5.1.1: a boundary line starts with
  ``--boundary`` (prefix match, longest active boundary wins), the [CR]LF before it belongs to
  the boundary, and a boundary of an enclosing multipart also ends the inner parts.
"""

from __future__ import annotations

import dataclasses
import email.errors
import email.header
import email.utils
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailstead.core import sanity
from mailstead.mime import imap_views as views
from mailstead.mime import presented, preview, rfc822

MAX_DEPTH = 100  # nesting cap: deeper multiparts/messages are stored as opaque leaves
MAX_PARTS = 10_000  # total part cap for one message, leaves included (Dovecot's too)

_LF = 0x0A
_CR = 0x0D
_ENVELOPE_TEXT = frozenset({"date", "subject", "in-reply-to", "message-id"})
_ENVELOPE_ADDR = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})
_log = logging.getLogger("mailstead.mime")


@dataclass(frozen=True)
class Part:
    """One MIME entity. Offsets index the raw message; text fields are decoded for humans
    (IMAP wire strings are in ``ParsedMessage.body``/``bodystructure``)."""

    header_start: int
    header_end: int  # includes the blank separator line when present
    body_start: int
    body_end: int
    content_type: str = "text"  # lower-cased
    content_subtype: str = "plain"  # lower-cased
    params: tuple[tuple[str, str], ...] = ()  # RFC 2231 decoded, names as given
    encoding: str = "7bit"  # lower-cased Content-Transfer-Encoding
    children: tuple[Part, ...] = ()  # multipart children, or the message/rfc822 root
    headers: tuple[tuple[str, int, int], ...] = ()  # (lower name, start, end incl. CRLF)
    multipart: bool = False  # parsed as multipart (children are its body parts)
    lines: int = 0  # LF count of the body (RFC 9051 body-fld-lines)
    disposition: str | None = None  # lower-cased RFC 2183 type
    disposition_params: tuple[tuple[str, str], ...] = ()
    language: tuple[str, ...] = ()
    location: str | None = None
    content_id: str | None = None
    description: str | None = None
    md5: str | None = None
    # A leaf whose body holds a NUL octet, which no IMAP literal but a literal8 may carry
    # (RFC 9051 §4.3): BODY, BODYSTRUCTURE and BODY sections present it in base64 (RFC 3516
    # §6, mime/presented.py); BINARY serves the octets as they are.
    nul: bool = False

    @property
    def size(self) -> int:
        return self.body_end - self.body_start

    def param(self, name: str) -> str | None:
        """Case-insensitive Content-Type parameter lookup (e.g. charset, name)."""
        low = name.lower()
        return next((v for n, v in self.params if n.lower() == low), None)


@dataclass(frozen=True)
class ParsedMessage:
    """Everything FETCH, SEARCH and POP3 TOP need, computed once at append.

    ``envelope``, ``body`` and ``bodystructure`` are complete IMAP wire forms including the
    outer parentheses; 8-bit octets appear as literals and the str holds the octets as UTF-8
    with surrogateescape (``imap_views.wire_bytes`` gives the exact bytes, and the stored
    form keeps those bytes).
    ``from_addrs``/``to``/``cc``/``bcc`` are for SEARCH: one ``"Name <local@domain>"`` (or
    ``"local@domain"``) string per address, display names RFC 2047 decoded, groups flattened.
    """

    size: int
    root: Part
    envelope: str
    body: str
    bodystructure: str
    message_id: str | None = None
    subject: str | None = None
    date: datetime | None = None
    from_addrs: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: str | None = None
    # RFC 8970 PREVIEW text (``mime/preview.py``), made here once; None in a structure
    # stored before previews were (it is then made from the body when asked for).
    preview: str | None = None


# --- scanning ------------------------------------------------------------------------------

# A boundary hit: (offset of the "--" line, index in the active boundary stack, is closing).
_Hit = tuple[int, int, bool]


@dataclass
class _Entity:
    """A parsed entity plus the wire strings its parent needs."""

    part: Part
    body: str
    bodystructure: str
    fields: list[tuple[str, str]]  # (lower name, unfolded latin-1 value) in header order


@dataclass
class _Ctx:
    raw: bytes
    parts: int = 0


def _match_boundary(raw: bytes, at: int, stack: list[bytes]) -> _Hit | None:
    """Is the line at ``at`` (starting with "--") a boundary of an active multipart?"""
    best = -1
    best_len = -1
    for i in range(len(stack) - 1, -1, -1):  # innermost first: it wins ties
        b = stack[i]
        if len(b) > best_len and raw.startswith(b, at + 2):
            best, best_len = i, len(b)
    if best < 0:
        return None
    end = at + 2 + best_len
    return at, best, raw[end : end + 2] == b"--"


def _find_boundary(raw: bytes, pos: int, stack: list[bytes]) -> _Hit | None:
    """The first boundary line at or after line start ``pos``, or None (runs to EOF)."""
    if not stack:
        return None
    if raw.startswith(b"--", pos):
        hit = _match_boundary(raw, pos, stack)
        if hit is not None:
            return hit
    find = raw.find
    i = pos
    while True:
        j = find(b"\n--", i)
        if j < 0:
            return None
        hit = _match_boundary(raw, j + 1, stack)
        if hit is not None:
            return hit
        i = j + 1


def _before_newline(raw: bytes, at: int, floor: int) -> int:
    """Offset where the content before a boundary line ends: the [CR]LF is the boundary's."""
    if at > floor and raw[at - 1] == _LF:
        at -= 1
        if at > floor and raw[at - 1] == _CR:
            at -= 1
    return at


def _line_after(raw: bytes, at: int) -> int:
    j = raw.find(b"\n", at)
    return len(raw) if j < 0 else j + 1


def _scan_header(
    raw: bytes, pos: int, stack: list[bytes]
) -> tuple[list[list[Any]], int, _Hit | None, bool]:
    """Index header fields from ``pos``; returns (fields, header_end, boundary hit, whether
    a blank line ended the header).

    Each field is [lower name, start, end, colon offset or -1]. A line without a colon stays
    part of the header (as Dovecot reads it); a boundary line ends the header early.
    """
    n = len(raw)
    fields: list[list[Any]] = []
    i = pos
    find = raw.find
    while i < n:
        c = raw[i]
        if c == _LF:
            return fields, i + 1, None, True
        if c == _CR and i + 1 < n and raw[i + 1] == _LF:
            return fields, i + 2, None, True
        if c == 0x2D and stack and raw.startswith(b"--", i):
            hit = _match_boundary(raw, i, stack)
            if hit is not None:
                end = _before_newline(raw, i, pos)
                if fields:
                    fields[-1][2] = min(fields[-1][2], end)
                return fields, end, hit, False
        j = find(b"\n", i)
        line_end = n if j < 0 else j + 1
        if (c == 0x20 or c == 0x09) and fields:
            fields[-1][2] = line_end  # RFC 5322 §2.2.3 folded continuation
        elif c == 0x20 or c == 0x09:
            # RFC 5322 §2.2: a field name cannot start with white space, and a continuation
            # line needs a field before it: this line is no field (Dovecot ignores it too).
            fields.append(["", i, line_end, -1])
        else:
            colon = find(b":", i, line_end)
            name_end = line_end if colon < 0 else colon
            name = raw[i:name_end].decode("latin-1").strip().lower()
            fields.append([name, i, line_end, colon])
        i = line_end
    return fields, n, None, False


def _unfold(raw: bytes, f: list[Any]) -> str:
    """Field value with line breaks removed and leading LWSP skipped (RFC 5322 §2.2.3)."""
    colon = f[3]
    if colon < 0:
        return ""
    value = raw[colon + 1 : f[2]].decode("latin-1")
    if "\n" in value:
        value = value.replace("\r\n", "").replace("\n", "")
    if value.endswith("\r"):
        value = value[:-1]
    return value.lstrip(" \t")


def _folded(raw: bytes, f: list[Any]) -> str:
    """Field value with its line breaks kept (but not the final one), leading LWSP skipped."""
    colon = f[3]
    if colon < 0:
        return ""
    value = raw[colon + 1 : f[2]].decode("latin-1")
    if value.endswith("\n"):
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    return value.lstrip(" \t")


def _text(value: str) -> str:
    """A latin-1 (octet) string as human text: UTF-8 when it decodes, else latin-1.

    A value that is already text beyond latin-1 (an RFC 2231 value decoded with its
    charset, e.g. filename*=utf-8''%E2%9C%94) is returned as it is."""
    try:
        b = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _decode_2047(value: str) -> str:
    """RFC 2047 decoded text for SEARCH from a latin-1 (octet) field value."""
    return decode_encoded_words(_text(value))


def decode_encoded_words(text: str) -> str:
    """``text`` with its RFC 2047 encoded-words decoded (SEARCH matches decoded text); a
    word that cannot be decoded stays as written."""
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (LookupError, ValueError, email.errors.MessageError):
        # RFC 2047 §6.2: an encoded-word in an unknown charset, or one that does not decode,
        # may be shown as it appears in the header.
        return text
    except Exception as exc:
        # Anything else is a bug here or in the email package: this field degrades to its
        # raw text in production, and fails under test.
        sanity.degrade(_log, exc, "RFC 2047 decoding failed (%s); field kept as written")
        return text


def _parse_entity(
    ctx: _Ctx, pos: int, stack: list[bytes], depth: int, parent: str
) -> tuple[_Entity, _Hit | None]:
    """Parse one entity starting at ``pos``. ``parent`` is "multipart", "digest", "message"
    or "" for the top level. Returns the entity and the boundary hit that ended it."""
    raw = ctx.raw
    n = len(raw)
    ctx.parts += 1
    flds, header_end, hit, eoh = _scan_header(raw, pos, stack)
    # Subject keeps its folding: Dovecot's "string for humans" sends a folded Subject
    # as a literal with the line breaks removed (imap_append_string_for_humans).
    fields = [(f[0], _folded(raw, f) if f[0] == "subject" else _unfold(raw, f)) for f in flds]

    # RFC 2045 §4: Content-* count when the entity is MIME (Dovecot: MIME-Version, a
    # Content-Type, or being a body part of a multipart). The RFCs allow each field once and
    # say nothing of repeats: like Dovecot, the first occurrence wins, except for
    # Content-Disposition, where Dovecot keeps the last.
    content: dict[str, str] = {}
    mime = parent in ("multipart", "digest")
    for name, value in fields:
        if name == "mime-version":
            mime = True
        elif name.startswith("content-") and (
            name not in content or name == "content-disposition"
        ):
            content[name] = value
            if name == "content-type":
                mime = True
    if not mime:
        content = {}

    ct = rfc822.parse_content_type(content["content-type"]) if "content-type" in content else None
    if ct is not None and not ct.ok:
        # RFC 2045 §5.2: a syntactically invalid Content-Type is taken as the default,
        # text/plain; charset=us-ascii (Dovecot answers "" "" instead).
        ct = None
    if ct is not None:
        ltype = ct.type.lower()
        if ltype == "message" and ct.slash and ct.subtype.lower() == "rfc822":
            kind = "message"
        elif ltype == "text":
            kind = "text"
        elif ltype == "multipart" and ct.slash:
            kind = "multipart"
        else:
            kind = "other"
    else:
        kind = "message" if parent == "digest" else "text"
    if kind in ("multipart", "message") and (depth >= MAX_DEPTH or ctx.parts >= MAX_PARTS):
        kind = "opaque"

    raw_params = rfc822.decode_params(ct.params) if ct is not None else ()
    boundary = next((v for k, v in raw_params if k.lower() == "boundary"), None)
    body_start = header_end
    children: list[_Entity] = []
    end_hit: _Hit | None

    if hit is not None:
        body_end = body_start
        end_hit = hit
    elif kind == "multipart" and boundary and eoh:
        # RFC 2046 §5.1.1; like Dovecot, only a header ended by its blank line opens one.
        my_stack = [*stack, boundary.encode("latin-1")]
        my_idx = len(stack)
        child_kind = "digest" if ct is not None and ct.subtype.lower() == "digest" else "multipart"
        body_end = n
        end_hit = None
        from_child = False
        found = _find_boundary(raw, body_start, my_stack)
        while True:
            if found is None:
                body_end = children[-1].part.body_end if from_child else n
                break
            at, idx, close = found
            if idx < my_idx:
                if from_child:
                    body_end = children[-1].part.body_end
                else:
                    body_end = _before_newline(raw, at, body_start)
                end_hit = found
                break
            after = _line_after(raw, at)
            if not close and ctx.parts >= MAX_PARTS:
                # The part cap: the rest of this multipart, its remaining parts included,
                # stays unparsed like an epilogue (in BODY[] and BODY[TEXT], with no part
                # number). Counting leaves too: 100,000 small parts once made a 28 MB
                # structure that every FETCH decoded on the event loop.
                found = _find_boundary(raw, after, stack)
                body_end = n if found is None else _before_newline(raw, found[0], body_start)
                end_hit = found
                break
            if close:
                # RFC 2046 §5.1.1 epilogue: runs to an enclosing boundary or EOF.
                found = _find_boundary(raw, after, stack)
                body_end = n if found is None else _before_newline(raw, found[0], body_start)
                end_hit = found
                break
            child, found = _parse_entity(ctx, after, my_stack, depth + 1, child_kind)
            children.append(child)
            from_child = True
    elif kind == "message":
        child, end_hit = _parse_entity(ctx, body_start, stack, depth + 1, "message")
        children.append(child)
        body_end = child.part.body_end
    else:
        end_hit = _find_boundary(raw, body_start, stack)
        body_end = n if end_hit is None else _before_newline(raw, end_hit[0], body_start)
        if kind == "multipart":
            kind = "emptymultipart"

    part, body, bodystructure = _build(
        raw,
        flds,
        fields,
        content,
        ct,
        raw_params,
        kind,
        header_end,
        body_start,
        body_end,
        children,
        pos,
        parent == "",
    )
    return _Entity(part, body, bodystructure, fields), end_hit


def _build(
    raw: bytes,
    flds: list[list[Any]],
    fields: list[tuple[str, str]],
    content: dict[str, str],
    ct: rfc822.ContentType | None,
    params: tuple[tuple[str, str], ...],
    kind: str,
    header_end: int,
    body_start: int,
    body_end: int,
    children: list[_Entity],
    pos: int,
    top: bool = False,
) -> tuple[Part, str, str]:
    """Freeze a Part and write its BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, Dovecot's
    choices where the RFC leaves room)."""
    nstring = views.nstring
    cte = (
        rfc822.parse_token(content["content-transfer-encoding"])
        if ("content-transfer-encoding" in content)
        else None
    )
    disp = (
        rfc822.parse_disposition(content["content-disposition"])
        if ("content-disposition" in content)
        else None
    )
    lang = (
        rfc822.parse_language(content["content-language"])
        if ("content-language" in content)
        else ()
    )
    cid = content.get("content-id")
    desc = content.get("content-description")
    md5 = content.get("content-md5")
    loc = content.get("content-location")

    # extension data shared by every body type: disposition, language, location
    if disp is None:
        ext = " NIL"
    else:
        dparams = views.param_list(rfc822.dovecot_params(disp[1]), False)
        ext = f" ({nstring(disp[0])} {dparams})"
    ext += " NIL" if not lang else " (" + " ".join(nstring(x) for x in lang) + ")"
    ext += " " + nstring(loc)

    if kind in ("multipart", "emptymultipart"):
        assert ct is not None
        if children:
            body = "".join("(" + c.body + ")" for c in children)
            bs = "".join("(" + c.bodystructure + ")" for c in children)
        else:
            body, bs = views.EMPTY_BODY, views.EMPTY_BODYSTRUCTURE
        sub = " " + nstring(ct.subtype)
        body += sub
        bs += sub + " " + views.param_list(rfc822.dovecot_params(ct.params), False) + ext
        lines = 0
    else:
        if kind == "message":
            head = '"message" "rfc822"'
            text = False
        elif ct is None:
            head = '"text" "plain"'
            text = True
        else:
            head = nstring(ct.type) + " " + nstring(ct.subtype)
            text = ct.type.lower() == "text"
        common = (
            head
            + " "
            + views.param_list(rfc822.dovecot_params(ct.params) if ct else (), text)
            + f" {nstring(cid)} {nstring(desc)} "
            + (nstring(cte) if cte is not None else '"7bit"')
            + f" {body_end - body_start}"
        )
        lines = raw.count(b"\n", body_start, body_end)
        if text:
            common += f" {lines}"
        body = common
        if kind == "message" and children:
            # RFC 9051 §7.5.2: message/rfc822 adds envelope, body structure and lines.
            child = children[0]
            env = " (" + _envelope(raw, child.fields) + ") "
            body = common + env + "(" + child.body + ")" + f" {lines}"
            common += env + "(" + child.bodystructure + ")" + f" {lines}"
        bs = common + " " + nstring(md5) + ext
        if top and _plain_7bit(kind, ct, cid, desc, cte, md5, disp, lang, loc):
            # Dovecot answers a whole message that is plain 7-bit US-ASCII text with its
            # canonical lower-case form (index-mail's TEXT_PLAIN_7BIT_ASCII shortcut); the
            # RFC 9051 §7.5.2 strings are case-insensitive, so both forms are correct.
            # (Its BODY keeps the header's spelling.)
            size = body_end - body_start
            bs = views.EMPTY_BODYSTRUCTURE[1:-1].replace(" 0 0 ", f" {size} {lines} ")

    ctype = ct.type.lower() if ct is not None else ("message" if kind == "message" else "text")
    csub = ct.subtype.lower() if ct is not None else ("rfc822" if kind == "message" else "plain")
    part = Part(
        header_start=pos,
        header_end=header_end,
        body_start=body_start,
        body_end=body_end,
        content_type=ctype,
        content_subtype=csub,
        params=tuple((k, _text(v)) for k, v in params),
        encoding=cte.lower() if cte else "7bit",
        children=tuple(c.part for c in children),
        headers=tuple((f[0], f[1], f[2]) for f in flds),
        multipart=kind in ("multipart", "emptymultipart"),
        lines=lines,
        disposition=disp[0].lower() if disp is not None and disp[0] else None,
        disposition_params=tuple((k, _text(v)) for k, v in rfc822.decode_params(disp[1]))
        if disp is not None
        else (),
        language=lang,
        location=_text(loc) if loc is not None else None,
        content_id=_text(cid) if cid is not None else None,
        description=_text(desc) if desc is not None else None,
        md5=md5,
        nul=not (kind in ("multipart", "emptymultipart") or (kind == "message" and children))
        and raw.find(b"\x00", body_start, body_end) >= 0,
    )
    return part, body, bs


def _plain_7bit(
    kind: str,
    ct: rfc822.ContentType | None,
    cid: str | None,
    desc: str | None,
    cte: str | None,
    md5: str | None,
    disp: object,
    lang: tuple[str, ...],
    loc: str | None,
) -> bool:
    """Dovecot's message_part_data_is_plain_7bit() for a single-part message."""
    if kind != "text":
        return False
    if ct is not None:
        if ct.type.lower() != "text" or (ct.subtype and ct.subtype.lower() != "plain"):
            return False
        params = rfc822.dovecot_params(ct.params)
        if params and (
            len(params) != 1
            or params[0][0].lower() != "charset"
            or params[0][1].lower() != "us-ascii"
        ):
            return False
    if cte is not None and cte.lower() != "7bit":
        return False
    return cid is None and desc is None and md5 is None and disp is None and not lang and (
        loc is None
    )


def _envelope(raw: bytes, fields: list[tuple[str, str]]) -> str:
    """Envelope list contents (latin-1 wire text): the last Date/Subject/Message-ID/
    In-Reply-To wins; repeated address fields are concatenated, as Dovecot does."""
    text: dict[str, str] = {}
    addrs: dict[str, list[rfc822.Address]] = {}
    for name, value in fields:
        if name in _ENVELOPE_TEXT:
            text[name] = value
        elif name in _ENVELOPE_ADDR:
            # Like Dovecot, repeated address fields add up (RFC 5322 §3.6 allows one each).
            addrs.setdefault(name, []).extend(rfc822.parse_addresses(value))
    return views.envelope(text, addrs)


def _search_addrs(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    out: list[str] = []
    for a in rfc822.parse_addresses(value):
        if a.host is None:
            # A group's start marker carries its display name (RFC 9051 §7.5.2): it is
            # part of the envelope field that FROM/TO/CC/BCC search (§6.4.4; Dovecot too).
            # The end marker carries nothing.
            if a.mailbox:
                out.append(_decode_2047(a.mailbox))
            continue
        addr = _text(f"{a.mailbox}@{a.host}")
        out.append(f"{_decode_2047(a.name)} <{addr}>" if a.name else addr)
    return tuple(out)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` once. A malformed message degrades to what can be read; only a bug in
    the parser makes it fail, and then the message is still stored, as one text part, so a
    delivery is never refused for it. That fallback logs the failure and, with the sanity
    flag on (as under test), raises instead."""
    try:
        parsed = _parse(raw)
        parsed = dataclasses.replace(parsed, preview=preview.preview_text(raw, parsed.root))
        if not presented.has_nul_parts(parsed.root):
            return parsed
        # BODY and BODYSTRUCTURE describe the message as BODY sections present it: parts
        # with a NUL in base64 (RFC 3516 §6), with their sizes and line counts then.
        shown = _parse(presented.present(raw, parsed.root))
        return dataclasses.replace(parsed, body=shown.body, bodystructure=shown.bodystructure)
    except Exception as exc:
        # Not the message or the exception's text: both can hold mail content.
        sanity.degrade(
            _log, exc,
            "MIME parser failed (%s) on a message of %d octets; stored as one text part",
            len(raw),
        )
        return _fallback(raw)


def _fallback(raw: bytes) -> ParsedMessage:
    """The whole message as one text/plain part with no header and an empty envelope."""
    n = len(raw)
    root = Part(header_start=0, header_end=0, body_start=0, body_end=n)
    nil = "NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL"
    lines = raw.count(b"\n")
    body = f'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" {n} {lines})'
    return ParsedMessage(
        size=n,
        root=root,
        envelope=f"({nil})",
        body=body,
        bodystructure=body[:-1] + " NIL NIL NIL NIL)",
        preview=preview.preview_text(raw, root),
    )


def _parse(raw: bytes) -> ParsedMessage:
    ctx = _Ctx(raw)
    root, _ = _parse_entity(ctx, 0, [], 0, "")
    last: dict[str, str] = {}
    for name, value in root.fields:
        last[name] = value
    date = None
    if "date" in last:
        try:
            date = email.utils.parsedate_to_datetime(_text(last["date"]))
        except (TypeError, ValueError, IndexError, OverflowError):
            date = None
    msgid = last.get("message-id")
    subject = last.get("subject")
    if subject is not None:
        subject = subject.replace("\r\n", "").replace("\n", "")
    return ParsedMessage(
        size=len(raw),
        root=root.part,
        envelope=views.latin1_to_wire("(" + _envelope(raw, root.fields) + ")"),
        body=views.latin1_to_wire("(" + root.body + ")"),
        bodystructure=views.latin1_to_wire("(" + root.bodystructure + ")"),
        message_id=_text(msgid).strip() or None if msgid is not None else None,
        subject=_decode_2047(subject) if subject is not None else None,
        date=date,
        from_addrs=_search_addrs(last.get("from")),
        to=_search_addrs(last.get("to")),
        cc=_search_addrs(last.get("cc")),
        bcc=_search_addrs(last.get("bcc")),
        in_reply_to=_text(last["in-reply-to"]).strip() if "in-reply-to" in last else None,
        references=_text(last["references"]).strip() if "references" in last else None,
    )
