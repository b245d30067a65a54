"""The stored form of a parsed message: its one writer and its readers, side by side.

``parse_message`` runs once, at delivery; the store keeps what :func:`encode` returns next to
the body, and every later FETCH, SEARCH and POP3 TOP reads it back through
:class:`StoredStructure`. Most of those reads want one or two small fields (a client's
message list asks for ENVELOPE of 10,000 messages; SEARCH FROM wants the sender), so the
layout puts those fields where a reader can slice them out without decoding the part tree.
Change the layout here, next to the readers that depend on it, and give it a new version.

Layout version 3 (written by :func:`encode`)::

    v3 <header end> <end 1> <end 2> <end 3> <end 4> <end 5> <end 6>\\n
    ENVELOPE octets | BODY octets | BODYSTRUCTURE octets | top headers JSON | search JSON
    | tree JSON | PREVIEW text

The first line is ASCII of a fixed length (122 octets): the version, then seven numbers of
16 hexadecimal digits: the root's header end (an offset into the message), and where each of
the first six segments ends (offsets into the stored octets; the first segment starts right
after the line, each next one where the previous ends, and the last runs to the end). Fixed
width hexadecimal keeps the row readable and lets one ``bytes.fromhex`` and one
``struct.unpack`` read all the numbers: the line is read for every message a FETCH or SEARCH
touches.

ENVELOPE, BODY and BODYSTRUCTURE are the exact IMAP wire octets (``imap_views.wire_bytes``),
so a reader decodes a slice and nothing else. The top headers are the message's own header
index (``[[name, start, end], ...]``: HEADER.FIELDS and THREADID answer from it), the search
JSON holds the SEARCH fields (subject, from, to, cc, bcc, date), the tree JSON holds the
rest: size, Message-ID, In-Reply-To, References and the part tree (whose root leaves out the
headers already stored in the top headers segment), and the PREVIEW text is the RFC 8970
preview in UTF-8 (``mime/preview.py``; a message list asks for it beside ENVELOPE).

Version 2 (older rows, still read) is version 3 without the PREVIEW segment: ``v2`` and six
numbers (105 octets), the tree running to the end. Every segment keeps its index in both, so
the readers differ only in the first line and in the PREVIEW segment, which version 2 rows
do not have (``StoredStructure.preview`` is None).

Version 1 (older rows, still read): one JSON document ``{"v": 1, "size": ..., "envelope":
..., "root": {...}}`` holding every field. Its writer put ENVELOPE, BODY and BODYSTRUCTURE
first and the root part's offsets and header index at the front of ``root``, so the fields a
message list asks for (ENVELOPE, header fields) are read from there without decoding the
document, as before version 2; anything else, or a document in another key order, decodes
the whole document once. Rows keep the version they were written in.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from mailstead.mime.imap_views import wire_bytes
from mailstead.mime.parse import ParsedMessage, Part

#: The layout :func:`encode` writes.
VERSION = 3


@dataclass(frozen=True, slots=True)
class _Layout:
    """One segmented layout version: its magic and the numbers of its first line."""

    version: int
    numbers: struct.Struct  # the first line's numbers, from the octets of their digits

    @property
    def magic(self) -> bytes:
        return b"v%d " % self.version

    @property
    def first_line(self) -> int:
        """The magic, then the numbers of 16 hexadecimal digits, each followed by a space
        or the newline."""
        return len(self.magic) + 17 * (self.numbers.size // 8)


_V2 = _Layout(2, struct.Struct(">6Q"))
_V3 = _Layout(3, struct.Struct(">7Q"))
_LAYOUTS = {layout.magic: layout for layout in (_V2, _V3)}

_DECODER = json.JSONDecoder()

#: How a version 1 document starts, up to its ENVELOPE string.
_V1_HEAD = re.compile(rb'\{"v":1,"size":\d+,"envelope":')
#: The root part's first keys in a version 1 document (a JSON string cannot hold an
#: unescaped quote, so the first match is the structure's own).
_V1_ROOT = re.compile(rb',"root":\{"hs":\d+,"he":(\d+),')

#: How a version 2 tree segment starts, up to its Message-ID (``encode`` writes these keys
#: first, so THREAD reads the three reference fields without decoding the part tree).
_TREE_HEAD = re.compile(rb'\{"size":\d+,"message_id":')

#: Version 2 segments, in their order: index into the bounds ``_read_layout`` returns.
_ENVELOPE, _BODY, _BODYSTRUCTURE, _TOP_HEADERS, _SEARCH, _TREE = range(6)
#: The segment version 3 adds after them.
_PREVIEW = 6


def _dumps(value: object) -> bytes:
    """Compact ASCII JSON; ``ensure_ascii`` keeps lone surrogates (surrogate-escaped octets
    in decoded text) representable as ``\\udcXX`` escapes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _load_document(data: bytes | str) -> dict[str, Any]:
    """Decode a whole JSON document: a version 1 structure or a version 2/3 tree segment.

    The one place the slow path decodes everything, so a test can prove the fast readers
    never come here."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("a stored structure document must be a JSON object")
    return doc


def encode(parsed: ParsedMessage) -> bytes:
    """The octets the store keeps for ``parsed`` (layout version 3, described above)."""
    envelope = wire_bytes(parsed.envelope)
    body = wire_bytes(parsed.body)
    bodystructure = wire_bytes(parsed.bodystructure)
    top_headers = _dumps([list(h) for h in parsed.root.headers])
    search = _dumps(
        {
            "subject": parsed.subject,
            "from": list(parsed.from_addrs),
            "to": list(parsed.to),
            "cc": list(parsed.cc),
            "bcc": list(parsed.bcc),
            "date": parsed.date.isoformat() if parsed.date is not None else None,
        }
    )
    root = _part_to_dict(parsed.root)
    del root["headers"]  # they are the top headers segment
    tree = _dumps(
        {
            "size": parsed.size,
            "message_id": parsed.message_id,
            "in_reply_to": parsed.in_reply_to,
            "references": parsed.references,
            "root": root,
        }
    )
    preview = (parsed.preview or "").encode("utf-8", "surrogatepass")
    segments = (envelope, body, bodystructure, top_headers, search, tree, preview)
    ends = []
    offset = _V3.first_line
    for segment in segments[:-1]:
        offset += len(segment)
        ends.append(offset)
    numbers = " ".join(f"{n:016x}" for n in (parsed.root.header_end, *ends))
    return b"".join((_V3.magic, numbers.encode("ascii"), b"\n", *segments))


def decode(data: bytes) -> ParsedMessage:
    """The whole parse result back from stored octets of any layout version."""
    return StoredStructure(data).parsed


def _read_layout(data: bytes) -> tuple[_Layout, int, tuple[int, ...]] | None:
    """(layout, root header end, segment bounds) of a version 2 or 3 structure, where
    segment ``i`` spans ``bounds[i]:bounds[i + 1]``; None for a version 1 JSON document.

    Raises ValueError for octets that are neither (a corrupt row must not be read as some
    other message's fields)."""
    layout = _LAYOUTS.get(data[:3])
    if layout is None:
        if data[:1] == b"{":
            return None
        raise ValueError("not a stored structure")
    first = layout.first_line
    if data[first - 1 : first] != b"\n":
        raise ValueError("not a segmented stored structure")
    try:
        digits = data[len(layout.magic) : first - 1].decode("ascii")
        header_end, *ends = layout.numbers.unpack(bytes.fromhex(digits))
    except (ValueError, struct.error):
        raise ValueError("not a segmented stored structure") from None
    bounds = (first, *ends, len(data))
    if list(bounds) != sorted(bounds):  # in C: this runs for every message a FETCH reads
        raise ValueError("not a segmented stored structure")
    return layout, header_end, bounds


class StoredStructure:
    """One message's stored structure, read lazily: each field decodes only what it needs.

    Field names are ParsedMessage's. For a version 2 or 3 structure the fast readers
    (envelope, body, bodystructure, header_end, top_headers, the SEARCH fields and, in
    version 3, preview) slice their segment and never decode the part tree; ``parsed``
    builds the whole tree, for body sections, BINARY and part-level searches. A version 1
    structure decodes its whole document once and answers every field from it.
    """

    def __init__(self, data: bytes) -> None:
        """Raises ValueError when ``data`` is in no known layout."""
        self._data = data
        found = _read_layout(data)
        self._layout = found[0] if found is not None else None
        self._v2 = found is not None  # segmented: version 2 or later
        self._header_end, self._bounds = found[1:] if found is not None else (0, ())

    @property
    def encoded_size(self) -> int:
        """Octets of the stored form: what decoding the whole tree costs grows with it."""
        return len(self._data)

    def _segment(self, index: int) -> bytes:
        """One segment of a version 2 or 3 structure, by its index (``_ENVELOPE`` ...)."""
        return self._data[self._bounds[index] : self._bounds[index + 1]]

    @cached_property
    def _v1(self) -> dict[str, Any]:
        """The whole version 1 document (only read for a version 1 structure)."""
        return _load_document(self._data)

    @cached_property
    def _v1_text(self) -> str:
        """A version 1 document as text (its writer escaped everything to ASCII)."""
        return self._data.decode("ascii", "replace")

    @cached_property
    def _v1_head(self) -> tuple[str, str, str]:
        """ENVELOPE, BODY and BODYSTRUCTURE of a version 1 document, read where its writer
        put them, each by the JSON decoder at its offset; from the whole document when the
        layout is not that one."""
        match = _V1_HEAD.match(self._data)
        if match is not None:
            text = self._v1_text
            try:
                envelope, end = _DECODER.raw_decode(text, match.end())
                if text.startswith(',"body":', end):
                    body, end = _DECODER.raw_decode(text, end + 8)
                    if text.startswith(',"bodystructure":', end):
                        bodystructure, _ = _DECODER.raw_decode(text, end + 17)
                        head = (envelope, body, bodystructure)
                        if all(isinstance(value, str) for value in head):
                            return head
            except ValueError:
                pass
        doc = self._v1
        return str(doc["envelope"]), str(doc["body"]), str(doc["bodystructure"])

    def _wire(self, index: int) -> str:
        """A wire segment as ``str``, in the form ParsedMessage keeps wire strings."""
        return self._segment(index).decode("utf-8", "surrogateescape")

    def _json(self, index: int) -> Any:
        """A JSON segment, decoded: as ASCII to a str first (``json.loads`` would guess the
        encoding of bytes), then by the decoder's scanner directly (the segment is exactly
        one value, so ``loads``'s checks around it are only overhead on the hot path)."""
        value, _ = _DECODER.raw_decode(self._segment(index).decode("ascii"))
        return value

    @property
    def version(self) -> int:
        """The layout version the structure was written in."""
        return self._layout.version if self._layout is not None else 1

    @property
    def preview(self) -> str | None:
        """The RFC 8970 preview made at delivery, a slice of its own segment; None for a
        structure stored before previews were (versions 1 and 2)."""
        if self._layout is not _V3:
            return None
        return self._segment(_PREVIEW).decode("utf-8", "replace")

    @property
    def envelope(self) -> str:
        if not self._v2:
            return self._v1_head[0]
        return self._wire(_ENVELOPE)

    @property
    def body(self) -> str:
        if not self._v2:
            return self._v1_head[1]
        return self._wire(_BODY)

    @property
    def bodystructure(self) -> str:
        if not self._v2:
            return self._v1_head[2]
        return self._wire(_BODYSTRUCTURE)

    @property
    def header_end(self) -> int:
        """Where the message's header section ends (RFC822.HEADER, BODY[HEADER], SEARCH
        HEADER read only that many octets of the body)."""
        if not self._v2:
            match = _V1_ROOT.search(self._data)
            return int(match.group(1)) if match is not None else int(self._v1["root"]["he"])
        return self._header_end

    @cached_property
    def has_nul_parts(self) -> bool:
        """Whether a part's body is presented in base64 by BODY sections (``Part.nul``,
        mime/presented.py), read without decoding the tree: in the tree segment ``"nul":true``
        can only be that key (a quote inside a JSON string is escaped). Version 1 rows were
        written before the flag and have none."""
        return self._v2 and b'"nul":true' in self._segment(_TREE)

    @cached_property
    def top_headers(self) -> list[list[Any]]:
        """The message's own header index, ``[name, start, end]`` per field in order."""
        if not self._v2:
            return self._v1_top_headers()
        decoded = self._json(_TOP_HEADERS)
        if not isinstance(decoded, list):
            raise ValueError("stored top headers must be a JSON list")
        return decoded

    def _v1_top_headers(self) -> list[list[Any]]:
        """A version 1 root's header index: the first ``"headers":`` after the root's start
        is the root's own (its children follow its own keys), decoded alone."""
        match = _V1_ROOT.search(self._data)
        at = self._data.find(b'"headers":', match.end()) if match is not None else -1
        if at >= 0:
            try:
                headers, _ = _DECODER.raw_decode(self._v1_text, at + 10)
            except ValueError:
                headers = None
            if isinstance(headers, list):
                return headers
        found: list[list[Any]] = self._v1["root"]["headers"]
        return found

    @cached_property
    def _search(self) -> dict[str, Any]:
        """The SEARCH fields: the search segment, or the version 1 document (same keys)."""
        if not self._v2:
            return self._v1
        decoded = self._json(_SEARCH)
        if not isinstance(decoded, dict):
            raise ValueError("stored search fields must be a JSON object")
        return decoded

    @property
    def subject(self) -> str | None:
        value = self._search.get("subject")
        return None if value is None else str(value)

    @property
    def from_addrs(self) -> tuple[str, ...]:
        return tuple(self._search.get("from", ()))

    @property
    def to(self) -> tuple[str, ...]:
        return tuple(self._search.get("to", ()))

    @property
    def cc(self) -> tuple[str, ...]:
        return tuple(self._search.get("cc", ()))

    @property
    def bcc(self) -> tuple[str, ...]:
        return tuple(self._search.get("bcc", ()))

    @property
    def date(self) -> datetime | None:
        value = self._search.get("date")
        return datetime.fromisoformat(value) if value else None

    @cached_property
    def references_fields(self) -> tuple[str | None, str | None, str | None]:
        """Message-ID, In-Reply-To and References as stored (THREAD's input, RFC 5256 §5),
        read from the front of the tree segment without decoding the part tree; from the
        whole document for a version 1 row or a tree in another key order."""
        if self._v2:
            tree = self._segment(_TREE)
            match = _TREE_HEAD.match(tree)
            if match is not None:
                text = tree.decode("ascii", "replace")
                try:
                    message_id, end = _DECODER.raw_decode(text, match.end())
                    if text.startswith(',"in_reply_to":', end):
                        in_reply_to, end = _DECODER.raw_decode(text, end + 15)
                        if text.startswith(',"references":', end):
                            references, _ = _DECODER.raw_decode(text, end + 14)
                            found = (message_id, in_reply_to, references)
                            if all(v is None or isinstance(v, str) for v in found):
                                return found
                except ValueError:
                    pass
            doc = _load_document(tree.decode("ascii"))
        else:
            doc = self._v1
        return doc.get("message_id"), doc.get("in_reply_to"), doc.get("references")

    @cached_property
    def parsed(self) -> ParsedMessage:
        """The whole parse result with the part tree (decodes everything)."""
        if not self._v2:
            doc = self._v1
            root = doc["root"]
        else:
            doc = _load_document(self._segment(_TREE).decode("ascii"))
            root = {**doc["root"], "headers": self.top_headers}
        return ParsedMessage(
            size=doc["size"],
            root=_part_from_dict(root),
            envelope=self.envelope,
            body=self.body,
            bodystructure=self.bodystructure,
            message_id=doc.get("message_id"),
            subject=self.subject,
            date=self.date,
            from_addrs=self.from_addrs,
            to=self.to,
            cc=self.cc,
            bcc=self.bcc,
            in_reply_to=doc.get("in_reply_to"),
            references=doc.get("references"),
            preview=self.preview,
        )


# --- the part tree, as both versions store it ------------------------------------------------


def _part_to_dict(part: Part) -> dict[str, Any]:
    """One part as JSON-ready data; keys that hold their default are left out."""
    d: dict[str, Any] = {
        "hs": part.header_start,
        "he": part.header_end,
        "bs": part.body_start,
        "be": part.body_end,
        "type": part.content_type,
        "subtype": part.content_subtype,
        "enc": part.encoding,
        "lines": part.lines,
        "headers": [list(h) for h in part.headers],
    }
    if part.params:
        d["params"] = [list(p) for p in part.params]
    if part.multipart:
        d["multipart"] = True
    if part.children:
        d["children"] = [_part_to_dict(c) for c in part.children]
    if part.nul:
        d["nul"] = True  # absent in rows written before the flag: read as False
    if part.disposition is not None:
        d["disp"] = part.disposition
    if part.disposition_params:
        d["disp_params"] = [list(p) for p in part.disposition_params]
    if part.language:
        d["lang"] = list(part.language)
    for key, value in (
        ("loc", part.location),
        ("id", part.content_id),
        ("desc", part.description),
        ("md5", part.md5),
    ):
        if value is not None:
            d[key] = value
    return d


def _part_from_dict(d: dict[str, Any]) -> Part:
    return Part(
        header_start=d["hs"],
        header_end=d["he"],
        body_start=d["bs"],
        body_end=d["be"],
        content_type=d["type"],
        content_subtype=d["subtype"],
        params=tuple((n, v) for n, v in d.get("params", ())),
        encoding=d["enc"],
        children=tuple(_part_from_dict(c) for c in d.get("children", ())),
        headers=tuple((n, s, e) for n, s, e in d["headers"]),
        multipart=d.get("multipart", False),
        lines=d["lines"],
        disposition=d.get("disp"),
        disposition_params=tuple((n, v) for n, v in d.get("disp_params", ())),
        language=tuple(d.get("lang", ())),
        location=d.get("loc"),
        content_id=d.get("id"),
        description=d.get("desc"),
        md5=d.get("md5"),
        nul=d.get("nul", False),
    )
