"""The SORT and THREAD records of the messages a search found, from the keys the store
kept of their bodies (decision 0031).

One store read gives the keys of the whole mailbox; no structure is decoded. A body
without keys (stored before the keys were, or with keys of an older
:data:`~mailstead.imap.sort.KEYS_VERSION`, or whose keys failed at delivery) has them
derived here from its structure, and written back, so the next SORT reads them: the
answers are the same either way, only the first SORT over old mail pays for the
structures.

The records of a mailbox are kept between commands (:class:`KeptRecords`, every field
filled): a record is fixed for a message (its keys, INTERNALDATE and size never change),
so after a delivery only the new messages' keys are read, and a mailbox's records are
built from the store once, not per command.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence

from mailstead.core.types import UID
from mailstead.imap.batches import batches
from mailstead.imap.search import Candidate
from mailstead.imap.sort import KEYS_VERSION, Sortable, keys_of, record
from mailstead.mime.stored import StoredStructure
from mailstead.store.interfaces import Messages
from mailstead.store.models import SortKeyField, SortKeys

_BATCH = 1024  # bodies whose structures are read, and keys written back, at once
#: Up to this many messages without a kept record, their keys are read by UID; more, and
#: the whole mailbox's are (one query scanning the mailbox is cheaper than many lookups).
_FEW = 500
#: Records kept at once, all mailboxes together (about 400 bytes each, with their strings):
#: two 100,000-message mailboxes.
MAX_KEPT_RECORDS = 200_000
_EVERY = frozenset(SortKeyField)


class KeptRecords:
    """The records of recently sorted mailboxes by (mailbox id, UIDVALIDITY), each a map
    of UID to record, least recently used first; shared by a listener's sessions."""

    def __init__(self, max_records: int = MAX_KEPT_RECORDS) -> None:
        self._kept: OrderedDict[tuple[int, int], dict[int, Sortable]] = OrderedDict()
        self._max = max_records

    def get(self, mailbox: tuple[int, int]) -> dict[int, Sortable]:
        kept = self._kept.get(mailbox)
        if kept is None:
            return {}
        self._kept.move_to_end(mailbox)
        return kept

    def put(self, mailbox: tuple[int, int], records: dict[int, Sortable]) -> None:
        self._kept.pop(mailbox, None)
        if len(records) > self._max:
            return
        self._kept[mailbox] = records
        total = sum(len(r) for r in self._kept.values())
        while total > self._max:
            _, gone = self._kept.popitem(last=False)
            total -= len(gone)


def _kept(
    found: Sequence[Candidate], kept: dict[int, Sortable]
) -> tuple[list[Sortable], list[Candidate]]:
    """The kept records of ``found`` (renumbered where an expunge moved a message), and
    the messages without one."""
    out: list[Sortable] = []
    missing: list[Candidate] = []
    for c in found:
        one = kept.get(c.meta.uid)
        if one is None:
            missing.append(c)
        elif one.seq != c.seq:
            out.append(one._replace(seq=c.seq))
        else:
            out.append(one)
    return out, missing


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


async def _read(
    store: Messages, mailbox_id: int, missing: Sequence[Candidate]
) -> tuple[list[Sortable], bool]:
    """Records for messages without a kept one: from their stored keys, or derived from
    their structures (and the keys written back)."""
    uids = None if len(missing) > _FEW else [c.meta.uid for c in missing]
    stored = await store.sort_keys(mailbox_id, _EVERY, KEYS_VERSION, uids)
    out, underived = await asyncio.to_thread(_records, missing, stored)
    vanished = False
    for chunk in batches(underived, lambda c: c.meta.size, count=_BATCH, octets=None):
        structures = await store.get_structures([c.meta.blob_id for c in chunk])
        more, derived, gone = await asyncio.to_thread(_derive, chunk, structures)
        out += more
        vanished = vanished or gone
        await store.put_sort_keys(derived)
    return out, vanished


def arrival_records(found: Sequence[Candidate]) -> list[Sortable]:
    """Records with only what the message list holds (INTERNALDATE, size), for a SORT by
    ARRIVAL or SIZE alone."""
    empty = SortKeys(KEYS_VERSION, None, "", "", "", "", False, None, ())
    return [record(c.meta, c.seq, empty) for c in found]


async def sortables(
    store: Messages,
    kept: KeptRecords,
    mailbox: tuple[int, int],
    found: Sequence[Candidate],
) -> tuple[list[Sortable], bool]:
    """The records of ``found`` (messages of ``mailbox``: its id and UIDVALIDITY), every
    field filled, in no particular order, and whether one was expunged meanwhile (its
    keys and its structure gone: it is left out, as SEARCH leaves such a message out)."""
    records = kept.get(mailbox)
    # Looking up a record per message grows with the mailbox: off the event loop.
    out, missing = await asyncio.to_thread(_kept, found, records)
    if not missing:
        return out, False
    more, vanished = await _read(store, mailbox[0], missing)
    if len(records) > 2 * len(found) + _FEW:  # many gone since: start afresh
        records = {r.uid: r for r in out}
    records.update((r.uid, r) for r in more)
    kept.put(mailbox, records)
    return out + more, vanished
