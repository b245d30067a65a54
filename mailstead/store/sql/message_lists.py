"""Whole-mailbox message lists, kept in memory and brought up to date by mod-sequence.

SELECT, EXAMINE and POP3's maildrop read every message row of a mailbox. Converting 2,000
rows costs about 4 ms of Python on every SELECT, and a busy account is selected again and
again by its devices. This cache keeps the last list of each recently listed mailbox and,
on the next read, applies only what changed since: the rows whose MODSEQ is above the
list's, and the UIDs expunged above it (the ``expunged`` table QRESYNC keeps anyway).

Why it is always right, even when another process (the admin command, another node) wrote
the mailbox:

- Every change to a message row sets its MODSEQ to the mailbox's new HIGHESTMODSEQ, in the
  same transaction (append, flag change); every expunge records the UID with the new
  HIGHESTMODSEQ. So the rows with MODSEQ above N plus the expunges above N are exactly the
  changes since the list taken at N.
- The mailbox row and the changes are read in one read transaction, one snapshot.
- A list is reused only under the same UIDVALIDITY (mailbox ids can be reused after a
  DELETE; UIDVALIDITY never is) and never when HIGHESTMODSEQ went down (a restored
  database): then the rows are read afresh.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

from mailstead.store.models import MessageMeta
from mailstead.store.sql.rows import MESSAGE_COLUMNS, row_to_message

#: Rows held across all cached mailboxes (about 300 bytes each); the least recently listed
#: mailboxes are dropped first. A single mailbox above this is never cached.
DEFAULT_MAX_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class _Listing:
    uidvalidity: int
    highestmodseq: int
    messages: dict[int, MessageMeta]  # by UID, in ascending UID order


class MessageLists:
    """The cache; ``read`` runs in a store reader thread on that thread's connection."""

    def __init__(self, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._listings: OrderedDict[int, _Listing] = OrderedDict()
        self._rows = 0

    def read_current(self, conn: sqlite3.Connection, mailbox_id: int) -> list[MessageMeta] | None:
        """The kept list when the mailbox has not changed since it was listed (one row read
        by key and a list copy: cheap enough for the event loop); None when :meth:`read`
        must bring it up to date or read it afresh."""
        with self._lock:
            cached = self._listings.get(mailbox_id)
        if cached is None:
            return None
        box = conn.execute(
            "SELECT uidvalidity, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if box is None or (cached.uidvalidity, cached.highestmodseq) != tuple(box):
            return None
        with self._lock:
            if mailbox_id in self._listings:
                self._listings.move_to_end(mailbox_id)
        return list(cached.messages.values())

    def read(self, conn: sqlite3.Connection, mailbox_id: int) -> list[MessageMeta]:
        """Every message of the mailbox in UID order (empty for a mailbox that is gone)."""
        conn.execute("BEGIN")
        try:
            box = conn.execute(
                "SELECT uidvalidity, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if box is None:
                self._forget(mailbox_id)
                return []
            uidvalidity, highest = box
            with self._lock:
                cached = self._listings.get(mailbox_id)
                if cached is not None:
                    self._listings.move_to_end(mailbox_id)
            if (
                cached is not None
                and cached.uidvalidity == uidvalidity
                and cached.highestmodseq <= highest
            ):
                if cached.highestmodseq == highest:
                    return list(cached.messages.values())
                messages = self._catch_up(conn, mailbox_id, cached)
            else:
                rows = conn.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid",
                    (mailbox_id,),
                ).fetchall()
                messages = {meta.uid: meta for meta in map(row_to_message, rows)}
        finally:
            conn.execute("COMMIT")
        self._keep(mailbox_id, _Listing(uidvalidity, highest, messages))
        return list(messages.values())

    def _catch_up(
        self, conn: sqlite3.Connection, mailbox_id: int, cached: _Listing
    ) -> dict[int, MessageMeta]:
        since = cached.highestmodseq
        messages = dict(cached.messages)
        for (uid,) in conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?", (mailbox_id, since)
        ):
            messages.pop(uid, None)
        added: list[MessageMeta] = []
        for row in conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? AND modseq > ?"
            " ORDER BY uid",
            (mailbox_id, since),
        ):
            meta = row_to_message(row)
            if meta.uid in messages:
                messages[meta.uid] = meta  # changed flags: the dict keeps its place
            else:
                added.append(meta)
        if added:
            last = next(reversed(messages), 0)
            for meta in added:
                messages[meta.uid] = meta
            if added[0].uid < last:  # not an append after the list (UIDs only grow): re-sort
                messages = dict(sorted(messages.items()))
        return messages

    def _keep(self, mailbox_id: int, listing: _Listing) -> None:
        size = len(listing.messages)
        with self._lock:
            old = self._listings.get(mailbox_id)
            if old is not None:
                if (old.uidvalidity, old.highestmodseq) > (
                    listing.uidvalidity,
                    listing.highestmodseq,
                ):
                    return  # another reader already kept a newer list
                self._rows -= len(old.messages)
                del self._listings[mailbox_id]
            if size > self._max_rows:
                return
            self._listings[mailbox_id] = listing
            self._rows += size
            while self._rows > self._max_rows:
                _, dropped = self._listings.popitem(last=False)
                self._rows -= len(dropped.messages)

    def _forget(self, mailbox_id: int) -> None:
        with self._lock:
            old = self._listings.pop(mailbox_id, None)
            if old is not None:
                self._rows -= len(old.messages)
