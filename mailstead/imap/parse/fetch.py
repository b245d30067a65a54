"""FETCH attribute grammar (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ, RFC 8474
EMAILID/THREADID, RFC 8514 SAVEDATE, RFC 8970 PREVIEW)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailstead.imap.parse.primitives import MAX_NUMBER, Reader
from mailstead.mime.sections import Section, SectionText


class FetchItem(StrEnum):
    """What a FETCH can ask for. BODY is BODY[section] when the item has a section and the
    BODY structure when it has none; BINARY and BINARY.SIZE always have one."""

    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822_SIZE = "RFC822.SIZE"
    ENVELOPE = "ENVELOPE"
    BODY = "BODY"
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    RFC822 = "RFC822"
    RFC822_HEADER = "RFC822.HEADER"
    RFC822_TEXT = "RFC822.TEXT"
    MODSEQ = "MODSEQ"
    SAVEDATE = "SAVEDATE"
    EMAILID = "EMAILID"
    THREADID = "THREADID"
    BINARY = "BINARY"
    BINARY_SIZE = "BINARY.SIZE"
    PREVIEW = "PREVIEW"


_SIMPLE = frozenset(FetchItem) - {FetchItem.BINARY, FetchItem.BINARY_SIZE, FetchItem.PREVIEW}
_BY_NAME = {item.value: item for item in FetchItem}
# RFC 9051 §6.4.5 macros; they may only appear alone.
MACROS: dict[str, tuple[FetchItem, ...]] = {
    "ALL": (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE, FetchItem.ENVELOPE),
    "FAST": (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE),
    "FULL": (
        FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE, FetchItem.ENVELOPE,
        FetchItem.BODY,
    ),
}
_SECTIONED = {
    "BODY": FetchItem.BODY,
    "BODY.PEEK": FetchItem.BODY,
    "BINARY": FetchItem.BINARY,
    "BINARY.PEEK": FetchItem.BINARY,
    "BINARY.SIZE": FetchItem.BINARY_SIZE,
}


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One requested item; ``section`` for BODY[...] and BINARY[...], ``part`` the
    ``<origin.count>`` partial, ``peek`` for the .PEEK forms that leave \\Seen alone,
    ``lazy`` for PREVIEW (LAZY) (RFC 8970: NIL when no preview is at hand)."""

    item: FetchItem
    section: Section | None = None
    part: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False

    @property
    def sets_seen(self) -> bool:
        """Non-PEEK body fetches set \\Seen (RFC 9051 §6.4.5)."""
        if self.item in (FetchItem.RFC822, FetchItem.RFC822_TEXT):
            return True
        return (
            self.section is not None
            and not self.peek
            and self.item in (FetchItem.BODY, FetchItem.BINARY)
        )

    def response_name(self) -> str:
        """The item name as it appears in the FETCH response (no PEEK, origin only)."""
        if self.section is None:
            return self.item.value
        origin = f"<{self.part[0]}>" if self.part is not None else ""
        return f"{self.item.value}[{self.section}]{origin}"


_SECTION_TEXTS = (  # longest first: HEADER.FIELDS.NOT before HEADER.FIELDS before HEADER
    SectionText.HEADER_FIELDS_NOT,
    SectionText.HEADER_FIELDS,
    SectionText.HEADER,
    SectionText.TEXT,
    SectionText.MIME,
)


def _section(r: Reader, *, binary: bool) -> Section:
    """section-spec inside brackets (RFC 9051 §9 section, RFC 3516 section-binary)."""
    r.expect(b"[", "'['")
    path: list[int] = []
    text: SectionText | None = None
    fields: list[str] = []
    dotted = False
    while r.peek().isdigit():
        path.append(r.number(nonzero=True))
        dotted = r.peek() == b"."
        if not dotted:
            break
        r.pos += 1
        if not r.peek().isdigit():
            if binary:
                raise r.error("BINARY sections are part numbers only")
            break
    if path and not dotted and r.peek() != b"]":
        raise r.error("expected '.' or ']' after a part number")
    if path and dotted and r.peek() == b"]":
        raise r.error("section ends with '.'")
    if r.peek() != b"]":
        if binary:
            raise r.error("BINARY sections are part numbers only")
        for candidate in _SECTION_TEXTS:
            if r.skip(candidate.value.encode()):
                text = candidate
                break
        else:
            raise r.error("unknown section specifier")
        if text is SectionText.MIME and not path:
            raise r.error("MIME needs a part number")
        if text.picks_fields:
            r.sp()
            r.open_paren()
            while True:
                fields.append(r.text_astring("a header field name"))
                if r.peek() == b")":
                    break
                r.sp()
            r.close_paren()
    r.expect(b"]", "']'")
    return Section(tuple(path), text, tuple(fields))


def section_spec(r: Reader) -> Section:
    """A bracketed BODY section-spec on its own (an IMAP URL's ``;SECTION=``, RFC 5092)."""
    return _section(r, binary=False)


def _partial(r: Reader) -> tuple[int, int] | None:
    if r.peek() != b"<":
        return None
    r.pos += 1
    origin = r.number()
    r.expect(b".", "'.' in partial")
    count = r.number(nonzero=True, limit=MAX_NUMBER)
    r.expect(b">", "'>'")
    return origin, count


def _preview_modifiers(r: Reader) -> bool:
    """RFC 8970 formal syntax: ``"PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]``,
    preview-mod = "LAZY"; returns whether LAZY was given. A list after PREVIEW that does not
    open with a preview-mod is left alone: it is the FETCH command's modifiers (RFC 4466
    §2.4)."""
    if r.peek(2) != b" (" or r.data[r.pos + 2 : r.pos + 6].upper() != b"LAZY":
        return False
    r.sp()
    r.open_paren()
    while True:
        if not r.skip(b"LAZY") or r.peek() not in (b" ", b")"):
            raise r.error("PREVIEW modifiers are LAZY only")
        if r.peek() == b")":
            break
        r.sp()
    r.close_paren()
    return True


def fetch_att(r: Reader) -> FetchAtt:
    start = r.pos
    while not r.at_end() and r.peek() not in (b" ", b")", b"[", b"<"):
        r.pos += 1
    word = r.data[start : r.pos].decode("ascii", "replace").upper()
    if word in _SECTIONED and r.peek() == b"[":
        item = _SECTIONED[word]
        section = _section(r, binary=item is not FetchItem.BODY)
        part = None if item is FetchItem.BINARY_SIZE else _partial(r)
        return FetchAtt(item, section, part, word.endswith(".PEEK"))
    if word == FetchItem.PREVIEW.value:
        return FetchAtt(FetchItem.PREVIEW, lazy=_preview_modifiers(r))
    simple = _BY_NAME.get(word)
    if simple is not None and simple in _SIMPLE:
        return FetchAtt(simple)
    if not word:
        raise r.error("expected a FETCH item")
    raise r.error(f"unknown FETCH item {word[:40]}")


def fetch_atts(r: Reader) -> list[FetchAtt]:
    """``ALL`` / ``FAST`` / ``FULL`` / one item / a parenthesised list of items."""
    if r.peek() == b"(":
        r.open_paren()
        if r.peek() == b")":
            # Not in the RFC 9051 grammar, but harmless: James and others answer "FETCH ()".
            r.close_paren()
            return []
        items = [fetch_att(r)]
        while r.peek() == b" ":
            r.sp()
            items.append(fetch_att(r))
        r.close_paren()
        return items
    start = r.pos
    for macro, names in MACROS.items():
        if r.skip(macro.encode()) and (r.at_end() or r.peek() in (b" ", b")")):
            return [FetchAtt(n) for n in names]
        r.pos = start
    return [fetch_att(r)]
