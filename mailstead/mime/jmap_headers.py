"""JMAP header field properties of an Email or a body part (RFC 8621 §4.1.2, §4.1.3).

A client names a header field and the parsed form it wants (``header:List-Post:asURLs:all``);
:func:`header_property` reads such a name once, :func:`header_values` answers it from a part's
header fields. The forms are the RFC's: Raw, Text, Addresses, GroupedAddresses, MessageIds,
Date and URLs, each allowed only for the fields §4.1.2 lists (and for every field that RFC 5322
and RFC 2369 do not define).

Field values are octets; RFC 6532 makes UTF-8 the only charset a header may carry, so octets
that are not UTF-8 become U+FFFD (§4.1.2.1 allows exactly that) and NUL octets are dropped.

RFC 2047 encoded-words are decoded as §4.1.2.2 says: only where the whitespace rules of RFC
2047 §5 put them (a whole space-separated word, never mid-word), in a charset Python knows;
control characters they encode are dropped. Two departures, both for mail in the wild, are
deliberate: encoded-words written back to back with no space between are decoded (each
stands alone, so nothing mid-word is touched), and in an address's display name an
encoded-word inside a quoted-string is decoded too, as every mail reader does.

IMAP's ENVELOPE has its own, Dovecot-identical address reader (``mime/rfc822.py``, which fills
in ``MISSING_DOMAIN`` and keeps comments as names); JMAP's rules differ (comments are dropped,
a best-effort address has no filler), so this module reads addresses itself.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import codecs
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class HeaderForm(StrEnum):
    """The parsed forms of RFC 8621 §4.1.2, as a property name spells them after ``as``."""

    RAW = "Raw"
    TEXT = "Text"
    ADDRESSES = "Addresses"
    GROUPED_ADDRESSES = "GroupedAddresses"
    MESSAGE_IDS = "MessageIds"
    DATE = "Date"
    URLS = "URLs"


#: Fields RFC 5322 and RFC 2369 define: a form not listed for one of them is refused for it.
_DEFINED = frozenset(
    {
        "date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to",
        "references", "subject", "comments", "keywords", "resent-date", "resent-from",
        "resent-sender", "resent-to", "resent-cc", "resent-bcc", "resent-message-id",
        "return-path", "received",
        "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
        "list-archive",
    }
)  # fmt: skip
_ADDRESS_FIELDS = frozenset(
    {
        "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender",
        "resent-reply-to", "resent-to", "resent-cc", "resent-bcc",
    }
)  # fmt: skip
#: RFC 8621 §4.1.2.2-§4.1.2.7: the defined fields each form may be fetched or set for.
_ALLOWED: dict[HeaderForm, frozenset[str]] = {
    HeaderForm.TEXT: frozenset({"subject", "comments", "keywords", "list-id"}),
    HeaderForm.ADDRESSES: _ADDRESS_FIELDS,
    HeaderForm.GROUPED_ADDRESSES: _ADDRESS_FIELDS,
    HeaderForm.MESSAGE_IDS: frozenset(
        {"message-id", "in-reply-to", "references", "resent-message-id"}
    ),
    HeaderForm.DATE: frozenset({"date", "resent-date"}),
    HeaderForm.URLS: frozenset(
        {"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
         "list-archive"}
    ),
}  # fmt: skip


def form_allowed(field: str, form: HeaderForm) -> bool:
    """Whether ``form`` may be fetched or set for the header field named ``field``."""
    low = field.lower()
    if form is HeaderForm.RAW or low not in _DEFINED:
        return True
    return low in _ALLOWED[form]


@dataclass(frozen=True, slots=True)
class HeaderProperty:
    """A ``header:{name}[:as{form}][:all]`` property (RFC 8621 §4.1.3)."""

    name: str  # the field name as the client wrote it (matched case-insensitively)
    form: HeaderForm = HeaderForm.RAW
    all: bool = False

    @property
    def key(self) -> str:
        """The field name to match, lower case."""
        return self.name.lower()

    def __str__(self) -> str:
        text = "header:" + self.name
        if self.form is not HeaderForm.RAW:
            text += ":as" + self.form.value
        return text + (":all" if self.all else "")


_FORMS = {"as" + form.value: form for form in HeaderForm}
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 8621 §4.1.3: printable ASCII except ":"


def header_property(name: str) -> HeaderProperty | None:
    """Read a ``header:`` property name; None when it is not one or is not valid (a form the
    field may not have, suffixes out of order: the caller answers ``invalidArguments``)."""
    if not name.startswith("header:"):
        return None
    pieces = name[7:].split(":")
    field = pieces[0]
    if _FIELD_NAME.fullmatch(field) is None:
        return None
    rest = pieces[1:]
    every = bool(rest) and rest[-1] == "all"
    if every:
        rest = rest[:-1]
    form = HeaderForm.RAW
    if rest:
        if len(rest) != 1 or rest[0] not in _FORMS:
            return None
        form = _FORMS[rest[0]]
    if not form_allowed(field, form):
        return None
    return HeaderProperty(field, form, every)


# --- header fields ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: its name as written, and the octets after the colon up to, not
    including, the line end that closes the field (the Raw form's source)."""

    name: str
    value: bytes


_LINE = re.compile(rb"[^\n]*\n?")


def _field(line: bytes) -> HeaderField | None:
    """A field from its octets (folded lines included); None for a line with no colon in its
    first line, which is no header field (RFC 5322 §2.2)."""
    first = line.find(b"\n")
    colon = line.find(b":", 0, first if first >= 0 else len(line))
    if colon <= 0:
        return None
    if line.endswith(b"\n"):
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    name = line[:colon].rstrip(b" \t").decode("utf-8", "replace")
    return HeaderField(name, line[colon + 1 :]) if name else None


def split_header(block: bytes) -> tuple[HeaderField, ...]:
    """The fields of a header block (up to its blank line, if any), folded lines joined to
    the field they continue (RFC 5322 §2.2.3)."""
    fields: list[bytes] = []
    for match in _LINE.finditer(block):
        line = match.group()
        if not line or line in (b"\r\n", b"\n"):
            break
        if line[0] in b" \t":
            if fields:
                fields[-1] += line
            # else: a continuation of nothing, no field (as the parser reads it)
        else:
            fields.append(line)
    return tuple(f for f in map(_field, fields) if f is not None)


def indexed_fields(raw: bytes, spans: Iterable[Sequence[Any]]) -> tuple[HeaderField, ...]:
    """The fields of a header from the index the parser stored (``Part.headers`` or
    ``StoredStructure.top_headers``: ``(lower name, start, end)`` each): no re-scan. The
    offsets index the message, so ``raw`` may be the message's header octets alone when
    the spans are the top-level header's."""
    out = []
    for _name, start, end in spans:
        field = _field(raw[start:end])
        if field is not None:
            out.append(field)
    return tuple(out)


def header_values(
    headers: bytes | Sequence[HeaderField] | HeaderIndex, prop: HeaderProperty
) -> Any:
    """The value of ``prop``: the last such field in its form, or None when there is none;
    with ``:all`` a list of every such field's value in order (RFC 8621 §4.1.3)."""
    if isinstance(headers, HeaderIndex):
        found = headers.values(prop.key)
    else:
        fields = split_header(headers) if isinstance(headers, bytes) else headers
        key = prop.key
        found = [f.value for f in fields if f.name.lower() == key]
    if prop.all:
        return [parse_form(v, prop.form) for v in found]
    return parse_form(found[-1], prop.form) if found else None


class HeaderIndex:
    """A header's fields by lower-case name, for answering many properties of one part
    with one pass over its fields. :meth:`of_spans` reads only the fields asked for, from
    the index the parser stored."""

    __slots__ = ("_raw", "_spans", "by_name")

    def __init__(self, fields: Sequence[HeaderField]) -> None:
        self.by_name: dict[str, list[bytes]] = {}
        for f in fields:
            self.by_name.setdefault(f.name.lower(), []).append(f.value)
        self._raw = b""
        self._spans: dict[str, list[tuple[int, int]]] = {}

    @classmethod
    def of_spans(cls, raw: bytes, spans: Iterable[Sequence[Any]]) -> HeaderIndex:
        """An index over the parser's header index (see :func:`indexed_fields`)."""
        index = cls(())
        index._raw = raw
        for name, start, end in spans:
            index._spans.setdefault(name, []).append((start, end))
        return index

    def values(self, key: str) -> list[bytes]:
        found = self.by_name.get(key)
        if found is None:
            found = []
            for start, end in self._spans.get(key, ()):
                field = _field(self._raw[start:end])
                if field is not None:
                    found.append(field.value)
            self.by_name[key] = found
        return found


def headers_property(headers: bytes | Sequence[HeaderField]) -> list[dict[str, str]]:
    """The ``headers`` property: every field, in order, name as written, value Raw."""
    fields = split_header(headers) if isinstance(headers, bytes) else headers
    return [{"name": f.name, "value": raw_form(f.value)} for f in fields]


#: RFC 8621 §4.1.3: the convenience properties and the header property each stands for.
CONVENIENCE: dict[str, HeaderProperty] = {
    "messageId": HeaderProperty("Message-ID", HeaderForm.MESSAGE_IDS),
    "inReplyTo": HeaderProperty("In-Reply-To", HeaderForm.MESSAGE_IDS),
    "references": HeaderProperty("References", HeaderForm.MESSAGE_IDS),
    "sender": HeaderProperty("Sender", HeaderForm.ADDRESSES),
    "from": HeaderProperty("From", HeaderForm.ADDRESSES),
    "to": HeaderProperty("To", HeaderForm.ADDRESSES),
    "cc": HeaderProperty("Cc", HeaderForm.ADDRESSES),
    "bcc": HeaderProperty("Bcc", HeaderForm.ADDRESSES),
    "replyTo": HeaderProperty("Reply-To", HeaderForm.ADDRESSES),
    "subject": HeaderProperty("Subject", HeaderForm.TEXT),
    "sentAt": HeaderProperty("Date", HeaderForm.DATE),
}


def convenience_properties(
    headers: bytes | Sequence[HeaderField], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The convenience properties named (all of them by default) from one header."""
    fields = split_header(headers) if isinstance(headers, bytes) else headers
    index = HeaderIndex(fields)
    wanted = CONVENIENCE if names is None else [n for n in names if n in CONVENIENCE]
    return {name: header_values(index, CONVENIENCE[name]) for name in wanted}


def parse_form(value: bytes, form: HeaderForm) -> Any:
    """One field value (the octets after the colon) in ``form``."""
    match form:
        case HeaderForm.RAW:
            return raw_form(value)
        case HeaderForm.TEXT:
            return text_form(value)
        case HeaderForm.ADDRESSES:
            return addresses_form(value)
        case HeaderForm.GROUPED_ADDRESSES:
            return grouped_addresses_form(value)
        case HeaderForm.MESSAGE_IDS:
            return message_ids_form(value)
        case HeaderForm.DATE:
            return date_form(value)
        case HeaderForm.URLS:
            return urls_form(value)


# --- Raw and Text (RFC 8621 §4.1.2.1, §4.1.2.2) ----------------------------------------------


def raw_form(value: bytes) -> str:
    """§4.1.2.1: the octets as they are, NUL dropped, non-UTF-8 octets as U+FFFD."""
    return value.replace(b"\x00", b"").decode("utf-8", "replace")


_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n$")


def _unfolded(value: bytes) -> str:
    """RFC 5322 §2.2.3 unfolding of a raw value (a bare line end without white space after
    it cannot be inside a field, but one is dropped all the same)."""
    text = raw_form(value)
    if "\n" in text:
        text = _FOLD.sub("", text).replace("\r\n", "").replace("\n", "")
    return text


def text_form(value: bytes) -> str:
    """§4.1.2.2: unfolded, leading white space removed, RFC 2047 decoded, NFC.

    Trailing white space stays: the RFC removes only what leads the value."""
    text = _unfolded(value).lstrip(" \t")
    return unicodedata.normalize("NFC", decode_words(text))


# An encoded-word (RFC 2047 §2): no white space and no "?" in any of its pieces.
_EW = r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?="
_EW_ONE = re.compile(_EW)
_EW_RUN = re.compile(f"(?:{_EW})+")
_SPACE = re.compile(r"([ \t\r\n]+)")
# Controls an encoded-word may not bring in (RFC 8621 §4.1.2.2); HTAB is white space in
# RFC 5322 text, and a Subject may hold it unencoded, so it stays.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CHARSET_ALIASES = {
    "gb2312": "gb18030",  # labels that name a subset of what senders put in them
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
}


def text_codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset name, or None when there is none that decodes
    text (unknown names, and bytes-to-bytes codecs such as ``base64``)."""
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True):
            return None
        b"a".decode(info.name, "replace")  # LookupError for a codec that is not bytes-to-str
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return info.name


def _word_octets(encoding: str, text: str) -> bytes | None:
    """The octets of an encoded-word's text (RFC 2047 §4); None when they do not decode."""
    if encoding in "bB":
        data = text.encode("ascii", "replace")
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return None
    return binascii.a2b_qp(text.replace("_", " ").encode("ascii", "replace"))


def _decode_run(run: str) -> str | None:
    """A run of encoded-words written back to back, decoded; None when any one cannot be
    (unknown charset, broken base64): the run is then kept as written (RFC 2047 §6.2).
    Neighbours in one charset are joined before decoding, so a character split across two
    words (which §5 forbids and mailers do) comes out whole."""
    pieces: list[tuple[str, bytes]] = []
    for m in _EW_ONE.finditer(run):
        codec = text_codec(m.group(1).split("*", 1)[0])  # RFC 2231 §5: charset*language
        octets = _word_octets(m.group(2), m.group(3))
        if codec is None or octets is None:
            return None
        if pieces and pieces[-1][0] == codec:
            pieces[-1] = (codec, pieces[-1][1] + octets)
        else:
            pieces.append((codec, octets))
    text = "".join(octets.decode(codec, "replace") for codec, octets in pieces)
    return _CONTROLS.sub("", text)  # RFC 8621 §4.1.2.2: encoded controls are dropped


def decode_words(text: str) -> str:
    """RFC 2047 encoded-words decoded where they stand as whole words; the white space
    between two adjacent encoded-words goes (§6.2), other text is kept as it is. A row of
    encoded-words is decoded as one, so a character split between two comes out whole."""
    if "=?" not in text:
        return text
    chunks = _SPACE.split(text)  # words at even indexes, white space at odd ones
    out: list[str] = []
    i = 0
    while i < len(chunks):
        if not _EW_RUN.fullmatch(chunks[i]):
            out.append(chunks[i])
            if i + 1 < len(chunks):
                out.append(chunks[i + 1])
            i += 2
            continue
        j = i  # chunks[i:j + 1:2] is a row of encoded-words parted by white space only
        while j + 2 < len(chunks) and _EW_RUN.fullmatch(chunks[j + 2]):
            j += 2
        row = chunks[i : j + 1 : 2]
        decoded = _decode_run("".join(row))
        if decoded is not None:
            out.append(decoded)
        else:  # one of them cannot be decoded: each on its own, kept where it fails
            for k, word in enumerate(row):
                one = _decode_run(word)
                out.append(word if one is None else one)
                if k < len(row) - 1 and (one is None or _decode_run(row[k + 1]) is None):
                    out.append(chunks[i + 2 * k + 1])
        if j + 1 < len(chunks):
            out.append(chunks[j + 1])
        i = j + 2
    return "".join(out)


# --- Addresses and GroupedAddresses (RFC 8621 §4.1.2.3, §4.1.2.4) ----------------------------

_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SIMPLE_ANGLE = re.compile(r'<([^<>()"\\]*)>')
_ATOM_RUN = re.compile(r'[^ \t\r\n()"<>,;:]+')  # a ":" here may open a group
_ATOM_RUN_IN_GROUP = re.compile(r'[^ \t\r\n()"<>,;]+')


@dataclass(slots=True)
class _Word:
    text: str  # unquoted text
    source: str  # as written (quotes and escapes kept), for an addr-spec
    space_before: bool
    quoted: bool = False


class _AddressReader:
    """Best-effort RFC 5322 §3.4 address-list reader: comments are dropped, every mailbox
    becomes {name, email}, and text that is no valid address still comes out as one."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.groups: list[dict[str, Any]] = []
        self.loose: list[dict[str, str | None]] = []  # mailboxes outside any group
        self.group: dict[str, Any] | None = None
        self.words: list[_Word] = []
        self.angle: str | None = None
        self.after_angle: list[_Word] = []

    def _comment(self, i: int) -> int:
        depth = 0
        n = len(self.s)
        while i < n:
            c = self.s[i]
            if c == "\\":
                i += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return n

    def _quoted(self, i: int) -> tuple[str, str, int]:
        """(unquoted text, source, index after) of the quoted-string at ``i``."""
        n = len(self.s)
        j = i + 1
        while j < n and self.s[j] != '"':
            j += 2 if self.s[j] == "\\" else 1
        source = self.s[i : j + 1]
        inner = self.s[i + 1 : min(j, n)]
        return _QUOTED_PAIR.sub(r"\1", inner), source, j + 1

    def _angle(self, i: int) -> int:
        """An angle-addr: its addr-spec with CFWS and any obs-route removed."""
        simple = _SIMPLE_ANGLE.match(self.s, i)
        if simple is not None:  # no comment or quoted-string inside: most addresses
            addr = "".join(simple.group(1).split())
            if addr.startswith("@") and ":" in addr:
                addr = addr.split(":", 1)[1]
            self.angle = addr
            return simple.end()
        n = len(self.s)
        out: list[str] = []
        j = i + 1
        while j < n and self.s[j] != ">":
            c = self.s[j]
            if c == "(":
                j = self._comment(j)
                continue
            if c == '"':
                _, source, j = self._quoted(j)
                out.append(source)
                continue
            if c not in " \t\r\n":
                out.append(c)
            j += 1
        addr = "".join(out)
        if addr.startswith("@") and ":" in addr:  # RFC 5322 §4.4 obs-route: ignored
            addr = addr.split(":", 1)[1]
        self.angle = addr
        return j + 1

    def _flush(self) -> None:
        words, angle = self.words, self.angle
        self.words, self.angle, self.after_angle = [], None, []
        if angle is None and not words:
            return
        if angle is not None:
            name = _phrase(words)
            addresses = [{"name": name or None, "email": angle}]
        else:
            addresses = [{"name": None, "email": e} for e in _bare_addresses(words)]
        if self.group is not None:
            self.group["addresses"].extend(addresses)
        else:
            self.loose.extend(addresses)

    def _close_loose(self) -> None:
        if self.loose:
            self.groups.append({"name": None, "addresses": self.loose})
            self.loose = []

    def read(self) -> list[dict[str, Any]]:
        s = self.s
        n = len(s)
        i = 0
        space = False
        while i < n:
            c = s[i]
            if c in " \t\r\n":
                space = True
                i += 1
                continue
            if c == "(":
                i = self._comment(i)
                space = True
                continue
            if c == '"':
                text, source, i = self._quoted(i)
                self._word(_Word(text, source, space, quoted=True))
            elif c == "<":
                if self.angle is not None:
                    self._flush()
                i = self._angle(i)
            elif c == ",":
                self._flush()
                i += 1
            elif c == ":" and self.group is None and self.angle is None and self.words:
                self._close_loose()
                self.group = {"name": _phrase(self.words) or None, "addresses": []}
                self.words = []
                i += 1
            elif c == ";" and self.group is not None:
                self._flush()
                self.groups.append(self.group)
                self.group = None
                i += 1
            elif c in ";>":
                i += 1
            else:
                run = (_ATOM_RUN if self.group is None else _ATOM_RUN_IN_GROUP).match(s, i)
                j = run.end() if run is not None else i + 1  # a ":" that opens nothing
                self._word(_Word(s[i:j], s[i:j], space))
                i = j
            space = False
        self._flush()
        if self.group is not None:
            self.groups.append(self.group)  # a group left open at the end
        self._close_loose()
        return self.groups

    def _word(self, word: _Word) -> None:
        if self.angle is not None:
            # Text after "<addr>" (a display name in the wrong place): kept as the name
            # when there was none before it, else it starts no new address.
            if not self.words:
                self.after_angle.append(word)
                self.words = self.after_angle
                self.after_angle = []
            else:
                self.words.append(word)
            return
        self.words.append(word)


def _bare_addresses(words: list[_Word]) -> list[str]:
    """Addresses written without angle brackets. An addr-spec may hold CFWS around its
    dots and "@" (RFC 5322 §4.4), so its words are joined without it; but words that are
    each an address on their own (a list with its commas missing) stay apart, and text
    with no "@" at all keeps its spaces."""
    runs: list[str] = []
    for w in words:
        if w.space_before and runs:
            runs.append(w.source)
        elif runs:
            runs[-1] += w.source
        else:
            runs.append(w.source)
    if len(runs) > 1 and all("@" in r.strip("@") for r in runs):
        return runs
    if not any("@" in r for r in runs):
        return [" ".join(runs)]
    return ["".join(runs)]


def _phrase(words: list[_Word]) -> str:
    """A display name from its words (RFC 8621 §4.1.2.3): quoted-strings unquoted and
    unfolded, words joined by one space where white space parted them, encoded-words
    decoded, leading and trailing white space removed, NFC."""
    parts: list[str] = []
    for i, w in enumerate(words):
        text = w.text
        if w.quoted:
            text = _FOLD.sub("", text).replace("\r\n", "").replace("\n", "")
        if i > 0 and w.space_before:
            parts.append(" ")
        parts.append(text)
    return unicodedata.normalize("NFC", decode_words("".join(parts)).strip(" \t"))


def grouped_addresses_form(value: bytes) -> list[dict[str, Any]]:
    """§4.1.2.4: the address-list as groups; mailboxes outside a group are collected under
    a group whose name is null."""
    return _AddressReader(_unfolded(value)).read()


def addresses_form(value: bytes) -> list[dict[str, str | None]]:
    """§4.1.2.3: every mailbox of the address-list, groups flattened."""
    return [a for g in grouped_addresses_form(value) for a in g["addresses"]]


# --- MessageIds, URLs, Date (RFC 8621 §4.1.2.5-§4.1.2.7) -------------------------------------

_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)", re.DOTALL)


def without_comments(text: str) -> str:
    """Nested comments removed from the inside out; an unclosed one runs to the end."""
    while "(" in text:
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            return text[: text.index("(")]
        text = stripped
    return text


_ANGLED = re.compile(r"<([^<>]*)>")


def message_ids_form(value: bytes) -> list[str] | None:
    """§4.1.2.5: the msg-ids without CFWS and angle brackets; None when there is none (an
    empty ``<>``, or text with no msg-id). Phrases between them (obs-in-reply-to) are
    skipped, and a lone bare id (``id@host`` without brackets) is taken as one."""
    text = without_comments(_unfolded(value))
    ids = ["".join(m.group(1).split()) for m in _ANGLED.finditer(text)]
    if not ids and "<" not in text:
        words = text.split()
        if len(words) == 1:
            ids = words
    if not ids or any(not i for i in ids):
        return None
    return ids


def urls_form(value: bytes) -> list[str] | None:
    """§4.1.2.7 (RFC 2369 §2): the URLs in angle brackets, without comments and without the
    white space that folding put inside them; None when there is none (``NO``)."""
    text = without_comments(_unfolded(value))
    urls = ["".join(m.group(1).split()) for m in _ANGLED.finditer(text)]
    return urls or None


_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
#: RFC 5322 §4.3 obs-zone; military letters and unknown names count as -0000 (no offset).
_ZONES = {"ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -300, "edt": -240, "cst": -360,
          "cdt": -300, "mst": -420, "mdt": -360, "pst": -480, "pdt": -420}  # fmt: skip
_DATE = re.compile(
    r"\s*(?:[A-Za-z]+\s*,?\s*)?"  # day-of-week (not checked against the date)
    r"(\d{1,2})\s*[- ]?\s*([A-Za-z]{3,})\.?\s*[- ]?\s*(\d{2,4})\s+"
    r"(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?"
    r"\s*(?:([+-])(\d{2})(\d{2})|([A-Za-z]+))?\s*"
)


def date_form(value: bytes) -> str | None:
    """§4.1.2.6: an RFC 5322 §3.3 date-time (obsolete forms too) as an RFC 3339 date-time
    with the field's own offset; None when it is no date. A zone of +0000, -0000 or one
    whose offset is unknown is written ``Z``."""
    m = _DATE.fullmatch(without_comments(_unfolded(value)))
    if m is None:
        return None
    day, month_name, year_text, hour, minute, second, sign, zh, zm, zone = m.groups()
    month = _MONTHS.get(month_name[:3].lower())
    if month is None or (len(month_name) > 3 and not month_name.isalpha()):
        return None
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000 if year < 50 else 1900  # RFC 5322 §4.3 obs-year
    elif len(year_text) == 3:
        year += 1900
    d, h, mi, sec = int(day), int(hour), int(minute), int(second or 0)
    if not (1 <= d <= calendar.monthrange(year, month)[1] and h < 24 and mi < 60 and sec <= 60):
        return None
    if sign is not None:
        if int(zm) >= 60:
            return None
        offset = (int(zh) * 60 + int(zm)) * (-1 if sign == "-" else 1)
    else:
        offset = _ZONES.get((zone or "").lower(), 0)
    text = f"{year:04d}-{month:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}"
    if offset == 0:
        return text + "Z"
    sign_char = "-" if offset < 0 else "+"
    return text + f"{sign_char}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
