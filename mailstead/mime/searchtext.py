"""The text SEARCH compares with, in one place: what IMAP SEARCH scans and what the full-text
index stores are made by the same functions, so the index cannot drift from the scan.

RFC 9051 §6.4.4 text keys match a case-insensitive substring of decoded text; "case-
insensitive" here is Python's full Unicode case folding (:func:`fold`) of both sides. Pure:
bytes and a stored structure in, strings out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mailstead.mime.imap_views import decode_part_body
from mailstead.mime.parse import Part, decode_encoded_words
from mailstead.mime.stored import StoredStructure

#: The columns of the index, in the order :class:`IndexText` gives them. ``hvalues`` holds
#: every top-level field's decoded value (what HEADER name text compares with), ``headers``
#: every field of every part whole (what TEXT compares with besides the body).
COLUMNS = ("subject", "addr_from", "addr_to", "addr_cc", "addr_bcc", "hvalues", "headers", "body")

#: Leaf types whose decoded content is searched as text. Dovecot searches these alone; an
#: image, archive or PDF decoded from base64 is bytes, and a short word would match by
#: chance in nearly every such attachment.
_TEXT_TYPES = frozenset({"text", "message"})


def fold(text: str) -> str:
    """The case-insensitive form both a needle and the text it is looked for in take."""
    return text.casefold()


def decode_header_value(value: bytes) -> str:
    """A field (or its value) unfolded, RFC 2047 encoded-words decoded."""
    text = value.decode("utf-8", "replace")
    return decode_encoded_words(text.replace("\r\n", "").replace("\n", ""))


def header_values(raw: bytes, structure: StoredStructure, name: str | None) -> list[str]:
    """The decoded values of the message's own fields called ``name`` (every field when
    None), in order: what HEADER name text compares with."""
    wanted = name.lower() if name is not None else None
    out = []
    for field_name, start, end in structure.parsed.root.headers:
        if wanted is None or field_name == wanted:
            line = raw[start:end]
            colon = line.find(b":")
            out.append(decode_header_value(line[colon + 1 :] if colon >= 0 else b"").strip())
    return out


def every_part(part: Part) -> Iterator[Part]:
    """The part and everything inside it: body parts of a multipart and the message of a
    message/rfc822 part, each with a header of its own."""
    yield part
    for child in part.children:
        yield from every_part(child)


def _text_parts(part: Part) -> list[Part]:
    """Every text leaf, attached messages' included (RFC 9051 §6.4.4 "the body")."""
    return [p for p in every_part(part) if not p.children and p.content_type in _TEXT_TYPES]


def body_text(raw: bytes, structure: StoredStructure) -> str:
    """Every text part decoded (transfer encoding, then charset), one after the other. An
    HTML part is searched as it is written, tags included, as Dovecot searches it without
    an FTS plugin (docs/decisions/0027)."""
    chunks = []
    for part in _text_parts(structure.parsed.root):
        data = decode_part_body(raw, part)
        charset = part.param("charset") or "us-ascii"
        try:
            chunks.append(data.decode(charset, "replace"))
        except LookupError:
            chunks.append(data.decode("utf-8", "replace"))
    return "\n".join(chunks)


def header_text(raw: bytes, structure: StoredStructure) -> str:
    """Every header field of the message: the top-level header, the MIME header of each body
    part and the header of each attached message. TEXT looks at the "header (including MIME
    header fields)" (RFC 9051 §6.4.4), and Dovecot searches all of these. Fields are decoded
    one by one so that a word cannot run on from one field into the next."""
    fields = []
    for part in every_part(structure.parsed.root):
        for _name, start, end in part.headers:
            fields.append(decode_header_value(raw[start:end]))
    return "\n".join(fields)


@dataclass(frozen=True, slots=True)
class IndexText:
    """One message's folded text per column (:data:`COLUMNS` order), each cut to the
    configured limit; ``complete`` is False when any column was cut, so that a needle not
    found in the index may still be in the message (the search then scans it)."""

    values: tuple[str, ...]
    complete: bool


def index_text(raw: bytes, structure: StoredStructure, limit: int) -> IndexText:
    """What the full-text index stores for a message: exactly the strings the scan in
    ``imap/search.py`` compares with, folded, at most ``limit`` characters per column."""
    values = (
        fold(structure.subject or ""),
        "\n".join(fold(a) for a in structure.from_addrs),
        "\n".join(fold(a) for a in structure.to),
        "\n".join(fold(a) for a in structure.cc),
        "\n".join(fold(a) for a in structure.bcc),
        "\n".join(fold(v) for v in header_values(raw, structure, None)),
        fold(header_text(raw, structure)),
        fold(body_text(raw, structure)),
    )
    complete = all(len(v) <= limit for v in values)
    return IndexText(tuple(v[:limit] for v in values), complete)
