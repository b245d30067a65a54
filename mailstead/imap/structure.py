"""Cheap access to the structure ``mime/`` stored at delivery.

FETCH ENVELOPE/BODYSTRUCTURE and SEARCH on addresses or subject only need a few strings of
the stored JSON; building the whole part tree (``ParsedMessage.from_json``) for each of
10,000 messages would dominate the command. :class:`StoredStructure` decodes the JSON once
and builds the tree only when a body section or header offsets are asked for.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cached_property
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from mailstead.mime.parse import ParsedMessage

#: How ParsedMessage.to_json starts: the three strings FETCH asks for most come first.
_HEAD = re.compile(r'\{"v":\d+,"size":\d+,"envelope":"')
_BODY_KEY = ',"body":"'
_DECODER = json.JSONDecoder()
#: The root part's offsets, at the front of the last top-level key. A JSON string cannot
#: hold an unescaped quote, so the first match is the structure's own.
_ROOT_OFFSETS = re.compile(rb',"root":\{"hs":\d+,"he":(\d+)')
_BODYSTRUCTURE_KEY = ',"bodystructure":"'


def read_head(text: str) -> tuple[str, str, str] | None:
    """(envelope, body, bodystructure) read straight from the front of the stored JSON with
    the json module's C string scanner, or None when the layout is not the expected one.

    ``UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)`` on a big mailbox spent 70% of its time
    in ``json.loads`` of documents whose part tree it never looked at.
    """
    match = _HEAD.match(text)
    if match is None:
        return None
    try:
        envelope, end = scanstring(text, match.end())
        if not text.startswith(_BODY_KEY, end):
            return None
        body, end = scanstring(text, end + len(_BODY_KEY))
        if not text.startswith(_BODYSTRUCTURE_KEY, end):
            return None
        bodystructure, _ = scanstring(text, end + len(_BODYSTRUCTURE_KEY))
    except ValueError:
        return None
    return envelope, body, bodystructure


class StoredStructure:
    """The stored parse result of one message; same field names as ParsedMessage."""

    def __init__(self, data: bytes) -> None:
        self._raw = data

    @cached_property
    def _doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self._raw)
        return doc

    @cached_property
    def _text(self) -> str:
        """The stored JSON as text (it is ASCII), decoded once for the fast readers."""
        return self._raw.decode("ascii", "replace")

    @cached_property
    def _head(self) -> tuple[str, str, str]:
        head = read_head(self._text)
        if head is None:
            doc = self._doc
            return str(doc["envelope"]), str(doc["body"]), str(doc["bodystructure"])
        return head

    @property
    def envelope(self) -> str:
        return self._head[0]

    @property
    def body(self) -> str:
        return self._head[1]

    @property
    def bodystructure(self) -> str:
        return self._head[2]

    @property
    def subject(self) -> str | None:
        return self._doc.get("subject")

    @property
    def from_addrs(self) -> tuple[str, ...]:
        return tuple(self._doc.get("from", ()))

    @property
    def to(self) -> tuple[str, ...]:
        return tuple(self._doc.get("to", ()))

    @property
    def cc(self) -> tuple[str, ...]:
        return tuple(self._doc.get("cc", ()))

    @property
    def bcc(self) -> tuple[str, ...]:
        return tuple(self._doc.get("bcc", ()))

    @property
    def date(self) -> datetime | None:
        value = self._doc.get("date")
        return datetime.fromisoformat(value) if value else None

    @cached_property
    def header_end(self) -> int:
        """Where the message's header section ends (FETCH of headers, SEARCH HEADER),
        found without decoding the part tree."""
        match = _ROOT_OFFSETS.search(self._raw)
        if match is not None:
            return int(match.group(1))
        return self.parsed.root.header_end

    @cached_property
    def top_headers(self) -> list[list[Any]]:
        """The message's own header list (``[name, start, end]`` each), decoded alone: the
        first ``"headers":`` after the root's start is the root's (its children follow its
        own keys, and a JSON string holds no unescaped quote)."""
        at = self._raw.find(b',"root":{')
        key = self._raw.find(b'"headers":', at) if at >= 0 else -1
        if key >= 0:
            try:
                headers, _ = _DECODER.raw_decode(self._text, key + 10)
            except ValueError:
                headers = None
            if isinstance(headers, list):
                return headers
        return [list(h) for h in self.parsed.root.headers]

    @cached_property
    def parsed(self) -> ParsedMessage:
        """The full tree with offsets, for sections, BINARY and header searches."""
        return ParsedMessage.from_json(self._raw)
