"""A message's text preview (RFC 8970 §3): up to 256 characters of plain text, made once.

``parse_message`` calls :func:`preview_text` at delivery and the stored structure keeps the
result, so FETCH PREVIEW reads a short slice of the structure and never the message body.

Which text: the first ``text/plain`` leaf of the message's own body parts, or, when there is
none, the first ``text/html`` leaf rendered to text. Parts that say they are attachments
(RFC 2183) and attached messages (message/rfc822) are not the message's text and are passed
over. The part is decoded from its transfer encoding and its charset; HTML loses its tags,
comments and the contents of ``head``, ``script``, ``style`` and ``template``, and its
character references are resolved (the standard library's ``html.parser``: nothing here
interprets markup beyond finding where text is). Runs of white space become one space,
other control and format characters are dropped (a preview is one line of text, and bidi
overrides could spoof the client's display), and the result is cut to 256 characters.

No quoted-text or signature heuristics: RFC 8970 leaves the algorithm to the server, and
previews that differ from Dovecot's are expected (docs/imap-compatibility.md).

Limits: at most :data:`MAX_SOURCE` octets of a part are read, in pieces, and reading stops as
soon as enough text is there, so a 40 MB part costs a few pieces.
"""

from __future__ import annotations

import codecs
import logging
import unicodedata
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from mailstead.core import sanity
from mailstead.mime.imap_views import PartDecoder

if TYPE_CHECKING:
    from mailstead.mime.parse import Part

#: RFC 8970: the preview is at most 256 characters.
MAX_CHARS = 256
#: Octets of a part's encoded body read at most (HTML can open with a long head or style).
MAX_SOURCE = 256 * 1024
_PIECE = 8 * 1024
#: HTML elements whose content is no text a reader sees.
_HIDDEN = frozenset({"head", "script", "style", "template", "title", "noscript"})
#: Format characters kept: zero-width (non-)joiners shape scripts and emoji sequences.
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})
_log = logging.getLogger("mailstead.mime")


def preview_text(raw: bytes, root: Part) -> str:
    """The preview of the message ``raw`` whose part tree is ``root``; "" when it has no
    text part (RFC 8970: an empty string, not NIL, when nothing can be shown).

    Never raises in production: a bug here logs and gives "", so a delivery is never
    refused for its preview (with the sanity flag on, as under test, it raises)."""
    try:
        part = _source_part(root)
        if part is None:
            return ""
        return _preview_of(raw, part)
    except Exception as exc:
        sanity.degrade(_log, exc, "preview failed (%s); the message has an empty preview")
        return ""


def source_end(root: Part) -> int:
    """How many octets of the message :func:`preview_text` reads at most: a structure
    stored without a preview has it made from this much of the body, not all of it."""
    part = _source_part(root)
    return 0 if part is None else min(part.body_end, part.body_start + MAX_SOURCE)


def _own_leaves(part: Part) -> Iterator[Part]:
    """The leaves of the message's own body, in order: multiparts are entered, attached
    messages are not."""
    if part.multipart:
        for child in part.children:
            yield from _own_leaves(child)
    elif not part.children:
        yield part


def _source_part(root: Part) -> Part | None:
    """The first text/plain leaf that is not an attachment, else the first such text/html."""
    html: Part | None = None
    for leaf in _own_leaves(root):
        if leaf.content_type != "text" or leaf.disposition == "attachment":
            continue
        if leaf.content_subtype == "plain":
            return leaf
        if leaf.content_subtype == "html" and html is None:
            html = leaf
    return html


def _decoder(charset: str | None) -> codecs.IncrementalDecoder:
    """An incremental decoder for the part's charset. UTF-8 for us-ascii, the default (RFC
    2045 §5.2): it is a superset, and undeclared or mislabelled 8-bit text is most often
    UTF-8 (Dovecot reads it so too); UTF-8 also for a charset that is no text encoding
    Python knows (the RFC leaves unknown charsets to the reader)."""
    if charset:
        try:
            # LookupError for unknown names and for bytes-to-bytes codecs (base64, zlib);
            # an empty input would be let through unchecked.
            b"a".decode(charset, "replace")
            if codecs.lookup(charset).name != "ascii":
                return codecs.getincrementaldecoder(charset)("replace")
        except (LookupError, UnicodeError, ValueError):
            pass
    return codecs.getincrementaldecoder("utf-8")("replace")


def _text_pieces(raw: bytes, part: Part) -> Iterator[str]:
    """The part's text, a piece at a time, at most ``MAX_SOURCE`` octets of it read."""
    transfer = PartDecoder(part.encoding)
    text = _decoder(part.param("charset"))
    end = min(part.body_end, part.body_start + MAX_SOURCE)
    whole = end == part.body_end

    def decode(data: bytes, final: bool) -> str:
        nonlocal text
        try:
            return text.decode(data, final)
        except UnicodeError:
            # A codec that raises despite "replace" (utf-16 on an odd octet count at the
            # end, idna): the rest is read as UTF-8.
            text = codecs.getincrementaldecoder("utf-8")("replace")
            return text.decode(data, final)

    for start in range(part.body_start, end, _PIECE):
        yield decode(transfer.feed(memoryview(raw)[start : min(start + _PIECE, end)]), False)
    if whole:
        yield decode(transfer.end(), True)


def _printable(word: str) -> str:
    """``word`` (no white space in it) without control and format characters."""
    return "".join(ch for ch in word
                   if unicodedata.category(ch)[0] != "C" or ch in _KEPT_FORMAT)


class _Text:
    """Collects preview text: white space collapsed, controls dropped, capped. Text comes a
    word at a time (``str.split``), and only a word that is not all printable is looked at
    character by character: most text costs a split and a join."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.length = 0
        self.space = False  # a space is owed before the next visible character

    @property
    def full(self) -> bool:
        return self.length >= MAX_CHARS

    def add(self, text: str) -> None:
        if self.full or not text:
            return
        if text[0].isspace():
            self.gap()
        words = text.split()
        last = len(words) - 1
        for i, word in enumerate(words):
            if not word.isprintable():  # white space is split off: a C* character is here
                word = _printable(word)
                if not word:
                    continue
            if self.space:
                self.words.append(" ")
                self.length += 1
            self.words.append(word)
            self.length += len(word)
            if self.full:
                return
            self.space = i < last  # white space parted it from the next word
        if text[-1].isspace():
            self.gap()

    def gap(self) -> None:
        """White space, or a block boundary in HTML: words on either side must not run
        together (and none is owed before the first word)."""
        self.space = self.length > 0

    def result(self) -> str:
        return "".join(self.words)[:MAX_CHARS].rstrip(" ")


class _HTMLText(HTMLParser):
    """HTML to text: character data outside hidden elements; every tag is a word boundary
    except the inline ones that sit inside words."""

    _INLINE = frozenset({"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em",
                         "font", "i", "kbd", "mark", "q", "s", "samp", "small", "span",
                         "strong", "sub", "sup", "time", "u", "var", "wbr"})

    def __init__(self, out: _Text) -> None:
        super().__init__(convert_charrefs=True)
        self.out = out
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "body":
            self.hidden = 0  # a head left open ends where the body starts (as browsers read it)
            self.out.gap()
        elif tag not in self._INLINE:
            self.out.gap()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self._INLINE and tag not in _HIDDEN:
            self.out.gap()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag not in self._INLINE:
            self.out.gap()

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.add(data)


def _preview_of(raw: bytes, part: Part) -> str:
    out = _Text()
    if part.content_subtype == "html":
        parser = _HTMLText(out)
        for piece in _text_pieces(raw, part):
            try:
                parser.feed(piece)
            except AssertionError:
                # html.parser's way to reject a malformed marked section or declaration
                # ("<![foo[", "<![ x"): it cannot go on, and the text before it is the
                # preview.
                break
            if out.full:
                break
        # No close(): it would flush an unfinished tag at the end ("<a href=...") as text.
        # Without it the parser keeps that back, and a cut-off character reference too.
        return out.result()
    for piece in _text_pieces(raw, part):
        out.add(piece)
        if out.full:
            break
    return out.result()
