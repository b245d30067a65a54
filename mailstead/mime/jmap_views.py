"""JMAP views of a parsed message: the Email's body parts, lists and values (RFC 8621 §4.1.4).

Like ``imap_views``, everything here works from the part tree ``parse_message`` stored and the
message octets; nothing re-parses the message. The header properties (§4.1.2, §4.1.3) live in
``jmap_headers``; :func:`email_header_properties` is the bridge for a whole message.

Part ids are IMAP part numbers (RFC 9051 §6.4.5): the body of a single-part message is "1",
the parts of a multipart "1", "2", their parts "2.1", ... So a JMAP partId names the part
that ``BODY[partId]`` (encoded) and ``BINARY[partId]`` (decoded, as :func:`part_octets`
gives it) name in IMAP; both find it with ``imap_views.find_part``. Multipart parts have no
part id (§4.1.4: null exactly for them), and a message/rfc822 part is a leaf: JMAP does not
look inside an attached message (a client reads it with Email/parse and the part's blobId).

Sizes are of the transfer-decoded octets (§4.1.4 ``size``): base64 sizes are counted, not
decoded; a quoted-printable part is decoded to be measured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mailstead.mime import jmap_headers as jh
from mailstead.mime.imap_views import PartDecoder, decode_part_body, find_part
from mailstead.mime.preview import preview_text

if TYPE_CHECKING:
    from mailstead.mime.parse import ParsedMessage, Part

#: Email/get's bodyProperties when the client gives none (RFC 8621 §4.2).
DEFAULT_BODY_PROPERTIES: tuple[str, ...] = (
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language",
    "location",
)  # fmt: skip
#: Every EmailBodyPart property that is not a ``header:`` one (§4.1.4).
BODY_PROPERTIES = frozenset({*DEFAULT_BODY_PROPERTIES, "headers", "subParts"})

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(c for c in range(256) if c not in _B64_ALPHABET)


def body_property_valid(name: str) -> bool:
    """Whether ``name`` may be asked for in bodyProperties (else invalidArguments)."""
    return name in BODY_PROPERTIES or jh.header_property(name) is not None


@dataclass(frozen=True, slots=True, eq=False)
class BodyPart:
    """One EmailBodyPart: the parsed part, its IMAP path, and what §4.1.4 reads of it.

    Compared by identity: the same part may sit in textBody and htmlBody, and the
    algorithm asks whether it is "the same" part."""

    part: Part
    path: tuple[int, ...]  # IMAP part number; () for a multipart root
    sub_parts: tuple[BodyPart, ...] | None  # None for a leaf
    in_related: bool  # a direct child of a multipart/related

    @property
    def part_id(self) -> str | None:
        return None if self.sub_parts is not None else ".".join(map(str, self.path))

    @property
    def type(self) -> str:
        """Content-Type without parameters, lower case; the MIME default when absent."""
        return f"{self.part.content_type}/{self.part.content_subtype}"

    @property
    def charset(self) -> str | None:
        """§4.1.4: the charset parameter, or us-ascii for text with none; null otherwise."""
        charset = self.part.param("charset")
        if charset is not None:
            return charset
        return "us-ascii" if self.part.content_type == "text" else None

    @property
    def name(self) -> str | None:
        """§4.1.4: Content-Disposition's filename (RFC 2231), else Content-Type's name
        (RFC 2047: an encoded-word there is decoded, and in a filename too, where mailers
        put them although RFC 2231 is the standard)."""
        part = self.part
        low = "filename"
        value = next((v for k, v in part.disposition_params if k.lower() == low), None)
        if value is None:
            value = part.param("name")
        return None if value is None else jh.decode_words(value)

    @property
    def cid(self) -> str | None:
        """§4.1.4: Content-Id without CFWS and angle brackets."""
        value = self.part.content_id
        if value is None:
            return None
        value = "".join(jh.without_comments(value).split())
        if value.startswith("<") and value.endswith(">"):
            value = value[1:-1]
        return value

    @property
    def disposition(self) -> str | None:
        return self.part.disposition

    def leaves(self) -> Iterator[BodyPart]:
        """Every leaf under this part, depth first."""
        if self.sub_parts is None:
            yield self
        else:
            for sub in self.sub_parts:
                yield from sub.leaves()


def _body_part(part: Part, path: tuple[int, ...], in_related: bool) -> BodyPart:
    if part.content_type != "multipart":
        return BodyPart(part, path or (1,), None, in_related)
    related = part.content_subtype == "related"
    subs = tuple(_body_part(child, (*path, i), related) for i, child in enumerate(part.children, 1))
    return BodyPart(part, path, subs, in_related)


def _is_inline_media_type(type_: str) -> bool:
    """§4.1.4 isInlineMediaType."""
    return type_.startswith(("image/", "audio/", "video/"))


def _parse_structure(
    parts: Sequence[BodyPart],
    multipart_type: str,
    in_alternative: bool,
    html_body: list[BodyPart] | None,
    text_body: list[BodyPart] | None,
    attachments: list[BodyPart],
) -> None:
    """RFC 8621 §4.1.4 parseStructure, transcribed from its JavaScript. ``html_body`` and
    ``text_body`` set to None inside the loop stop only this call (and the calls it makes)
    from adding to that list, as reassigning a JavaScript parameter does."""
    # For multipartType == alternative
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1

    for i, part in enumerate(parts):
        type_ = part.type
        is_multipart = part.sub_parts is not None
        # Is this a body part rather than an attachment
        is_inline = (
            part.disposition != "attachment"
            # Must be one of the allowed body types
            and (type_ in ("text/plain", "text/html") or _is_inline_media_type(type_))
            # If multipart/related, only the first part can be inline. If a text part with
            # a filename, and not the first item in the multipart, assume it is an attachment
            and (
                i == 0
                or (multipart_type != "related" and (_is_inline_media_type(type_) or not part.name))
            )
        )
        if is_multipart:
            assert part.sub_parts is not None
            sub_multi_type = part.part.content_subtype
            _parse_structure(
                part.sub_parts,
                sub_multi_type,
                in_alternative or sub_multi_type == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                if type_ == "text/plain" and text_body is not None:
                    text_body.append(part)
                elif type_ == "text/html" and html_body is not None:
                    html_body.append(part)
                elif type_ not in ("text/plain", "text/html"):
                    attachments.append(part)
                continue
            if in_alternative:
                if type_ == "text/plain":
                    html_body = None
                if type_ == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _is_inline_media_type(type_):
                attachments.append(part)
        else:
            attachments.append(part)

    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        # Found HTML part only
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        # Found plain text part only
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


class EmailBody:
    """The body of one message as JMAP sees it, worked out once: the part tree and the
    textBody, htmlBody and attachments lists (§4.1.4), rendered with :meth:`render`."""

    def __init__(self, parsed: ParsedMessage, raw: bytes) -> None:
        self.parsed = parsed
        self.raw = raw
        self.root = _body_part(parsed.root, (), False)
        text: list[BodyPart] = []
        html: list[BodyPart] = []
        attachments: list[BodyPart] = []
        _parse_structure([self.root], "mixed", False, html, text, attachments)
        self.text_body: tuple[BodyPart, ...] = tuple(text)
        self.html_body: tuple[BodyPart, ...] = tuple(html)
        self.attachments: tuple[BodyPart, ...] = tuple(attachments)

    @cached_property
    def by_id(self) -> dict[str, BodyPart]:
        return {leaf.part_id or "": leaf for leaf in self.root.leaves()}

    @property
    def has_attachment(self) -> bool:
        """§4.1.4 hasAttachment: an attachment that does not say it is inline. Images a
        multipart/related carries with a Content-Id (what an HTML body shows in place, the
        MAY of the RFC) are not counted."""
        return any(
            a.disposition != "inline" and not (a.in_related and a.cid is not None)
            for a in self.attachments
        )

    def size(self, part: BodyPart) -> int:
        """§4.1.4 size: octets after transfer decoding."""
        p = part.part
        if p.encoding == "base64":
            n = len(self.raw[p.body_start : p.body_end].translate(None, _B64_JUNK))
            return n // 4 * 3 + (0, 0, 1, 2)[n % 4]
        if p.encoding == "quoted-printable":
            return len(decode_part_body(self.raw, p))
        return p.size

    def header_fields(self, part: BodyPart) -> tuple[jh.HeaderField, ...]:
        return jh.indexed_fields(self.raw, part.part.headers)

    def render(
        self,
        part: BodyPart,
        blob_id_of: Callable[[str], str],
        properties: Sequence[str] = DEFAULT_BODY_PROPERTIES,
        *,
        sub_parts: bool = True,
    ) -> dict[str, Any]:
        """One EmailBodyPart object with ``properties`` (in their order). ``subParts`` of a
        multipart are always given in the bodyStructure (``sub_parts``): a tree without
        them says nothing, and the default bodyProperties do not name them."""
        out: dict[str, Any] = {}
        fields: tuple[jh.HeaderField, ...] | None = None
        for prop in properties:
            match prop:
                case "partId":
                    out[prop] = part.part_id
                case "blobId":
                    out[prop] = None if part.part_id is None else blob_id_of(part.part_id)
                case "size":
                    out[prop] = 0 if part.sub_parts is not None else self.size(part)
                case "headers":
                    fields = fields if fields is not None else self.header_fields(part)
                    out[prop] = jh.headers_property(fields)
                case "name":
                    out[prop] = part.name
                case "type":
                    out[prop] = part.type
                case "charset":
                    out[prop] = part.charset
                case "disposition":
                    out[prop] = part.disposition
                case "cid":
                    out[prop] = part.cid
                case "language":
                    out[prop] = list(part.part.language) or None
                case "location":
                    loc = part.part.location
                    out[prop] = "".join(loc.split()) if loc is not None else None
                case "subParts":
                    pass
                case _:
                    header = jh.header_property(prop)
                    if header is not None:
                        fields = fields if fields is not None else self.header_fields(part)
                        out[prop] = jh.header_values(fields, header)
        if part.sub_parts is not None and (sub_parts or "subParts" in properties):
            out["subParts"] = [
                self.render(s, blob_id_of, properties, sub_parts=sub_parts) for s in part.sub_parts
            ]
        elif "subParts" in properties:
            out["subParts"] = None
        return out

    def render_list(
        self,
        parts: Sequence[BodyPart],
        blob_id_of: Callable[[str], str],
        properties: Sequence[str] = DEFAULT_BODY_PROPERTIES,
    ) -> list[dict[str, Any]]:
        return [self.render(p, blob_id_of, properties, sub_parts=False) for p in parts]

    def body_values(
        self, part_ids: Sequence[str], max_body_value_bytes: int = 0
    ) -> dict[str, dict[str, Any]]:
        """§4.1.4 bodyValues for the ``text/*`` parts among ``part_ids`` (others, and ids
        that name no part, are left out)."""
        out: dict[str, dict[str, Any]] = {}
        for part_id in part_ids:
            found = self.by_id.get(part_id)
            if found is None or found.part.content_type != "text" or part_id in out:
                continue
            out[part_id] = body_value(self.raw, found, max_body_value_bytes)
        return out


# --- body values ------------------------------------------------------------------------------


def decode_text(octets: bytes, charset: str | None) -> tuple[str, bool]:
    """Text of a part's decoded octets and whether decoding had a problem (§4.1.4
    isEncodingProblem: malformed octets, or a charset we do not know).

    No charset or us-ascii is read as UTF-8, its superset: undeclared 8-bit text is most
    often UTF-8 (RFC 8621 lets a server use such heuristics). An unknown charset is read as
    UTF-8 too, and flagged."""
    codec = jh.text_codec(charset)
    problem = bool(charset) and codec is None
    if codec is None or codec == "ascii":
        codec = "utf-8"
    try:
        return octets.decode(codec), problem
    except UnicodeDecodeError:
        return octets.decode(codec, "replace"), True
    except UnicodeError:  # a codec that fails on its own terms (idna, utf-16 odd length)
        return octets.decode("utf-8", "replace"), True


_TAG_OPEN = re.compile(r"<[^>]*\Z")


def truncate_utf8(text: str, max_bytes: int, html: bool = False) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` octets of UTF-8, never inside a character (nor,
    for HTML, inside a tag: §4.2 maxBodyValueBytes); (text, whether it was cut)."""
    if max_bytes <= 0:
        return text, False
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text, False
    cut = data[:max_bytes].decode("utf-8", "ignore")  # drops a split last character
    if html:
        cut = _TAG_OPEN.sub("", cut)
    return cut, True


def body_value(raw: bytes, part: BodyPart, max_body_value_bytes: int = 0) -> dict[str, Any]:
    """One EmailBodyValue: transfer and charset decoded, CRLF as LF, truncated."""
    octets = decode_part_body(raw, part.part)
    text, problem = decode_text(octets, part.part.param("charset"))
    text = text.replace("\r\n", "\n")
    text, truncated = truncate_utf8(text, max_body_value_bytes, part.type == "text/html")
    return {"value": text, "isEncodingProblem": problem, "isTruncated": truncated}


# --- the functions the JMAP methods call --------------------------------------------------------


def body_structure(
    parsed: ParsedMessage,
    raw: bytes,
    blob_id_of: Callable[[str], str],
    properties: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The Email's bodyStructure (§4.1.4)."""
    body = EmailBody(parsed, raw)
    return body.render(body.root, blob_id_of, properties or DEFAULT_BODY_PROPERTIES)


def text_body(
    parsed: ParsedMessage,
    raw: bytes,
    blob_id_of: Callable[[str], str],
    properties: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The Email's textBody (§4.1.4). For more than one of the lists, one
    :class:`EmailBody` works the algorithm out once for all of them."""
    body = EmailBody(parsed, raw)
    return body.render_list(body.text_body, blob_id_of, properties or DEFAULT_BODY_PROPERTIES)


def html_body(
    parsed: ParsedMessage,
    raw: bytes,
    blob_id_of: Callable[[str], str],
    properties: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The Email's htmlBody (§4.1.4)."""
    body = EmailBody(parsed, raw)
    return body.render_list(body.html_body, blob_id_of, properties or DEFAULT_BODY_PROPERTIES)


def attachments(
    parsed: ParsedMessage,
    raw: bytes,
    blob_id_of: Callable[[str], str],
    properties: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The Email's attachments (§4.1.4)."""
    body = EmailBody(parsed, raw)
    return body.render_list(body.attachments, blob_id_of, properties or DEFAULT_BODY_PROPERTIES)


def has_attachment(parsed: ParsedMessage, raw: bytes) -> bool:
    """The Email's hasAttachment (§4.1.4; see :attr:`EmailBody.has_attachment`)."""
    return EmailBody(parsed, raw).has_attachment


def body_values(
    parsed: ParsedMessage, raw: bytes, part_ids: Sequence[str], max_body_value_bytes: int = 0
) -> dict[str, dict[str, Any]]:
    """bodyValues for the text parts among ``part_ids`` (§4.1.4, §4.2)."""
    return EmailBody(parsed, raw).body_values(part_ids, max_body_value_bytes)


def part_octets(parsed: ParsedMessage, raw: bytes, part_id: str) -> bytes | None:
    """The transfer-decoded octets of the leaf ``part_id`` (its blob), or None when the
    message has no such leaf part."""
    try:
        path = tuple(int(n) for n in part_id.split("."))
    except ValueError:
        return None
    if not path or any(n < 1 for n in path) or part_id != ".".join(map(str, path)):
        return None
    part = _leaf_at(parsed, path)
    if part is None:
        return None
    decoder = PartDecoder(part.encoding)
    return decoder.feed(memoryview(raw)[part.body_start : part.body_end]) + decoder.end()


def _leaf_at(parsed: ParsedMessage, path: tuple[int, ...]) -> Part | None:
    """The JMAP leaf at an IMAP part number: no stepping into an attached message (JMAP part
    ids stop at a message/rfc822 part), no multipart."""
    cur = parsed.root
    if cur.content_type != "multipart":
        return cur if path == (1,) else None
    for n in path:
        if cur.content_type != "multipart" or not 1 <= n <= len(cur.children):
            return None
        cur = cur.children[n - 1]
    if cur.content_type == "multipart":
        return None
    found = find_part(parsed, path)
    return cur if found is cur else None


def preview(parsed: ParsedMessage, raw: bytes) -> str:
    """The Email's preview (§4.1.4): the RFC 8970 preview the parser made at delivery (256
    characters at most, as RFC 8621 asks), made now for a structure stored without one."""
    if parsed.preview is not None:
        return parsed.preview
    return preview_text(raw, parsed.root)


def email_header_properties(
    raw: bytes, headers: Iterable[Sequence[Any]], names: Sequence[str]
) -> dict[str, Any]:
    """The header-derived Email properties among ``names``: the convenience ones (§4.1.3),
    ``headers`` and ``header:`` ones; other names are left out (they are not header ones).

    ``headers`` is the message's header index as the parser stored it (``parsed.root.headers``
    or ``StoredStructure.top_headers``, which needs no tree decoding), and ``raw`` the
    message or only its header octets (``raw[:header_end]``)."""
    spans = list(headers)
    index = jh.HeaderIndex.of_spans(raw, spans)
    out: dict[str, Any] = {}
    for name in names:
        if name in jh.CONVENIENCE:
            out[name] = jh.header_values(index, jh.CONVENIENCE[name])
        elif name == "headers":
            out[name] = jh.headers_property(jh.indexed_fields(raw, spans))
        else:
            prop = jh.header_property(name)
            if prop is not None:
                out[name] = jh.header_values(index, prop)
    return out
