"""The maildrop: INBOX as it was at login, the DELE marks, and the commit at QUIT.

Invariants:

- The message list is a snapshot taken once, at login (RFC 1939 §8: message numbers and
  sizes are fixed for the session). Messages arriving later appear in the next session;
  messages expunged by IMAP meanwhile stay listed and answer ``-ERR`` when fetched.
- DELE only marks (RFC 1939 §5); :meth:`Maildrop.commit` applies all the marks through
  one store call, so QUIT is all or nothing (RFC 1939 §6). A session that ends any other
  way never calls it, so a dropped connection changes nothing.
- A UIDL is ``<uidvalidity>.<uid>``: the store never reuses a UID within one UIDVALIDITY,
  so the same message keeps the same UIDL in every session (RFC 1939 §7 unique-id).
- One POP3 session per maildrop at a time, enforced by :class:`MaildropLocks`
  (RFC 2449 §8.1.2 ``[IN-USE]``). IMAP sessions are not locked out.
- Message bytes are read from the store in bounded chunks; a message is never held whole.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol, assert_never

from mailstead.core.errors import NotFound
from mailstead.core.types import SEEN, UID, FlagMode, Pop3Policy
from mailstead.mime.stored import StoredStructure
from mailstead.pop3.protocol import find_header_end
from mailstead.store.interfaces import Accounts, Mailboxes, Messages
from mailstead.store.models import MessageMeta

#: Read size for RETR/TOP. Large enough to amortise a thread hop per read, small enough
#: that many concurrent downloads stay cheap in memory.
CHUNK_SIZE = 128 * 1024

#: Keyword marking messages a POP3 client deleted under the ``keep`` and ``mark-read``
#: policies; such messages stay in INBOX for IMAP but are not offered to POP3 again.
#: Dovecot's ``pop3_deleted_flag`` uses the same convention.
POP3_DELETED = "$POP3Deleted"

#: The most header bytes TOP will scan for when a message has no stored structure.
_MAX_HEADER_SCAN = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MaildropMessage:
    """One message as the session sees it: a fixed number, size and unique id."""

    number: int
    uid: UID
    size: int
    blob_id: str
    uidl: str


def make_uidl(uidvalidity: int, uid: int) -> str:
    """RFC 1939 §7: 1-70 characters from 0x21-0x7E, unique and stable for the message."""
    return f"{uidvalidity}.{uid}"


class MaildropStore(Accounts, Mailboxes, Messages, Protocol):
    """What POP3 needs of the mailstore: the account, its INBOX (and Archive, for the
    archive policy) and the messages in them."""


class MaildropLocks:
    """In-process registry of maildrops in use, shared by every POP3 listener."""

    def __init__(self) -> None:
        self._held: set[int] = set()

    def acquire(self, user_id: int) -> bool:
        """True if the caller now holds the maildrop; False if another session does."""
        if user_id in self._held:
            return False
        self._held.add(user_id)
        return True

    def release(self, user_id: int) -> None:
        self._held.discard(user_id)


class Maildrop:
    """One user's INBOX snapshot with the session's deletion marks."""

    def __init__(
        self,
        store: MaildropStore,
        user_id: int,
        mailbox_id: int,
        messages: Sequence[MaildropMessage],
    ) -> None:
        self.store = store
        self.user_id = user_id
        self.mailbox_id = mailbox_id
        self.messages = tuple(messages)
        self._deleted: set[int] = set()

    @classmethod
    async def open(cls, store: MaildropStore, user_id: int) -> Maildrop:
        """Snapshot INBOX; messages a previous session took under keep/mark-read are left out."""
        inbox = await store.get_mailbox(user_id, "INBOX")
        metas = await store.list_messages(inbox.id)
        visible = [m for m in metas if POP3_DELETED not in m.flags]
        return cls(store, user_id, inbox.id, _number(visible, inbox.uidvalidity))

    # -- the session's view ----------------------------------------------------------------

    def get(self, number: int) -> MaildropMessage | None:
        """The message with this number, or None if out of range or marked deleted."""
        if not 1 <= number <= len(self.messages) or number in self._deleted:
            return None
        return self.messages[number - 1]

    def is_deleted(self, number: int) -> bool:
        return number in self._deleted

    def live(self) -> list[MaildropMessage]:
        return [m for m in self.messages if m.number not in self._deleted]

    def stat(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted (RFC 1939 §5 STAT)."""
        live = self.live()
        return len(live), sum(m.size for m in live)

    def mark_deleted(self, number: int) -> None:
        self._deleted.add(number)

    def reset(self) -> None:
        """RFC 1939 §5 RSET: unmark everything."""
        self._deleted.clear()

    @property
    def deleted_uids(self) -> list[UID]:
        return [self.messages[n - 1].uid for n in sorted(self._deleted)]

    # -- message bytes ---------------------------------------------------------------------

    async def read_chunks(
        self, message: MaildropMessage, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The stored bytes [start, end) in chunks of at most :data:`CHUNK_SIZE`."""
        stop = message.size if end is None else min(end, message.size)
        pos = start
        while pos < stop:
            chunk = await self.store.read_blob(message.blob_id, pos, min(pos + CHUNK_SIZE, stop))
            if not chunk:
                return
            pos += len(chunk)
            yield chunk

    async def header_end(self, message: MaildropMessage) -> int:
        """Where the body starts: from the structure stored at append, else by scanning."""
        try:
            structure = await self.store.get_structure(message.blob_id)
            return StoredStructure(structure).header_end
        except (NotFound, KeyError, TypeError, ValueError, json.JSONDecodeError):
            pass  # no or foreign structure (e.g. parser unavailable at append): scan
        # Keep the last 3 bytes of each window so a separator split across chunks is found.
        base, window = 0, b""
        async for chunk in self.read_chunks(message, 0, _MAX_HEADER_SCAN):
            window += chunk
            found = find_header_end(window, at_start=base == 0)
            if found is not None:
                return base + found
            keep = min(3, len(window))
            base += len(window) - keep
            window = window[len(window) - keep :]
        return message.size

    # -- QUIT ------------------------------------------------------------------------------

    async def commit(self, policy: Pop3Policy) -> int:
        """Apply the DELE marks under the account's POP3 policy, in one store call.

        Returns how many messages were affected. Raises StoreError if nothing could be
        committed; the store makes each of these calls atomic, so there is no partial state.
        """
        uids = self.deleted_uids
        if not uids:
            return 0
        match policy:
            case Pop3Policy.DELETE:  # RFC 1939 §6: remove them
                await self.store.delete_messages(self.mailbox_id, uids)
            case Pop3Policy.KEEP:
                await self.store.store_flags(self.mailbox_id, uids, FlagMode.ADD, [POP3_DELETED])
            case Pop3Policy.MARK_READ:
                await self.store.store_flags(
                    self.mailbox_id, uids, FlagMode.ADD, [SEEN, POP3_DELETED]
                )
            case Pop3Policy.ARCHIVE:
                archive = await self._archive_mailbox_id()
                await self.store.move(self.mailbox_id, uids, archive)
            case _:
                assert_never(policy)
        return len(uids)

    async def _archive_mailbox_id(self) -> int:
        """The account's \\Archive mailbox (RFC 6154), created if the user removed it."""
        mailboxes = await self.store.list_mailboxes(self.user_id)
        for mailbox in mailboxes:
            if mailbox.special_use == "\\Archive":
                return mailbox.id
        for mailbox in mailboxes:
            if mailbox.name == "Archive":
                return mailbox.id
        created = await self.store.create_mailbox(self.user_id, "Archive", "\\Archive")
        return created.id


def _number(metas: Sequence[MessageMeta], uidvalidity: int) -> list[MaildropMessage]:
    return [
        MaildropMessage(i, m.uid, m.size, m.blob_id, make_uidl(uidvalidity, m.uid))
        for i, m in enumerate(metas, start=1)
    ]
