"""Parse-once MIME: bytes in, part tree with offsets and IMAP wire strings out (no I/O)."""

from __future__ import annotations

from mailstead.mime.parse import ParsedMessage, Part, parse_message

__all__ = ["ParsedMessage", "Part", "parse_message"]
