"""What Email/get, Email/query and the blob download read of a message beyond its store
record: the structure stored at delivery and as many of the message's octets as the
properties asked for need (the header alone for header properties, nothing for the
preview, which the structure keeps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailstead.mime.parse import ParsedMessage
from mailstead.mime.stored import StoredStructure, encode
from mailstead.store.interfaces import Messages


@dataclass(frozen=True, slots=True)
class Content:
    """A message's structure and octets: the whole message, or its header only
    (``complete`` False)."""

    structure: StoredStructure
    raw: bytes
    complete: bool

    @property
    def parsed(self) -> ParsedMessage:
        return self.structure.parsed

    @classmethod
    def of(cls, parsed: ParsedMessage, raw: bytes) -> Content:
        """A message parsed now (Email/parse), in the stored form the readers take."""
        return cls(StoredStructure(encode(parsed)), raw, True)


async def load(
    store: Messages, blob_ids: Sequence[str], *, octets: bool, whole: bool
) -> dict[str, Content]:
    """The content of each body (a body that went meanwhile is left out). ``octets``:
    read any octets at all; ``whole``: the whole message rather than its header."""
    stored = await store.get_structures(list(blob_ids))
    structures = {}
    for blob_id, data in stored.items():
        try:
            structures[blob_id] = StoredStructure(data)
        except ValueError:
            continue  # a structure in no known layout: treated as gone
    if not octets:
        return {b: Content(s, b"", False) for b, s in structures.items()}
    ordered = list(structures)
    requests = [(b, 0, None if whole else structures[b].header_end) for b in ordered]
    found = await store.read_blobs(requests)
    return {
        b: Content(structures[b], data, whole)
        for b, data in zip(ordered, found, strict=True)
        if data is not None
    }
