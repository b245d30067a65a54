"""Cheap access to the structure ``mime/`` stored at delivery.

FETCH ENVELOPE/BODYSTRUCTURE and SEARCH on addresses or subject only need a few strings of
the stored JSON; building the whole part tree (``ParsedMessage.from_json``) for each of
10,000 messages would dominate the command. :class:`StoredStructure` decodes the JSON once
and builds the tree only when a body section or header offsets are asked for.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from typing import Any

from mailstead.mime.parse import ParsedMessage


class StoredStructure:
    """The stored parse result of one message; same field names as ParsedMessage."""

    def __init__(self, data: bytes) -> None:
        self._raw = data
        self._doc: dict[str, Any] = json.loads(data)

    @property
    def envelope(self) -> str:
        return str(self._doc["envelope"])

    @property
    def body(self) -> str:
        return str(self._doc["body"])

    @property
    def bodystructure(self) -> str:
        return str(self._doc["bodystructure"])

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
    def parsed(self) -> ParsedMessage:
        """The full tree with offsets, for sections, BINARY and header searches."""
        return ParsedMessage.from_json(self._raw)
