"""A body section as a value: which part, and which piece of it (RFC 9051 §6.4.5).

The IMAP parser reads ``BODY[1.2.HEADER.FIELDS (From To)]`` once into a :class:`Section`;
FETCH carries it to :func:`mailstead.mime.imap_views.section_bytes`, which picks the octets
from the stored offsets. Nothing flattens it to text and parses it again on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SectionText(StrEnum):
    """section-msgtext / section-text of RFC 9051 §9, as the client spells them."""

    HEADER = "HEADER"
    HEADER_FIELDS = "HEADER.FIELDS"
    HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
    TEXT = "TEXT"
    MIME = "MIME"  # only after a part number

    @property
    def picks_fields(self) -> bool:
        return self in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT)


@dataclass(frozen=True, slots=True)
class Section:
    """``path`` is the part number (``()`` for the whole message); ``text`` the piece of it
    (None: the part's content, or the whole message); ``fields`` the header field names of
    HEADER.FIELDS[.NOT] as the client wrote them (the response echoes them, §7.5.2)."""

    path: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[str, ...] = ()

    @property
    def field_names(self) -> frozenset[str]:
        """The field names to match, lower case (header field names are case-insensitive,
        RFC 5322 §1.2.2)."""
        return frozenset(name.lower() for name in self.fields)

    @property
    def top_level_fields(self) -> bool:
        """HEADER.FIELDS[.NOT] of the message itself: the top-level header list alone answers
        it, which is what mail clients fetch to show a message list."""
        return not self.path and self.text is not None and self.text.picks_fields

    def __str__(self) -> str:
        """The canonical section text inside the brackets: ``1.2.HEADER.FIELDS (From To)``."""
        text = ".".join(str(p) for p in self.path)
        if self.text is not None:
            text = f"{text}.{self.text}" if text else str(self.text)
        if self.text is not None and self.text.picks_fields:
            text += " (" + " ".join(self.fields) + ")"
        return text
