"""IMAP views of a parsed message: string quoting, ENVELOPE, BODYSTRUCTURE and sections.

Everything here works from the offsets and strings that ``parse_message`` stored, so FETCH
never re-parses a whole message. Wire strings are built as latin-1 ``str`` (one character per
octet) so IMAP literal lengths are exact octet counts; the public results convert them to
``str`` holding the wire octets as UTF-8 with surrogateescape (see ``wire_bytes``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mailstead.mime.rfc822 import Address
from mailstead.mime.sections import Section, SectionText

if TYPE_CHECKING:
    from mailstead.mime.parse import ParsedMessage, Part

NIL = "NIL"
# RFC 9051 §4.3: quoted strings cannot hold CR, LF or 8-bit octets; Dovecot also switches to
# a literal after four quoted-specials, which we mimic so wire forms compare equal.
_QUOTED_MAX_ESCAPES = 4
_NEEDS_LITERAL = re.compile("[\\r\\n\\x00\\x80-\\xff]")


def latin1_to_wire(s: str) -> str:
    """Turn an internal latin-1 wire string into the public form (UTF-8, surrogateescape)."""
    return s.encode("latin-1").decode("utf-8", "surrogateescape")


def wire_bytes(wire: str) -> bytes:
    """The exact octets of a public wire string such as ``ParsedMessage.envelope``."""
    return wire.encode("utf-8", "surrogateescape")


def nstring(value: str | None) -> str:
    """RFC 9051 §4.5 nstring from a latin-1 str: NIL, a quoted string or a literal."""
    if value is None:
        return NIL
    if _NEEDS_LITERAL.search(value) is not None or (
        value.count('"') + value.count("\\") > _QUOTED_MAX_ESCAPES
    ):
        return f"{{{len(value)}}}\r\n{value}"
    if '"' in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value + '"'


def quote_imap_string(value: str | bytes | None) -> str:
    """Public quoting helper: NIL for None, a quoted string when safe, else a literal
    ``{n}\\r\\n...`` (n counts octets). ``str`` input is taken as UTF-8 text."""
    if value is None:
        return NIL
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return latin1_to_wire(nstring(raw.decode("latin-1")))


def string_for_humans(value: str) -> str:
    """Dovecot's form for Subject and display names: runs of whitespace collapse to one
    space, CR/LF vanish, edges are trimmed, NUL becomes 0x80; any change forces a literal."""
    if value == "" or (
        _NEEDS_LITERAL.search(value) is None
        and "\t" not in value
        and "  " not in value
        and value[0] != " "
        and value[-1] != " "
        and '"' not in value
        and "\\" not in value
    ):
        return '"' + value + '"'
    cleaned = re.sub("[\r\n]", "", value.replace("\x00", "\x80"))
    cleaned = re.sub("[ \t]+", " ", cleaned).strip(" ")
    if cleaned == "":
        return '""'
    return f"{{{len(cleaned)}}}\r\n{cleaned}"


# --- ENVELOPE (RFC 9051 §7.5.2) --------------------------------------------------------------


def address_list(addrs: Sequence[Address] | None) -> str:
    """An address list, or NIL when the header is missing or holds no address."""
    if not addrs:
        return NIL
    out = ["("]
    for a in addrs:
        name = NIL if a.name is None else string_for_humans(a.name)
        out.append(f"({name} {nstring(a.route)} {nstring(a.mailbox)} {nstring(a.host)})")
    out.append(")")
    return "".join(out)


def envelope(fields: dict[str, str], addrs: dict[str, list[Address]]) -> str:
    """The envelope list body (without outer parentheses) from unfolded latin-1 values.

    ``fields`` maps date/subject/in-reply-to/message-id to raw values; ``addrs`` maps
    from/sender/reply-to/to/cc/bcc to parsed lists. Sender and Reply-To default to From
    (RFC 9051 §7.5.2)."""
    subject = fields.get("subject")
    frm = addrs.get("from")
    sender = addrs.get("sender") or frm
    reply_to = addrs.get("reply-to") or frm
    return " ".join(
        (
            nstring(fields.get("date")),
            NIL if subject is None else string_for_humans(subject),
            address_list(frm),
            address_list(sender),
            address_list(reply_to),
            address_list(addrs.get("to")),
            address_list(addrs.get("cc")),
            address_list(addrs.get("bcc")),
            nstring(fields.get("in-reply-to")),
            nstring(fields.get("message-id")),
        )
    )


# --- BODY / BODYSTRUCTURE (RFC 9051 §7.5.2) --------------------------------------------------


def param_list(params: Sequence[tuple[str, str]], default_charset: bool) -> str:
    """``("name" "value" ...)`` or NIL; text parts get charset us-ascii when missing."""
    if not params and not default_charset:
        return NIL
    items = [nstring(n) + " " + nstring(v) for n, v in params]
    if default_charset and not any(n.lower() == "charset" for n, _ in params):
        items.append('"charset" "us-ascii"')
    return "(" + " ".join(items) + ")"


EMPTY_BODY = '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
EMPTY_BODYSTRUCTURE = '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'


# --- sections (RFC 9051 §6.4.5) --------------------------------------------------------------


def _is_message(part: Part) -> bool:
    return part.content_type == "message" and len(part.children) == 1 and not part.multipart


def find_part(parsed: ParsedMessage, path: tuple[int, ...]) -> Part | None:
    """Resolve an IMAP part number. A message/rfc822 part is entered before its number is
    applied, and a non-multipart entity's only part is "1" (RFC 9051 §6.4.5)."""
    cur = parsed.root
    for depth, n in enumerate(path):
        if depth > 0 and _is_message(cur):
            cur = cur.children[0]
        if cur.multipart:
            if not 1 <= n <= len(cur.children):
                return None
            cur = cur.children[n - 1]
        elif n != 1:
            return None
    return cur


def header_fields(raw: bytes, part: Part, names: frozenset[str], exclude: bool) -> bytes:
    """Selected header fields in their original order plus the blank line (RFC 9051 §6.4.5)."""
    return select_fields(raw, part.headers, names, exclude)


def select_fields(
    raw: bytes, headers: Iterable[Sequence[Any]], names: frozenset[str], exclude: bool
) -> bytes:
    """The fields of ``headers`` (``(name, start, end)``) named (or, with ``exclude``, not
    named) in ``names``, plus the blank line."""
    chunks = [raw[start:end] for name, start, end in headers if (name in names) != exclude]
    chunks.append(b"\r\n")
    return b"".join(chunks)


def section_span(parsed: ParsedMessage, section: Section) -> tuple[int, int] | None:
    """Where BODY[section] lies in the message, as [start, end) octet offsets; (0, 0) for
    a part that does not exist (RFC 9051 §6.4.5: empty). None for a HEADER.FIELDS
    selection, which is made of chosen lines, not one range. With a span, a large body is
    sent straight from the store, never held whole."""
    if not section.path and section.text is None:
        return 0, parsed.size
    part = find_part(parsed, section.path) if section.path else parsed.root
    if part is None:
        return 0, 0
    text = section.text
    if text is None:
        return part.body_start, part.body_end
    if text is SectionText.MIME:
        return part.header_start, part.header_end
    if section.path:
        # HEADER/TEXT of a part address the message embedded in a message/rfc822 part.
        if not _is_message(part):
            return 0, 0
        part = part.children[0]
    if text is SectionText.HEADER:
        return part.header_start, part.header_end
    if text is SectionText.TEXT:
        return part.body_start, part.body_end
    return None


def section_bytes(raw: bytes, parsed: ParsedMessage, section: Section) -> bytes:
    """The octets of BODY[section]; b"" for a part that does not exist (RFC 9051 §6.4.5)."""
    span = section_span(parsed, section)
    if span is not None:
        start, end = span
        return raw if (start, end) == (0, len(raw)) else raw[start:end]
    part = find_part(parsed, section.path) if section.path else parsed.root
    if part is None:
        return b""  # not reached: section_span answers (0, 0) for a missing part
    if section.path:
        part = part.children[0]  # a field selection of a part: its embedded message
    return header_fields(
        raw, part, section.field_names, section.text is SectionText.HEADER_FIELDS_NOT
    )


def decoded_header(raw: bytes, part: Part) -> bytes:
    """The header of ``part`` as it heads the part's body once decoded (BINARY[] of a
    single-part message, RFC 3516 §4.2): the first Content-Transfer-Encoding field says
    ``binary`` and later ones are dropped, so the header describes the octets after it, as
    Dovecot writes it. Every other field keeps its octets and its place."""
    chunks: list[bytes] = []
    position = part.header_start
    replaced = False
    for name, start, end in part.headers:
        if name != "content-transfer-encoding":
            continue
        chunks.append(raw[position:start])
        if not replaced:
            chunks.append(b"Content-Transfer-Encoding: binary\r\n")
            replaced = True
        position = end
    chunks.append(raw[position : part.header_end])
    return b"".join(chunks)


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(c for c in range(256) if c not in _B64_ALPHABET)  # octets BINARY skips


def decode_part_body(raw: bytes, part: Part) -> bytes:
    """Content-Transfer-Encoding decoded body for IMAP BINARY (RFC 3516); lenient: junk
    characters are skipped and a truncated base64 tail is dropped rather than failing."""
    decoder = PartDecoder(part.encoding)
    body = memoryview(raw)[part.body_start : part.body_end]
    return decoder.feed(body) + decoder.end()


# RFC 2045 §6.7 rule 3: white space at the end of an encoded line is transport padding.
_QP_PADDING = re.compile(rb"[ \t]+(?=\r?\n)")


def decode_quoted_printable(lines: bytes, *, final: bool = False) -> bytes:
    """Quoted-printable text decoded as RFC 2045 §6.7 says, for whole lines (each ending in
    LF) or, with ``final``, the text after the last line end too.

    ``binascii.a2b_qp`` alone keeps trailing white space, which rule 3 calls transport
    padding that "MUST be deleted" on decoding, and so misses a soft line break written as
    ``=`` with padding after it (rule 5: "=" then optional padding then the line end). The
    padding is removed first, so ``a2b_qp`` sees ``=`` right before the line end; the last
    line of a body, which has no line end, loses its padding too (as Dovecot decodes it).
    Only white space before a line end is padding: inside a line it is text."""
    unpadded = _QP_PADDING.sub(b"", lines)
    if final:
        unpadded = unpadded.rstrip(b" \t")
    return binascii.a2b_qp(unpadded)


class PartDecoder:
    """:func:`decode_part_body` in pieces, for a body read from the store as it is sent:
    :meth:`feed` the encoded octets in any split, then :meth:`end`. The pieces joined are
    exactly what the whole body decodes to (property-tested), so a 40 MB attachment never
    needs 40 MB of memory to be served as BINARY.

    base64 keeps back the alphabet characters past the last whole quantum (at most three).
    Quoted-printable keeps back the text after the last line end: an escape, a soft line
    break (``=``, padding, line end) and transport padding never reach past a line end, so
    decoding whole lines at a time is exact (:func:`decode_quoted_printable`); a single line
    is decoded whole, however long.
    """

    __slots__ = ("_carry", "_line", "encoding")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._carry = b""
        self._line: list[bytes] = []  # quoted-printable text since the last line end

    def feed(self, piece: bytes | memoryview) -> bytes:
        if self.encoding == "base64":
            # translate() deletes every non-alphabet octet in one pass into one new buffer.
            data = bytes(piece).translate(None, _B64_JUNK)
            if self._carry:
                data = self._carry + data
            whole = len(data) - len(data) % 4
            self._carry = data[whole:]
            return binascii.a2b_base64(memoryview(data)[:whole]) if whole else b""
        if self.encoding == "quoted-printable":
            piece = bytes(piece)
            cut = piece.rfind(b"\n") + 1
            if not cut:
                self._line.append(piece)
                return b""
            lines = b"".join([*self._line, piece[:cut]]) if self._line else piece[:cut]
            self._line = [piece[cut:]] if cut < len(piece) else []
            return decode_quoted_printable(lines)
        return bytes(piece)  # 7bit, 8bit, binary: the octets as they are

    def end(self) -> bytes:
        if self.encoding == "base64":
            carry, self._carry = self._carry, b""
            if len(carry) % 4 == 1:
                return b""  # one lone character cannot encode an octet: dropped
            return binascii.a2b_base64(carry + b"=" * (-len(carry) % 4)) if carry else b""
        if self.encoding == "quoted-printable":
            rest, self._line = b"".join(self._line), []
            return decode_quoted_printable(rest, final=True) if rest else b""
        return b""
