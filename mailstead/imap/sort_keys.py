"""The SORT and THREAD records of the messages a search found, from the keys the store
kept of their bodies (decision 0031).

One store read gives the keys of the whole mailbox, only the columns the criteria compare;
no structure is decoded. A body without keys (stored before the keys were, or with keys
of an older :data:`~mailstead.imap.sort.KEYS_VERSION`, or whose keys failed at delivery)
has them derived here from its structure, and written back, so the next SORT reads them:
the answers are the same either way, only the first SORT over old mail pays for the
structures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mailstead.core.types import UID
from mailstead.imap.batches import batches
from mailstead.imap.search import Candidate
from mailstead.imap.sort import (
    KEYS_VERSION,
    STORED_FIELDS,
    Field,
    Sortable,
    keys_of,
    record,
)
from mailstead.mime.stored import StoredStructure
from mailstead.store.interfaces import Messages
from mailstead.store.models import SortKeys

_BATCH = 1024  # bodies whose structures are read, and keys written back, at once


def _records(
    found: Sequence[Candidate], stored: dict[UID, SortKeys]
) -> tuple[list[Sortable], list[Candidate]]:
    """The records of the messages with keys, and the messages without."""
    out: list[Sortable] = []
    missing: list[Candidate] = []
    for c in found:
        keys = stored.get(c.meta.uid)
        if keys is None:
            missing.append(c)
        else:
            out.append(record(c.meta, c.seq, keys))
    return out, missing


def _derive(
    chunk: Sequence[Candidate], structures: dict[str, bytes]
) -> tuple[list[Sortable], dict[str, SortKeys], bool]:
    """Keys derived from the structures read for ``chunk``: the records, the keys to keep
    (one per body), and whether a message's body had vanished meanwhile."""
    out: list[Sortable] = []
    derived: dict[str, SortKeys] = {}
    vanished = False
    for c in chunk:
        blob_id = c.meta.blob_id
        keys = derived.get(blob_id)
        if keys is None:
            data = structures.get(blob_id)
            if data is None:
                vanished = True
                continue
            keys = derived[blob_id] = keys_of(StoredStructure(data))
        out.append(record(c.meta, c.seq, keys))
    return out, derived, vanished


async def sortables(
    store: Messages, mailbox_id: int, found: Sequence[Candidate], reads: frozenset[Field]
) -> tuple[list[Sortable], bool]:
    """The records of ``found`` (messages of ``mailbox_id``) with the fields ``reads``
    names, in no particular order, and whether one was expunged meanwhile (its keys and
    its structure gone: it is left out, as SEARCH leaves such a message out)."""
    if not reads:  # ARRIVAL and SIZE come from the message list
        empty = SortKeys(KEYS_VERSION, None, "", "", "", "", False, None, ())
        return [record(c.meta, c.seq, empty) for c in found], False
    fields = frozenset(STORED_FIELDS[f] for f in reads)
    stored = await store.sort_keys(mailbox_id, fields, KEYS_VERSION)
    # Building a record per message grows with the mailbox: off the event loop.
    out, missing = await asyncio.to_thread(_records, found, stored)
    vanished = False
    for chunk in batches(missing, lambda c: c.meta.size, count=_BATCH, octets=None):
        structures = await store.get_structures([c.meta.blob_id for c in chunk])
        more, derived, gone = await asyncio.to_thread(_derive, chunk, structures)
        out += more
        vanished = vanished or gone
        await store.put_sort_keys(derived)
    return out, vanished
