"""Parse-once MIME: bytes in, part tree with offsets and IMAP wire strings out (no I/O).

``parse`` reads a message once, at delivery; ``stored`` owns the form the mailstore keeps and
its fast readers; ``imap_views`` turns what was stored into FETCH answers."""

from __future__ import annotations

from mailstead.mime.parse import ParsedMessage, Part, parse_message

__all__ = ["ParsedMessage", "Part", "parse_message"]
