"""FETCH attribute grammar (RFC 9051 §6.4.5, RFC 3516 BINARY)."""

from __future__ import annotations

from dataclasses import dataclass

from mailstead.imap.parse.primitives import MAX_NUMBER, Reader

_SIMPLE = frozenset({
    "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID",
    "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "SAVEDATE", "EMAILID", "THREADID",
})
# RFC 9051 §6.4.5 macros; they may only appear alone.
MACROS: dict[str, tuple[str, ...]] = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One requested item. ``name`` is FLAGS, UID, BODY[]-style ``BODY``/``BINARY``/
    ``BINARY.SIZE`` with ``section`` set, etc. ``section`` is the canonical section text
    (``1.2.HEADER.FIELDS (FROM TO)``), ``part`` the <origin.count> partial."""

    name: str
    section: str | None = None
    part: tuple[int, int] | None = None
    peek: bool = False
    path: tuple[int, ...] = ()

    @property
    def sets_seen(self) -> bool:
        """Non-PEEK body fetches set \\Seen (RFC 9051 §6.4.5)."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.section is not None and not self.peek and self.name in ("BODY", "BINARY")

    def response_name(self) -> str:
        """The item name as it appears in the FETCH response (no PEEK, origin only)."""
        if self.section is None:
            return self.name
        origin = f"<{self.part[0]}>" if self.part is not None else ""
        return f"{self.name}[{self.section}]{origin}"


_HEADER_SPECS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")


def _section(r: Reader, *, binary: bool) -> tuple[str, tuple[int, ...]]:
    """section-spec inside brackets; returns its canonical text and part path."""
    r.expect(b"[", "'['")
    path: list[int] = []
    spec = ""
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
        for candidate in _HEADER_SPECS:
            if r.skip(candidate.encode()):
                spec = candidate
                break
        else:
            raise r.error("unknown section specifier")
        if spec == "MIME" and not path:
            raise r.error("MIME needs a part number")
        if spec.startswith("HEADER.FIELDS"):
            r.sp()
            r.open_paren()
            while True:
                fields.append(r.text_astring("a header field name"))
                if r.peek() == b")":
                    break
                r.sp()
            r.close_paren()
    r.expect(b"]", "']'")
    text = ".".join(str(p) for p in path)
    if spec:
        text = f"{text}.{spec}" if text else spec
    if fields:
        # Echoed as the client wrote them (RFC 9051 §7.5.2: the section as requested).
        text += " (" + " ".join(fields) + ")"
    return text, tuple(path)


def _partial(r: Reader) -> tuple[int, int] | None:
    if r.peek() != b"<":
        return None
    r.pos += 1
    origin = r.number()
    r.expect(b".", "'.' in partial")
    count = r.number(nonzero=True, limit=MAX_NUMBER)
    r.expect(b">", "'>'")
    return origin, count


def fetch_att(r: Reader) -> FetchAtt:
    start = r.pos
    while not r.at_end() and r.peek() not in (b" ", b")", b"[", b"<"):
        r.pos += 1
    word = r.data[start : r.pos].decode("ascii", "replace").upper()
    if word in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE") and r.peek() == b"[":
        binary = word.startswith("BINARY")
        section, path = _section(r, binary=binary)
        part = None if word == "BINARY.SIZE" else _partial(r)
        name = word.removesuffix(".PEEK")
        return FetchAtt(name, section, part, word.endswith(".PEEK"), path)
    if word in _SIMPLE:
        return FetchAtt(word)
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
