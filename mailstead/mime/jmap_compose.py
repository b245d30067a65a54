"""An RFC 5322 message from the JMAP Email properties of an Email/set create (RFC 8621 §4.6).

:func:`compose` checks the §4.6 constraints, builds the MIME tree (from ``bodyStructure``, or
from ``textBody``/``htmlBody``/``attachments`` and ``bodyValues``), and writes it: CRLF line
ends, header fields folded at 78 columns, non-ASCII header text as RFC 2047 encoded-words and
non-ASCII parameters as RFC 2231 values, text in UTF-8 (7bit when it is short-lined ASCII,
else quoted-printable), blobs in base64 (an attached message as it is: RFC 2046 §5.2.1 allows
no base64 there). Date and Message-ID are added when the client gave none.

What the client wrote must read back the same through ``jmap_headers``/``jmap_views``
(tested): header text is encoded whole when it needs encoding at all, so the white space
between its words survives; addresses keep their display names exactly.

A constraint broken raises :class:`ComposeError` carrying the SetError the method answers:
``invalidProperties`` with the offending property paths (``textBody/0/type``), or
``blobNotFound`` with every blob id that ``blob_octets`` did not find.

Layout of the body built from the flat lists (the RFC leaves it to the server):

- text only, html only, or ``multipart/alternative`` of both (text first);
- attachments that are inline and have a Content-Id go with the HTML in a
  ``multipart/related`` (the HTML first), when there is HTML;
- every other attachment makes the whole a ``multipart/mixed``, body first, and is
  written with ``Content-Disposition: attachment`` when it has no disposition, so that it
  reads back as an attachment.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Literal

from mailstead.mime import jmap_headers as jh

_MAX_LINE = 78  # RFC 5322 §2.1.1: SHOULD be no more than 78 characters
_B64_LINE = 57  # octets per base64 line: 76 characters (RFC 2045 §6.8)
_EW_TEXT = 36  # octets of UTF-8 per encoded-word: 48 base64 characters, 60 with the frame


class ComposeError(Exception):
    """A create that breaks RFC 8621 §4.6: the SetError the method returns for it."""

    def __init__(
        self,
        type: Literal["invalidProperties", "blobNotFound"],
        *,
        properties: Sequence[str] = (),
        not_found: Sequence[str] = (),
        description: str = "",
    ) -> None:
        super().__init__(description or type)
        self.type = type
        self.properties = tuple(properties)
        self.not_found = tuple(not_found)
        self.description = description

    def set_error(self) -> dict[str, Any]:
        """The SetError object (RFC 8620 §5.3; ``notFound`` is RFC 8621 §4.6's)."""
        error: dict[str, Any] = {"type": self.type}
        if self.description:
            error["description"] = self.description
        if self.type == "invalidProperties":
            error["properties"] = list(self.properties)
        else:
            error["notFound"] = list(self.not_found)
        return error


def _invalid(path: str, description: str) -> ComposeError:
    return ComposeError("invalidProperties", properties=[path], description=description)


# --- writing header fields -------------------------------------------------------------------


def _fold(name: str, value: str) -> bytes:
    """``name: value`` folded before white space so no line passes 78 columns where a space
    allows it (RFC 5322 §2.2.3); unfolding gives back exactly ``value``. A line is never
    left holding white space alone (§3.2.2)."""
    line = f"{name}: {value}"
    out: list[str] = []
    floor = len(name) + 2
    while len(line) > _MAX_LINE:
        cut = _fold_point(line, floor)
        if cut < 0:
            break
        out.append(line[:cut])
        line = line[cut:]
        floor = 1
    out.append(line)
    return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogatepass")


_FOLDABLE = re.compile(r"(?<=[^ \t])[ \t]")


def _fold_point(line: str, floor: int) -> int:
    """Where to fold ``line``: the last white space within 78 columns that has text before
    it on the line and text after it; else the first one past them; -1 when there is none."""
    best = -1
    for m in _FOLDABLE.finditer(line, floor):
        i = m.start()
        if not line[i:].strip(" \t"):
            break
        if i > _MAX_LINE and best >= 0:
            break
        best = i
        if i > _MAX_LINE:
            break
    return best


def _encoded_words(text: str) -> str:
    """``text`` as RFC 2047 B encoded-words in UTF-8, each whole characters, separated by a
    space (which decoding drops between encoded-words, RFC 2047 §6.2)."""
    words: list[str] = []
    chunk = b""
    for ch in text:
        octets = ch.encode("utf-8", "surrogatepass")
        if len(chunk) + len(octets) > _EW_TEXT:
            words.append(chunk.decode())
            chunk = b""
        chunk += octets
    if chunk or not words:
        words.append(chunk.decode("utf-8", "surrogatepass"))
    return " ".join(
        "=?UTF-8?B?" + base64.b64encode(w.encode("utf-8", "surrogatepass")).decode() + "?="
        for w in words
    )


_PLAIN_TEXT = re.compile(r"[ -~\t]*")


def _needs_encoding(text: str) -> bool:
    """Whether unstructured text must be encoded: non-ASCII or control characters, text
    that a reader would take for an encoded-word, a word too long to fold, or white space
    leading it (which a reader drops from a plain value, §4.1.2.2)."""
    return (
        _PLAIN_TEXT.fullmatch(text) is None
        or "=?" in text
        or text[:1] in (" ", "\t")
        or any(len(w) > _MAX_LINE - 12 for w in text.split(" "))
    )


def _text_value(text: str) -> str:
    """The Text form written back (§4.1.2.2): as it is, or encoded whole."""
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return _encoded_words(text) if text and _needs_encoding(text) else text


_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_ADDR_SPEC = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+|[^\s<>()\",;:@]+")


def _display_name(name: str) -> str:
    """A display name as a phrase: atoms, a quoted-string, or encoded-words (RFC 2047 §5
    (3)) when it is not printable ASCII or holds what reads as an encoded-word."""
    if _PLAIN_TEXT.fullmatch(name) is None or "=?" in name or "\t" in name:
        return _encoded_words(name)
    if _PHRASE.fullmatch(name) and "  " not in name and name == name.strip():
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox(address: Any, path: str) -> str:
    if not isinstance(address, dict) or not isinstance(address.get("email"), str):
        raise _invalid(path, "an EmailAddress needs an email string")
    name = address.get("name")
    if name is not None and not isinstance(name, str):
        raise _invalid(path, "an EmailAddress name is a string or null")
    email = address["email"]
    if any(c in email for c in "\r\n<>"):
        raise _invalid(path, "an email address cannot hold line ends or angle brackets")
    name = (name or "").strip(" \t")  # as a reader strips it (§4.1.2.3)
    if not name:
        return email if _ADDR_SPEC.fullmatch(email) else f"<{email}>"
    return f"{_display_name(name)} <{email}>"


def _addresses_value(value: Any, path: str) -> str:
    if not isinstance(value, list):
        raise _invalid(path, "an EmailAddress[] is a list")
    return ", ".join(_mailbox(a, f"{path}/{i}") for i, a in enumerate(value))


def _grouped_value(value: Any, path: str) -> str:
    if not isinstance(value, list):
        raise _invalid(path, "an EmailAddressGroup[] is a list")
    out = []
    for i, group in enumerate(value):
        if not isinstance(group, dict):
            raise _invalid(f"{path}/{i}", "an EmailAddressGroup is an object")
        members = _addresses_value(group.get("addresses"), f"{path}/{i}/addresses")
        name = group.get("name")
        if name is None:
            if members:
                out.append(members)
        elif isinstance(name, str):
            out.append(f"{_display_name(name)}: {members};".replace(": ;", ":;"))
        else:
            raise _invalid(f"{path}/{i}/name", "a group name is a string or null")
    return ", ".join(out)


def _ids_value(value: Any, path: str) -> str:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(path, "message ids are a list of strings")
    for v in value:
        if not v or any(c in v for c in " \t\r\n<>()"):
            raise _invalid(path, "a message id has no white space, brackets or parentheses")
    return " ".join(f"<{v}>" for v in value)


def _urls_value(value: Any, path: str) -> str:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(path, "URLs are a list of strings")
    if any(c in v for v in value for c in " \t\r\n<>"):
        raise _invalid(path, "a URL has no white space or angle brackets")
    return ", ".join(f"<{v}>" for v in value)


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def rfc5322_date(value: str) -> str | None:
    """An RFC 3339 date-time (a JMAP Date) as an RFC 5322 §3.3 date-time in its own
    offset; None when it is not one. Fractions of a second are dropped (no place for them)."""
    if _RFC3339.fullmatch(value) is None:
        return None
    text = value.upper().replace("Z", "+00:00")
    text = re.sub(r"\.\d+", "", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return format_datetime(when)


def _date_value(value: Any, path: str) -> str:
    date = rfc5322_date(value) if isinstance(value, str) else None
    if date is None:
        raise _invalid(path, "a Date is an RFC 3339 date-time")
    return date


def _raw_value(value: Any, path: str) -> str:
    """A Raw value as the client gave it (with a space after the colon when it has none);
    a line end is allowed only as folding, before white space."""
    if not isinstance(value, str) or "\x00" in value:
        raise _invalid(path, "a Raw value is a string without NUL")
    lines = re.split(r"\r\n|\n|\r", value)
    if any(not line or line[0] not in " \t" for line in lines[1:]):
        raise _invalid(path, "a Raw value may break lines only to fold them")
    return "\r\n".join(lines)


def _form_value(form: jh.HeaderForm, value: Any, path: str) -> str:
    match form:
        case jh.HeaderForm.RAW:
            return _raw_value(value, path)
        case jh.HeaderForm.TEXT:
            if not isinstance(value, str):
                raise _invalid(path, "a Text value is a string")
            return _text_value(value)
        case jh.HeaderForm.ADDRESSES:
            return _addresses_value(value, path)
        case jh.HeaderForm.GROUPED_ADDRESSES:
            return _grouped_value(value, path)
        case jh.HeaderForm.MESSAGE_IDS:
            return _ids_value(value, path)
        case jh.HeaderForm.DATE:
            return _date_value(value, path)
        case jh.HeaderForm.URLS:
            return _urls_value(value, path)


#: Field names the convenience properties write, as RFC 5322 spells them.
_CONVENIENCE_NAMES = {
    "messageId": "Message-ID",
    "inReplyTo": "In-Reply-To",
    "references": "References",
    "sender": "Sender",
    "from": "From",
    "to": "To",
    "cc": "Cc",
    "bcc": "Bcc",
    "replyTo": "Reply-To",
    "subject": "Subject",
    "sentAt": "Date",
}


@dataclass
class _Fields:
    """Header fields of one entity, in order, and which property set each field name."""

    lines: list[bytes] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)  # lower field name -> property

    def claim(self, lower: str, prop: str, path: str) -> None:
        """§4.6: no two properties may stand for one header field."""
        if lower in self.owner:
            raise ComposeError(
                "invalidProperties",
                properties=[self.owner[lower], path],
                description=f"two properties set the header field {lower}",
            )
        self.owner[lower] = path

    def add(self, name: str, value: str, *, raw: bool = False) -> None:
        if raw:
            sep = "" if value[:1] in (" ", "\t") else " "
            self.lines.append(f"{name}:{sep}{value}\r\n".encode())
        else:
            self.lines.append(_fold(name, value))


def _header_props(
    obj: dict[str, Any], out: _Fields, prefix: str, *, top: bool, names: Sequence[str] = ()
) -> None:
    """Write the ``header:`` properties of ``obj`` (and on the Email, the convenience ones
    in ``names``) into ``out``, checking §4.6's rules for them."""
    for key, value in obj.items():
        path = prefix + key
        if key in names:
            if value is None:
                continue
            prop = jh.CONVENIENCE[key]
            out.claim(prop.key, key, path)
            out.add(_CONVENIENCE_NAMES[key], _form_value(prop.form, value, path))
            continue
        if not key.startswith("header:"):
            continue
        prop_or_none = jh.header_property(key)
        if prop_or_none is None:
            raise _invalid(path, "not a header property, or a form this field may not have")
        prop = prop_or_none
        if top and prop.key.startswith("content-"):
            raise _invalid(path, "Content-* header fields belong on body parts (§4.6)")
        if not top and prop.key == "content-transfer-encoding":
            raise _invalid(path, "the server chooses the Content-Transfer-Encoding (§4.6)")
        out.claim(prop.key, key, path)
        if value is None:
            continue
        values = value if prop.all else [value]
        if prop.all and not isinstance(value, list):
            raise _invalid(path, "an :all property is a list")
        for item in values:
            text = _form_value(prop.form, item, path)
            out.add(prop.name, text, raw=prop.form is jh.HeaderForm.RAW)


# --- parameters (RFC 2045 §5.1, RFC 2231) ----------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _param(name: str, value: str) -> str:
    """``; name=value``: a token, a quoted-string, or RFC 2231 UTF-8 with continuations."""
    if _TOKEN.fullmatch(value) and len(value) < 60:
        return f"; {name}={value}"
    if _PLAIN_TEXT.fullmatch(value) and "\t" not in value and len(value) < 60:
        return '; {}="{}"'.format(name, value.replace("\\", "\\\\").replace('"', '\\"'))
    encoded = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="")
    pieces = [encoded[i : i + 60] for i in range(0, len(encoded), 60)] or [""]
    # keep %XX escapes whole across pieces
    fixed: list[str] = []
    carry = ""
    for piece in pieces:
        piece = carry + piece
        cut = piece.rfind("%", max(0, len(piece) - 2))
        carry, piece = (piece[cut:], piece[:cut]) if cut >= 0 else ("", piece)
        fixed.append(piece)
    if carry:
        fixed.append(carry)
    if len(fixed) == 1:
        return f"; {name}*=utf-8''{fixed[0]}"
    head = f"; {name}*0*=utf-8''{fixed[0]}"
    return head + "".join(f"; {name}*{i}*={p}" for i, p in enumerate(fixed[1:], 1))


# --- the MIME tree ----------------------------------------------------------------------------


@dataclass
class _Entity:
    """One entity to write: its header fields and either a body or sub-entities."""

    content_type: str
    fields: _Fields
    body: bytes = b""
    encoding: str | None = None
    children: list[_Entity] = field(default_factory=list)

    @property
    def multipart(self) -> bool:
        return self.content_type.startswith("multipart/")


def _qp_line(line: bytes) -> bytes:
    """One line in quoted-printable (RFC 2045 §6.7), soft-broken at 76 characters."""
    out: list[bytes] = []
    cur = b""
    for i, byte in enumerate(line):
        last = i == len(line) - 1
        if byte == 0x3D or byte > 0x7E or (byte < 0x20 and byte != 0x09):
            piece = b"=%02X" % byte
        elif byte in (0x20, 0x09) and last:
            piece = b"=%02X" % byte  # rule 3: white space at a line end would be lost
        else:
            piece = bytes((byte,))
        if len(cur) + len(piece) > 75:
            out.append(cur + b"=")
            cur = b""
        cur += piece
    out.append(cur)
    return b"\r\n".join(out)


def _text_body(text: str) -> tuple[bytes, str]:
    """A text value as UTF-8 with CRLF line ends, 7bit when it is ASCII in short lines,
    else quoted-printable."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.encode("utf-8", "surrogatepass") for line in text.split("\n")]
    if all(
        len(line) <= _MAX_LINE and _PLAIN_TEXT.fullmatch(line.decode("latin-1")) is not None
        for line in lines
    ):
        return b"\r\n".join(lines), "7bit"
    return b"\r\n".join(_qp_line(line) for line in lines), "quoted-printable"


def _base64_body(data: bytes) -> bytes:
    """Lines of 76 characters; the line end before the boundary is the boundary's."""
    return b"\r\n".join(
        binascii.b2a_base64(data[i : i + _B64_LINE], newline=False)
        for i in range(0, len(data), _B64_LINE)
    )


def _message_encoding(data: bytes) -> str:
    """RFC 2046 §5.2.1: an attached message is 7bit, 8bit or binary, never encoded; its
    octets are kept as they are, so one that is not CRLF lines of at most 998 octets
    without NUL (RFC 2045 §2.7, §2.8) is labelled binary."""
    lines = data.split(b"\r\n")
    if b"\x00" in data or any(len(x) > 998 or b"\r" in x or b"\n" in x for x in lines):
        return "binary"
    return "7bit" if data.isascii() else "8bit"


@dataclass
class _Build:
    """What walking the parts collects: missing blobs are reported all at once."""

    email: dict[str, Any]
    blob_octets: Callable[[str], bytes | None]
    missing: list[str] = field(default_factory=list)
    top: _Fields | None = None

    def body_value(self, part_id: Any, path: str) -> str:
        values = self.email.get("bodyValues") or {}
        if not isinstance(values, dict):
            raise _invalid("bodyValues", "bodyValues is an object")
        value = values.get(part_id) if isinstance(part_id, str) else None
        if not isinstance(value, dict) or not isinstance(value.get("value"), str):
            raise _invalid(path, "a partId must name a value in bodyValues (§4.6)")
        for flag in ("isEncodingProblem", "isTruncated"):
            if value.get(flag, False) is not False:
                raise _invalid(f"bodyValues/{part_id}/{flag}", f"{flag} must be false (§4.6)")
        text: str = value["value"]
        return text

    def entity(self, part: Any, path: str) -> _Entity:
        """An EmailBodyPart given on create, as an entity to write."""
        if not isinstance(part, dict):
            raise _invalid(path, "an EmailBodyPart is an object")
        prefix = path + "/"
        if "headers" in part:
            raise _invalid(prefix + "headers", "set header fields one by one (§4.6)")
        type_ = part.get("type")
        sub_parts = part.get("subParts")
        part_id, blob_id = part.get("partId"), part.get("blobId")
        if type_ is not None and (not isinstance(type_, str) or not _MEDIA_TYPE.fullmatch(type_)):
            raise _invalid(prefix + "type", "a type is a media type without parameters")
        fields = _Fields()
        _header_props(part, fields, prefix, top=False)
        if self.top is not None:
            for lower in fields.owner:
                if lower in self.top.owner:
                    raise ComposeError(
                        "invalidProperties",
                        properties=[self.top.owner[lower], fields.owner[lower]],
                        description="a body part sets a header field the Email sets (§4.6)",
                    )
        if sub_parts is not None or (type_ or "").lower().startswith("multipart/"):
            if not isinstance(sub_parts, list) or part_id is not None or blob_id is not None:
                raise _invalid(prefix + "subParts", "a multipart has subParts and no content")
            fields.claim("content-type", "type", prefix + "type")
            entity = _Entity((type_ or "multipart/mixed").lower(), fields)
            entity.children = [self.entity(s, f"{prefix}subParts/{i}") for i, s in
                               enumerate(sub_parts)]  # fmt: skip
            return entity
        if (part_id is None) == (blob_id is None):
            raise _invalid(prefix + "partId", "give a partId or a blobId, not both (§4.6)")
        params = ""
        if part_id is not None:
            for bad in ("charset", "size"):
                if part.get(bad) is not None:
                    raise _invalid(prefix + bad, f"no {bad} with a partId (§4.6)")
            ctype = (type_ or "text/plain").lower()
            data, encoding = _text_body(self.body_value(part_id, prefix + "partId"))
            if ctype.startswith("text/"):
                params += "; charset=utf-8"
        else:
            if not isinstance(blob_id, str):
                raise _invalid(prefix + "blobId", "a blobId is a string")
            ctype = (type_ or "application/octet-stream").lower()
            octets = self.blob_octets(blob_id)
            if octets is None:
                if blob_id not in self.missing:
                    self.missing.append(blob_id)
                octets = b""
            charset = part.get("charset")
            if charset is not None:
                if not isinstance(charset, str) or _TOKEN.fullmatch(charset) is None:
                    raise _invalid(prefix + "charset", "a charset is a token")
                params += f"; charset={charset}"
            if ctype in ("message/rfc822", "message/global"):
                data, encoding = octets, _message_encoding(octets)
            else:
                data, encoding = _base64_body(octets), "base64"
        name = part.get("name")
        if name is not None and not isinstance(name, str):
            raise _invalid(prefix + "name", "a name is a string")
        disposition = part.get("disposition")
        if disposition is not None and (
            not isinstance(disposition, str) or _TOKEN.fullmatch(disposition) is None
        ):
            raise _invalid(prefix + "disposition", "a disposition is a token")
        if name and disposition is None:
            params += _param("name", name)
        entity = _Entity(ctype, fields, data, encoding)
        if disposition is not None:
            entity.fields.claim("content-disposition", "disposition", prefix + "disposition")
            value = disposition.lower() + (_param("filename", name) if name else "")
            entity.fields.add("Content-Disposition", value)
        self._describe(entity, part, prefix)
        entity.fields.lines.insert(0, _fold("Content-Type", ctype + params))
        entity.fields.claim("content-type", "type", prefix + "type")
        return entity

    def _describe(self, entity: _Entity, part: dict[str, Any], prefix: str) -> None:
        """Content-ID, Content-Language and Content-Location from their properties."""
        for key, field_name in (("cid", "Content-ID"), ("location", "Content-Location")):
            value = part.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or any(c in value for c in " \t\r\n<>"):
                raise _invalid(prefix + key, f"{key} is a string without white space")
            entity.fields.claim(field_name.lower(), key, prefix + key)
            entity.fields.add(field_name, f"<{value}>" if key == "cid" else value)
        language = part.get("language")
        if language is not None:
            if not isinstance(language, list) or not all(
                isinstance(t, str) and _TOKEN.fullmatch(t) for t in language
            ):
                raise _invalid(prefix + "language", "language is a list of tags")
            entity.fields.claim("content-language", "language", prefix + "language")
            entity.fields.add("Content-Language", ", ".join(language))


def _single(parts: Any, key: str, media_type: str) -> Any:
    """§4.6: textBody and htmlBody hold exactly one part of their own type."""
    if parts is None:
        return None
    if not isinstance(parts, list) or len(parts) != 1:
        raise _invalid(key, f"{key} holds exactly one part (§4.6)")
    part = parts[0]
    if isinstance(part, dict) and (part.get("type") or media_type).lower() != media_type:
        raise _invalid(f"{key}/0/type", f"{key} is {media_type} (§4.6)")
    return {**part, "type": media_type} if isinstance(part, dict) else part


def _multipart(subtype: str, children: list[_Entity]) -> _Entity:
    entity = _Entity(f"multipart/{subtype}", _Fields())
    entity.children = children
    return entity


def _from_lists(build: _Build, email: dict[str, Any]) -> _Entity:
    """The tree the flat lists describe (the layout in the module docstring)."""
    text_part = _single(email.get("textBody"), "textBody", "text/plain")
    html_part = _single(email.get("htmlBody"), "htmlBody", "text/html")
    attachments = email.get("attachments") or []
    if not isinstance(attachments, list):
        raise _invalid("attachments", "attachments is a list")
    text = build.entity(text_part, "textBody/0") if text_part is not None else None
    html = build.entity(html_part, "htmlBody/0") if html_part is not None else None
    related: list[_Entity] = []
    mixed: list[_Entity] = []
    for i, a in enumerate(attachments):
        inline = (
            html is not None
            and isinstance(a, dict)
            and a.get("cid") is not None
            and (a.get("disposition") or "inline").lower() == "inline"
        )
        if inline:
            related.append(build.entity(a, f"attachments/{i}"))
        else:
            # Said to be an attachment so that a reader lists it as one (§4.1.4 would
            # take an image or a text part without a filename for body content).
            if isinstance(a, dict) and a.get("disposition") is None:
                a = {**a, "disposition": "attachment"}
            mixed.append(build.entity(a, f"attachments/{i}"))
    if html is not None and related:
        html = _multipart("related", [html, *related])
    if text is not None and html is not None:
        body: _Entity | None = _multipart("alternative", [text, html])
    else:
        body = text or html
    if mixed:
        return _multipart("mixed", [body, *mixed] if body is not None else mixed)
    return body if body is not None else _empty_text()


def _empty_text() -> _Entity:
    entity = _Entity("text/plain", _Fields(), b"", "7bit")
    entity.fields.add("Content-Type", "text/plain; charset=utf-8")
    return entity


def _boundary(entity: _Entity) -> str:
    """A boundary no content holds: "=_" cannot start a quoted-printable or base64 line
    (RFC 2045 §6.7, §6.8), and 7bit text is checked."""
    while True:
        boundary = "=_" + secrets.token_hex(12)
        if not any(boundary.encode() in leaf.body for leaf in _leaves(entity)):
            return boundary


def _leaves(entity: _Entity) -> Iterator[_Entity]:
    if entity.multipart:
        for child in entity.children:
            yield from _leaves(child)
    else:
        yield entity


def _write(entity: _Entity, header: list[bytes]) -> bytes:
    """``header`` (the entity's fields before its Content-* ones) and the entity."""
    lines = list(header)
    if entity.multipart:
        boundary = _boundary(entity)
        lines.append(_fold("Content-Type", f'{entity.content_type}; boundary="{boundary}"'))
        lines += entity.fields.lines
        out = [b"".join(lines), b"\r\n"]
        for child in entity.children:
            out.append(b"--" + boundary.encode() + b"\r\n")
            out.append(_write(child, []))
            out.append(b"\r\n")
        out.append(b"--" + boundary.encode() + b"--\r\n")
        return b"".join(out)
    lines += entity.fields.lines
    if entity.encoding is not None:
        lines.append(f"Content-Transfer-Encoding: {entity.encoding}\r\n".encode())
    return b"".join(lines) + b"\r\n" + entity.body


def compose(
    email: dict[str, Any],
    blob_octets: Callable[[str], bytes | None],
    *,
    now: datetime,
    message_id_domain: str,
) -> bytes:
    """The RFC 5322 message an Email/set create describes (RFC 8621 §4.6).

    ``blob_octets`` gives a blob's octets by id (None: not found); ``now`` (aware) dates a
    message that has no sentAt; ``message_id_domain`` is the right side of a Message-ID
    made for one that has none. Properties that are not about the message (mailboxIds,
    keywords, receivedAt, ...) are the caller's and are not looked at. Raises
    :class:`ComposeError`."""
    if "headers" in email:
        raise _invalid("headers", "set header fields one by one (§4.6)")
    has_lists = any(email.get(k) is not None for k in ("textBody", "htmlBody", "attachments"))
    if email.get("bodyStructure") is not None and has_lists:
        raise _invalid("bodyStructure", "bodyStructure or the body lists, not both (§4.6)")
    top = _Fields()
    _header_props(email, top, "", top=True, names=tuple(_CONVENIENCE_NAMES))
    if "date" not in top.owner:
        top.add("Date", format_datetime(now))
    if "message-id" not in top.owner:
        top.add("Message-ID", f"<{secrets.token_hex(16)}@{message_id_domain}>")
    if "mime-version" not in top.owner:
        top.add("MIME-Version", "1.0")
    build = _Build(email, blob_octets, top=top)
    if email.get("bodyStructure") is not None:
        root = build.entity(email["bodyStructure"], "bodyStructure")
    else:
        root = _from_lists(build, email)
    if build.missing:
        raise ComposeError("blobNotFound", not_found=build.missing)
    return _write(root, top.lines)
