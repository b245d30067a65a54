"""Shared structural checks for parsed messages (imported by the mime test modules)."""

from __future__ import annotations

from mailstead.mime import ParsedMessage, Part, stored
from mailstead.mime.imap_views import section_bytes, wire_bytes
from mailstead.mime.sections import Section, SectionText

HEADER = Section(text=SectionText.HEADER)
TEXT = Section(text=SectionText.TEXT)


def check_offsets(part: Part, lo: int, hi: int) -> None:
    """Offsets are in bounds and children nest inside their parent's body."""
    assert lo <= part.header_start <= part.header_end <= part.body_start <= part.body_end <= hi
    for name, start, end in part.headers:
        assert part.header_start <= start < end <= part.header_end, (name, start, end)
    previous = part.body_start
    for child in part.children:
        assert child.header_start >= previous
        check_offsets(child, part.body_start, part.body_end)
        previous = child.body_end


def check_balanced(wire: str) -> None:
    """IMAP list syntax: balanced parentheses outside quoted strings and literals."""
    data = wire_bytes(wire)
    depth = 0
    i = 0
    n = len(data)
    assert data[:1] == b"(" and data[-1:] == b")"
    while i < n:
        c = data[i]
        if c == ord('"'):
            i += 1
            while data[i] != ord('"'):
                assert data[i] not in b"\r\n"
                i += 2 if data[i] == ord("\\") else 1
        elif c == ord("{"):
            close = data.index(b"}", i)
            length = int(data[i + 1 : close])
            assert data[close + 1 : close + 3] == b"\r\n"
            i = close + 3 + length - 1
        elif c == ord("("):
            depth += 1
        elif c == ord(")"):
            depth -= 1
            assert depth >= 0 or i == n - 1
        i += 1
    assert depth == 0


def check_message(raw: bytes, parsed: ParsedMessage) -> None:
    assert parsed.size == len(raw)
    root = parsed.root
    assert root.header_start == 0 and root.body_end == len(raw)
    check_offsets(root, 0, len(raw))
    for wire in (parsed.envelope, parsed.body, parsed.bodystructure):
        check_balanced(wire)
    check_stored(parsed)
    assert section_bytes(raw, parsed, Section()) == raw
    assert section_bytes(raw, parsed, HEADER) + section_bytes(raw, parsed, TEXT) == raw


def check_stored(parsed: ParsedMessage) -> None:
    """The stored form reads back whole, and each fast reader agrees with the parse."""
    data = stored.encode(parsed)
    assert stored.decode(data) == parsed
    fast = stored.StoredStructure(data)
    assert fast.version == stored.VERSION
    assert (fast.envelope, fast.body, fast.bodystructure) == (
        parsed.envelope,
        parsed.body,
        parsed.bodystructure,
    )
    assert fast.header_end == parsed.root.header_end
    assert fast.top_headers == [list(h) for h in parsed.root.headers]
    assert (fast.subject, fast.date) == (parsed.subject, parsed.date)
    assert (fast.from_addrs, fast.to, fast.cc, fast.bcc) == (
        parsed.from_addrs,
        parsed.to,
        parsed.cc,
        parsed.bcc,
    )
