"""The embedded mailstore: SQLite (WAL) for metadata, small bodies in the database, large
ones as content-addressed files.

:class:`SQLiteStore` implements :class:`~mailstead.store.interfaces.Store` by composition:
each call checks its arguments on the event loop, then hands a function of a connection from
the module of its concern to :class:`~mailstead.store.sql.connections.Connections`, which
runs it on a reader thread or in the writer's next group commit:

- ``directory.py``: domains, accounts, aliases, groups
- ``mailboxes.py``: mailboxes and subscriptions
- ``messages.py``: adding, flagging, removing, copying and listing messages
- ``bodies.py``: staging, placing and reading bodies and their parsed structures
- ``sort_keys.py``: what SORT and THREAD compare of each body
- ``queue.py``: the outbound queue and the scheduler's delivery state
- ``maintenance.py``: garbage collection and the integrity check
- ``rows.py``: row formats; ``message_lists.py``: the whole-mailbox list cache
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.message_data import MessageData
from mailstead.core.types import UID, FlagMode, Pop3Policy, SendAs
from mailstead.store import audit
from mailstead.store.audit import AuditEntry
from mailstead.store.blobs import BlobFiles
from mailstead.store.changes import ChangeBus
from mailstead.store.interfaces import (
    SortKeysMaker,
    StructureParser,
    TextIndexer,
    UIDRanges,
    account_change_key,
)
from mailstead.store.models import (
    AclEntry,
    Alias,
    ApiToken,
    AppendResult,
    AuditRecord,
    BackupReport,
    Changes,
    CopyResult,
    DeliveryResult,
    Domain,
    EmailRecord,
    Group,
    Identity,
    IdentityFields,
    IndexedText,
    IndexReport,
    Mailbox,
    MailboxCounts,
    MailboxState,
    MessageMeta,
    NewMessage,
    NewPushSubscription,
    NewSubmission,
    OutboundEnvelope,
    PushSubscription,
    QueuedMessage,
    QueuedRecipient,
    Recipient,
    SharedMailbox,
    SortKeyField,
    SortKeys,
    StoreFlagsResult,
    Submission,
    TextMatches,
    TextQuery,
    User,
    Vacation,
    VacationFields,
)
from mailstead.store.names import validate_mailbox_name
from mailstead.store.sql import (
    acl,
    admin_records,
    bodies,
    directory,
    emails,
    identities,
    mailboxes,
    maintenance,
    messages,
    metadata,
    push_subscriptions,
    queue,
    rows,
    submissions,
    textindex,
    uploads,
    vacations,
)
from mailstead.store.sql import backup as backups
from mailstead.store.sql import sort_keys as stored_keys
from mailstead.store.sql.connections import Connections
from mailstead.store.sql.message_lists import MessageLists
from mailstead.store.sql.writer import WriteFn, WriteOutcome, without_events

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: Directory changes remembered for :meth:`SQLiteStore.directory_changes_since`; a cache
#: further behind than this forgets everything.
DIRECTORY_CHANGES_KEPT = 1024
#: Up to this many structures are read on the event loop's own connection (a FETCH of a
#: screenful of messages); more go to a reader thread (Connections.read_small).
SMALL_READ_ROWS = 64
#: Bodies whose index rows one purge transaction removes: FTS5 re-tokenises a row's text
#: to delete it (about 4 ms for 100 KiB), and the writer serves every other write too.
PURGE_BATCH = 16
#: :meth:`SQLiteStore.index_missing` writes its batch once it holds this much text.
INDEX_BATCH_CHARACTERS = 32 * 1024 * 1024


class SQLiteStore:
    """Store backed by ``<data_dir>/mailstead.db`` and ``<data_dir>/blobs``."""

    def __init__(
        self,
        data_dir: Path,
        parse: StructureParser | None = None,
        *,
        sort_keys: SortKeysMaker | None = None,
        read_threads: int = 4,
        indexer: TextIndexer | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / "mailstead.db"
        self.blobs = BlobFiles(self.data_dir / "blobs")
        self._parse = parse
        #: Makes a body's full-text index row (docs/decisions/0027); without one, nothing
        #: is indexed and SEARCH scans every message.
        self._indexer = indexer
        self._sort_keys = sort_keys
        self._changes = ChangeBus()
        self._db = Connections(
            self.db_path, self.blobs.root, self._changes.publish, read_threads=read_threads
        )
        self._directory_generation = 0
        #: (generation, what that change touched) of the latest directory changes.
        self._directory_changes: deque[tuple[int, frozenset[str] | None]] = deque(
            maxlen=DIRECTORY_CHANGES_KEPT)
        #: Whole-mailbox lists for SELECT and POP3, caught up by mod-sequence on each read.
        self._message_lists = MessageLists()

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs.setup()
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def changes(self) -> ChangeBus:
        return self._changes

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches committed, writes committed): writes/batches is the group-commit factor."""
        return self._db.commit_stats

    @property
    def directory_generation(self) -> int:
        return self._directory_generation

    async def _write_directory(self, fn: WriteFn[T], touched: frozenset[str] | None) -> T:
        """A write that changes who receives mail where (domains, accounts, aliases,
        groups, folders): caches of routing decisions check the generation it bumps, and
        :meth:`directory_changes_since` says what it ``touched`` (None: anything)."""
        try:
            return await self._db.write(fn)
        finally:
            self._directory_generation += 1
            self._directory_changes.append((self._directory_generation, touched))

    def directory_changes_since(self, generation: int) -> frozenset[str] | None:
        current = self._directory_generation
        if generation == current:
            return frozenset()
        changes = self._directory_changes
        if generation > current or not changes or changes[0][0] > generation + 1:
            return None  # older than what is remembered: anything may have changed
        touched: set[str] = set()
        for number, keys in changes:
            if number > generation:
                if keys is None:
                    return None
                touched |= keys
        return frozenset(touched)

    # -- domains -------------------------------------------------------------------------------
    async def add_domain(self, name: str) -> Domain:
        domain = directory.new_domain_name(name)
        created = rows.now_text()
        return await self._write_directory(
            without_events(lambda conn: directory.add_domain(conn, domain, created)),
            frozenset({f"@{domain}"}),
        )

    async def remove_domain(self, name: str) -> None:
        domain = directory.domain_key(name)
        await self._write_directory(
            without_events(lambda conn: directory.remove_domain(conn, domain)),
            frozenset({f"@{domain}"}),
        )

    async def list_domains(self) -> list[Domain]:
        return await self._db.read(directory.list_domains)

    async def has_domain(self, name: str) -> bool:
        domain = directory.domain_key(name)
        return await self._db.read(lambda conn: directory.has_domain(conn, domain))

    # -- users ---------------------------------------------------------------------------------
    async def add_user(
        self, address: str, password_hash: str, *, quota_bytes: int = 0, scram: str | None = None
    ) -> User:
        key = directory.address_key(address)
        directory.check_quota(quota_bytes)
        created = rows.now_text()
        return await self._write_directory(without_events(
            lambda conn: directory.add_user(conn, key, password_hash, quota_bytes, created, scram)
        ), frozenset({key.key}))

    async def find_user(self, address: str) -> User | None:
        keys = directory.user_lookup_keys(address)
        if not keys:
            return None
        return await self._db.read(lambda conn: directory.find_user(conn, keys))

    async def get_user(self, user_id: int) -> User:
        return await self._db.read(lambda conn: directory.get_user(conn, user_id))

    async def list_users(self, domain: str | None = None) -> list[User]:
        return await self._db.read(lambda conn: directory.list_users(conn, domain))

    async def _update_user(
        self, address: str, setting: directory.UserSetting, value: str | int
    ) -> None:
        key = directory.address_key(address)
        await self._write_directory(
            without_events(lambda conn: directory.update_user(conn, key, setting, value)),
            frozenset({key.key}),
        )

    async def set_password(
        self, address: str, password_hash: str, *, scram: str | None = None
    ) -> None:
        key = directory.address_key(address)
        await self._write_directory(
            without_events(lambda conn: directory.set_password(conn, key, password_hash, scram)),
            frozenset({key.key}),
        )

    async def add_scram_keys(self, address: str, password_hash: str, scram: str) -> bool:
        key = directory.address_key(address)
        return await self._write_directory(
            without_events(lambda conn: directory.add_scram_keys(conn, key, password_hash, scram)),
            frozenset({key.key}),
        )

    async def set_quota(self, address: str, quota_bytes: int) -> None:
        await self._update_user(address, "quota_bytes", directory.check_quota(quota_bytes))

    async def set_pop3_policy(self, address: str, policy: Pop3Policy) -> None:
        await self._update_user(address, "pop3_policy", directory.check_pop3_policy(policy).value)

    async def set_plus_folders(self, address: str, enabled: bool) -> None:
        await self._update_user(address, "plus_folders", int(enabled))

    async def set_send_as(self, address: str, send_as: SendAs) -> None:
        await self._update_user(address, "send_as", directory.check_send_as(send_as).value)

    async def set_disabled(self, address: str, disabled: bool) -> None:
        await self._update_user(address, "disabled", int(disabled))

    async def remove_user(self, address: str) -> None:
        key = directory.address_key(address)
        await self._write_directory(
            without_events(lambda conn: directory.remove_user(conn, key)), frozenset({key.key}))

    # -- aliases and groups --------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        key = directory.alias_key(source)
        clean = [directory.clean_address(t) for t in targets]
        if not clean:
            raise InvalidName("an alias needs at least one target")
        return await self._write_directory(
            without_events(lambda conn: directory.add_alias(conn, key, clean)),
            frozenset({key.key}),
        )

    async def remove_alias(self, source: str, target: str | None = None) -> None:
        key = directory.alias_key(source)
        clean = None if target is None else directory.clean_address(target)
        await self._write_directory(
            without_events(lambda conn: directory.remove_alias(conn, key, clean)),
            frozenset({key.key}),
        )

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        return await self._db.read(lambda conn: directory.list_aliases(conn, domain))

    async def find_alias(self, source: str) -> Alias | None:
        try:
            key = directory.alias_key(source)
        except InvalidName:
            return None
        return await self._db.read(lambda conn: directory.find_alias(conn, key))

    async def add_group(self, address: str, members: Sequence[str] = ()) -> Group:
        key = directory.address_key(address)
        clean = [directory.clean_address(m) for m in members]
        return await self._write_directory(
            without_events(lambda conn: directory.add_group(conn, key, clean)),
            frozenset({key.key}),
        )

    async def remove_group(self, address: str) -> None:
        key = directory.address_key(address)
        await self._write_directory(
            without_events(lambda conn: directory.remove_group(conn, key)), frozenset({key.key}))

    async def list_groups(self, domain: str | None = None) -> list[Group]:
        return await self._db.read(lambda conn: directory.list_groups(conn, domain))

    async def add_group_member(self, address: str, member: str) -> Group:
        key = directory.address_key(address)
        clean = directory.clean_address(member)
        return await self._write_directory(
            without_events(lambda conn: directory.add_group_member(conn, key, clean)),
            frozenset({key.key}),
        )

    async def remove_group_member(self, address: str, member: str) -> Group:
        key = directory.address_key(address)
        clean = directory.clean_address(member)
        return await self._write_directory(
            without_events(lambda conn: directory.remove_group_member(conn, key, clean)),
            frozenset({key.key}),
        )

    async def find_group(self, address: str) -> Group | None:
        try:
            key = directory.address_key(address)
        except InvalidName:
            return None
        return await self._db.read(lambda conn: directory.find_group(conn, key))

    # -- mailboxes -----------------------------------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        return await self._db.read(lambda conn: mailboxes.list_mailboxes(conn, user_id))

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        clean = validate_mailbox_name(name)
        return await self._db.read_small(lambda conn: mailboxes.load_mailbox(conn, user_id, clean))

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox:
        return await self._db.read_small(lambda conn: mailboxes.mailbox_by_id(conn, mailbox_id))

    async def create_mailbox(
        self, user_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        clean = validate_mailbox_name(name)
        mailboxes.check_special_use(special_use)
        return await self._write_directory(
            lambda conn: mailboxes.create_mailbox(conn, user_id, clean, special_use),
            frozenset({account_change_key(user_id)}),
        )

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> Mailbox:
        src, dst = validate_mailbox_name(old), validate_mailbox_name(new)
        mailboxes.check_rename(src, dst)
        return await self._write_directory(
            lambda conn: mailboxes.rename_mailbox(conn, user_id, src, dst),
            frozenset({account_change_key(user_id)}),
        )

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        clean = validate_mailbox_name(name)
        mailboxes.check_deletable(clean)
        await self._write_directory(
            lambda conn: mailboxes.delete_mailbox(conn, user_id, clean),
            frozenset({account_change_key(user_id)}),
        )

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        clean = validate_mailbox_name(name)
        await self._db.write(
            lambda conn: mailboxes.set_subscribed(conn, user_id, clean, subscribed)
        )

    async def list_subscriptions(self, user_id: int) -> list[str]:
        return await self._db.read(lambda conn: mailboxes.list_subscriptions(conn, user_id))

    # -- the account's emails, threads and changes (decision 0033) ---------------------------
    async def account_state(self, user_id: int) -> int:
        return await self._db.read_small(lambda conn: emails.account_modseq(conn, user_id))

    async def email_records(self, user_id: int, blob_ids: Sequence[str]) -> list[EmailRecord]:
        if not blob_ids:
            return []
        return await self._db.read(lambda conn: emails.email_records(conn, user_id, blob_ids))

    async def account_emails(self, user_id: int, mailbox_id: int | None = None
                             ) -> list[EmailRecord]:
        return await self._db.read(
            lambda conn: emails.account_emails(conn, user_id, mailbox_id)
        )

    async def thread_emails(self, user_id: int, thread_ids: Sequence[str]
                            ) -> dict[str, list[str]]:
        if not thread_ids:
            return {}
        return await self._db.read(
            lambda conn: emails.thread_emails(conn, user_id, thread_ids)
        )

    async def mailbox_states(self, user_id: int) -> list[MailboxState]:
        def read(conn: sqlite3.Connection) -> list[MailboxState]:
            counts = emails.mailbox_counts(conn, user_id)
            marks = emails.mailbox_marks(conn, user_id)
            return [
                MailboxState(box, counts.get(box.id, MailboxCounts()), *marks[box.id],
                             box.highestmodseq)
                for box in mailboxes.list_mailboxes(conn, user_id)
            ]
        return await self._db.read(read)

    async def email_changes(self, user_id: int, since: int, max_changes: int | None
                            ) -> Changes:
        return await self._db.read(
            lambda conn: emails.email_changes(conn, user_id, since, max_changes)
        )

    async def thread_changes(self, user_id: int, since: int, max_changes: int | None
                             ) -> Changes:
        return await self._db.read(
            lambda conn: emails.thread_changes(conn, user_id, since, max_changes)
        )

    async def mailbox_changes(self, user_id: int, since: int, max_changes: int | None
                              ) -> tuple[Changes, bool]:
        return await self._db.read(
            lambda conn: emails.mailbox_changes(conn, user_id, since, max_changes)
        )

    async def mailbox_keys(self, user_id: int) -> dict[int, int]:
        return await self._db.read_small(lambda conn: emails.mailbox_keys(conn, user_id))

    async def email_page(
        self, user_id: int, mailbox_id: int | None, ascending: bool, position: int,
        limit: int, total: bool,
    ) -> tuple[list[str], int | None] | None:
        return await self._db.read(lambda conn: emails.email_page(
            conn, user_id, mailbox_id, ascending, position, limit, total))

    # -- uploads (JMAP) ----------------------------------------------------------------------
    async def put_upload(self, user_id: int, data: bytes, media_type: str) -> str:
        return await self._db.write(
            without_events(lambda conn: uploads.put(conn, user_id, data, media_type))
        )

    async def get_upload(self, user_id: int, blob_id: str) -> tuple[bytes, str] | None:
        return await self._db.read(lambda conn: uploads.get(conn, user_id, blob_id))

    async def expire_uploads(self, before: datetime) -> int:
        text = rows.internaldate_text(before)
        return await self._db.write(without_events(lambda conn: uploads.expire(conn, text)))

    # -- identities and submissions (JMAP, RFC 8621 §6 - §7) -----------------------------
    async def identities(self, user_id: int, own_address: str) -> list[Identity]:
        found = await self._db.read(lambda conn: identities.list_identities(conn, user_id))
        if any(i.is_default for i in found):
            return found

        def make(conn: sqlite3.Connection) -> list[Identity]:
            identities.ensure_default(conn, user_id, own_address)
            return identities.list_identities(conn, user_id)

        return await self._db.write(without_events(make))

    async def add_identity(self, user_id: int, fields: IdentityFields) -> Identity:
        return await self._db.write(
            without_events(lambda conn: identities.add(conn, user_id, fields))
        )

    async def update_identity(
        self, user_id: int, identity_id: int, fields: IdentityFields
    ) -> Identity:
        return await self._db.write(
            without_events(lambda conn: identities.update(conn, user_id, identity_id, fields))
        )

    async def remove_identity(self, user_id: int, identity_id: int) -> None:
        await self._db.write(
            without_events(lambda conn: identities.remove(conn, user_id, identity_id))
        )

    async def identity_changes(self, user_id: int, since: int) -> Changes:
        return await self._db.read(lambda conn: identities.changes(conn, user_id, since))

    async def add_submission(self, user_id: int, new: NewSubmission) -> Submission:
        return await self._db.write(
            without_events(lambda conn: submissions.add(conn, user_id, new))
        )

    async def submissions(self, user_id: int, ids: Sequence[int] | None = None
                          ) -> list[Submission]:
        return await self._db.read(lambda conn: submissions.get_many(conn, user_id, ids))

    async def remove_submission(self, user_id: int, submission_id: int) -> None:
        await self._db.write(
            without_events(lambda conn: submissions.remove(conn, user_id, submission_id))
        )

    async def submission_changes(self, user_id: int, since: int) -> Changes:
        return await self._db.read(lambda conn: submissions.changes(conn, user_id, since))

    # -- push subscriptions (JMAP, RFC 8620 §7.2) ------------------------------------------
    async def add_push_subscription(
        self, user_id: int, new: NewPushSubscription
    ) -> PushSubscription:
        return await self._db.write(
            without_events(lambda conn: push_subscriptions.add(conn, user_id, new))
        )

    async def push_subscriptions(self, user_id: int) -> list[PushSubscription]:
        return await self._db.read(
            lambda conn: push_subscriptions.list_for_user(conn, user_id)
        )

    async def active_push_subscriptions(self, now: datetime) -> list[PushSubscription]:
        return await self._db.read(lambda conn: push_subscriptions.active(conn, now))

    async def update_push_subscription(
        self,
        user_id: int,
        subscription_id: int,
        *,
        verified: bool,
        expires: datetime,
        types: tuple[str, ...] | None,
    ) -> PushSubscription:
        return await self._db.write(without_events(
            lambda conn: push_subscriptions.update(
                conn, user_id, subscription_id, verified=verified, expires=expires, types=types
            )
        ))

    async def remove_push_subscription(self, user_id: int, subscription_id: int) -> None:
        await self._db.write(
            without_events(lambda conn: push_subscriptions.remove(conn, user_id, subscription_id))
        )

    async def expire_push_subscriptions(self, now: datetime) -> int:
        return await self._db.write(
            without_events(lambda conn: push_subscriptions.expire(conn, now))
        )

    # -- vacation auto-reply (RFC 8621 §8, RFC 5230 §4.2) ------------------------------------
    async def vacation(self, user_id: int) -> Vacation:
        return await self._db.read(lambda conn: vacations.get(conn, user_id))

    async def set_vacation(self, user_id: int, fields: VacationFields) -> Vacation:
        return await self._db.write(
            without_events(lambda conn: vacations.put(conn, user_id, fields))
        )

    async def claim_auto_reply(
        self, user_id: int, handle: str, sender: str, now: datetime, until: datetime
    ) -> bool:
        return await self._db.write(
            without_events(
                lambda conn: vacations.claim(conn, user_id, handle, sender, now, until)
            )
        )

    async def expire_auto_replies(self, now: datetime) -> int:
        return await self._db.write(without_events(lambda conn: vacations.expire(conn, now)))

    # -- metadata (RFC 5464) ---------------------------------------------------------------
    async def get_metadata(self, user_id: int, mailbox_id: int | None) -> dict[str, bytes]:
        return await self._db.read(
            lambda conn: metadata.read_entries(conn, user_id, mailbox_id)
        )

    async def set_metadata(
        self,
        user_id: int,
        mailbox_id: int | None,
        changes: Mapping[str, bytes | None],
        *,
        max_entries: int,
    ) -> None:
        wanted = dict(changes)
        await self._db.write(
            lambda conn: metadata.write_entries(conn, user_id, mailbox_id, wanted, max_entries)
        )

    # -- access control lists (RFC 4314) -------------------------------------------------------
    async def get_acl(self, mailbox_id: int) -> list[AclEntry]:
        return await self._db.read(lambda conn: acl.get_acl(conn, mailbox_id))

    async def set_acl(self, mailbox_id: int, identifier: str, rights: str) -> None:
        await self._db.write(lambda conn: acl.set_acl(conn, mailbox_id, identifier, rights))

    async def rights_for(self, mailbox_id: int, user_id: int) -> str:
        return await self._db.read(lambda conn: acl.rights_for(conn, mailbox_id, user_id))

    async def shared_with(self, user_id: int) -> list[SharedMailbox]:
        return await self._db.read(lambda conn: acl.shared_with(conn, user_id))

    async def private_seen(self, mailbox_id: int, user_id: int) -> set[UID]:
        return await self._db.read(lambda conn: acl.private_seen(conn, mailbox_id, user_id))

    async def set_private_seen(
        self, mailbox_id: int, user_id: int, uids: Sequence[UID], seen: bool
    ) -> list[UID]:
        return await self._db.write(
            lambda conn: acl.set_private_seen(conn, mailbox_id, user_id, uids, seen)
        )

    # -- full-text index (docs/decisions/0027) ------------------------------------------------
    async def search_text(self, mailbox_id: int, queries: Sequence[TextQuery]) -> TextMatches:
        for query in queries:
            textindex.phrase(query)  # checks columns and length on the event loop
        return await self._db.read(lambda conn: textindex.search(conn, mailbox_id, queries))

    async def index_missing(self, user_id: int | None = None, batch: int = 200) -> IndexReport:
        indexer = self._indexer
        if indexer is None:
            return IndexReport(0, 0)
        wanted = await self._db.read(lambda conn: textindex.unindexed(conn, user_id, batch))
        if not wanted:
            return IndexReport(0, 0)
        structures = await self.get_structures(wanted)

        def extract(blob_id: str, data: bytes) -> IndexedText:
            structure = structures.get(blob_id)
            if structure is not None:
                try:
                    text = indexer(data, structure)
                    if text is not None:
                        return text
                except Exception:  # scanned instead
                    _log.warning("could not index body %s", blob_id, exc_info=True)
            return IndexedText({}, complete=False)

        # One body read at a time (a batch of big ones must not be held at once), and the
        # batch cut short once the text made would be large; the rest comes next call.
        made: list[tuple[str, IndexedText]] = []
        held = 0
        for blob_id in wanted:
            try:
                async with self._db.whole_reads:
                    data = await self.read_blob(blob_id)
            except NotFound:
                continue  # collected meanwhile: nothing references it any more
            text = await self._db.in_io(partial(extract, blob_id, data))
            made.append((blob_id, text))
            held += sum(len(v) for v in text.values.values())
            if held > INDEX_BATCH_CHARACTERS:
                break

        def write(conn: sqlite3.Connection) -> WriteOutcome[IndexReport]:
            written = [bool(t.values) for b, t in made if textindex.add(conn, b, t)]
            return WriteOutcome(IndexReport(sum(written), len(written) - sum(written)))

        return await self._db.write(write)

    async def purge_index(self, batch: int = PURGE_BATCH) -> int:
        return await self._db.write(without_events(partial(textindex.purge, limit=batch)))

    async def rebuild_index(self, user_id: int | None = None) -> IndexReport:
        if self._indexer is None:
            return IndexReport(0, 0)
        doomed = await self._db.read(lambda conn: textindex.indexed_bodies(conn, user_id))
        for i in range(0, len(doomed), 1000):
            part = doomed[i : i + 1000]
            await self._db.write(without_events(partial(textindex.remove_many, part=part)))
        indexed = skipped = 0
        while True:
            report = await self.index_missing(user_id)
            if not report.indexed and not report.skipped:
                return IndexReport(indexed, skipped)
            indexed += report.indexed
            skipped += report.skipped

    # -- messages: writing ---------------------------------------------------------------------
    async def append(
        self,
        mailbox_id: int,
        data: bytes | MessageData,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        clean = rows.clean_flags(flags)
        when = rows.internaldate_text(internaldate)
        size = len(data)
        return await bodies.write_with_bodies(
            self._db, self.blobs, self._parse, [data],
            lambda conn, ids: messages.append(conn, mailbox_id, ids[0], size, clean, when),
            indexer=self._indexer,
            keys=self._sort_keys,
        )

    async def append_many(
        self, mailbox_id: int, batch: Sequence[NewMessage]
    ) -> list[AppendResult]:
        if not batch:
            return []
        described = [
            (len(m.data), rows.clean_flags(m.flags), rows.internaldate_text(m.internaldate))
            for m in batch
        ]
        return await bodies.write_with_bodies(
            self._db, self.blobs, self._parse, [m.data for m in batch],
            lambda conn, ids: messages.append_many(conn, mailbox_id, [
                messages.Addition(blob_id, size, flags, when)
                for blob_id, (size, flags, when) in zip(ids, described, strict=True)
            ]),
            indexer=self._indexer,
            keys=self._sort_keys,
        )

    async def replace(
        self, mailbox_id: int, message: NewMessage, old_mailbox_id: int, old_uid: UID
    ) -> AppendResult:
        size = len(message.data)
        flags = rows.clean_flags(message.flags)
        when = rows.internaldate_text(message.internaldate)
        return await bodies.write_with_bodies(
            self._db, self.blobs, self._parse, [message.data],
            lambda conn, ids: messages.replace(
                conn, mailbox_id, messages.Addition(ids[0], size, flags, when),
                old_mailbox_id, old_uid,
            ),
            indexer=self._indexer,
            keys=self._sort_keys,
        )

    async def deliver(
        self,
        data: bytes | MessageData,
        recipients: Sequence[Recipient],
        internaldate: datetime | None = None,
    ) -> DeliveryResult:
        if not recipients:
            raise InvalidName("a delivery needs at least one recipient")
        when = rows.internaldate_text(internaldate)
        size = len(data)
        targets = messages.destinations(recipients)
        return await bodies.write_with_bodies(
            self._db, self.blobs, self._parse, [data],
            lambda conn, ids: messages.deliver(conn, ids[0], size, targets, when),
            indexer=self._indexer,
            keys=self._sort_keys,
        )

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[UID],
        mode: FlagMode,
        flags: Iterable[str],
        *,
        unchanged_since: int | None = None,
    ) -> StoreFlagsResult:
        wanted = rows.clean_flags(flags)
        targets = sorted(set(uids))
        return await self._db.write(lambda conn: messages.store_flags(
            conn, mailbox_id, targets, mode, wanted, unchanged_since
        ))

    async def expunge(self, mailbox_id: int, uids: Sequence[UID] | None = None) -> list[UID]:
        limit: set[int] | None = None if uids is None else set(uids)
        return await self._db.write(lambda conn: messages.expunge(conn, mailbox_id, limit))

    async def delete_messages(self, mailbox_id: int, uids: Sequence[UID]) -> list[UID]:
        targets = sorted(set(uids))
        return await self._db.write(lambda conn: messages.delete(conn, mailbox_id, targets))

    async def copy(
        self, src_mailbox_id: int, uids: Sequence[UID], dst_mailbox_id: int,
        *, rights: str | None = None,
    ) -> CopyResult:
        return await self._db.write(lambda conn: messages.copy(
            conn, src_mailbox_id, uids, dst_mailbox_id, expunge_source=False, rights=rights
        ))

    async def move(
        self, src_mailbox_id: int, uids: Sequence[UID], dst_mailbox_id: int,
        *, rights: str | None = None,
    ) -> CopyResult:
        return await self._db.write(lambda conn: messages.copy(
            conn, src_mailbox_id, uids, dst_mailbox_id, expunge_source=True, rights=rights
        ))

    # -- messages: reading ---------------------------------------------------------------------
    async def list_messages(
        self,
        mailbox_id: int,
        uid_ranges: UIDRanges | None = None,
        *,
        changed_since: int | None = None,
    ) -> list[MessageMeta]:
        if uid_ranges is None and changed_since is None:
            current = await self._db.read_small(
                partial(self._message_lists.read_current, mailbox_id=mailbox_id)
            )
            if current is not None:  # unchanged since it was last listed: no thread hop
                return current
            return await self._db.read(partial(self._message_lists.read, mailbox_id=mailbox_id))
        return await self._db.read(
            lambda conn: messages.list_messages(conn, mailbox_id, uid_ranges, changed_since)
        )

    async def get_structure(self, blob_id: str) -> bytes:
        return await self._db.read_small(lambda conn: bodies.structure(conn, blob_id))

    async def get_structures(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        if len(blob_ids) <= SMALL_READ_ROWS:  # a FETCH of a screenful: no thread hop
            return await self._db.read_small(lambda conn: bodies.structures(conn, blob_ids))
        return await self._db.read(lambda conn: bodies.structures(conn, blob_ids))

    async def read_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        return await bodies.read_blob(self._db, self.blobs, blob_id, start, end)

    async def read_blobs(
        self, requests: Sequence[tuple[str, int, int | None]]
    ) -> list[bytes | None]:
        return await bodies.read_blobs(self._db, self.blobs, requests)

    async def save_dates(
        self, mailbox_id: int, uid_ranges: UIDRanges | None = None
    ) -> dict[UID, datetime]:
        return await self._db.read(lambda conn: messages.save_dates(conn, mailbox_id, uid_ranges))

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[UID]:
        return await self._db.read(lambda conn: messages.vanished_since(conn, mailbox_id, modseq))

    async def sort_keys(
        self, mailbox_id: int, fields: frozenset[SortKeyField], version: int,
        uids: Sequence[UID] | None = None,
    ) -> dict[UID, SortKeys]:
        return await self._db.read(
            lambda conn: stored_keys.read(conn, mailbox_id, fields, version, uids)
        )

    async def put_sort_keys(self, keys: Mapping[str, SortKeys]) -> None:
        if keys:
            await self._db.write(without_events(lambda conn: stored_keys.put(conn, keys)))

    # -- outbound queue ------------------------------------------------------------------------
    async def enqueue(
        self,
        data: bytes | MessageData,
        envelope: OutboundEnvelope | None,
        local_data: bytes | MessageData | None = None,
        local: Sequence[Recipient] = (),
        internaldate: datetime | None = None,
    ) -> tuple[DeliveryResult | None, int | None]:
        if envelope is not None and not envelope.recipients:
            raise InvalidName("a queued message needs at least one recipient")
        if local and local_data is None:
            raise InvalidName("local recipients need the local copy of the message")
        if envelope is None and not local:
            raise InvalidName("nothing to deliver or queue")
        now = datetime.now(UTC)
        when = rows.internaldate_text(internaldate or now)
        targets = messages.destinations(local)
        stored = [data] if envelope is not None else []
        local_size = 0
        if local and local_data is not None:
            stored.append(local_data)
            local_size = len(local_data)
        return await bodies.write_with_bodies(
            self._db, self.blobs, self._parse, stored,
            lambda conn, ids: queue.enqueue(
                conn, ids, envelope, len(data), targets, local_size, when, now.isoformat()
            ),
            indexer=self._indexer if local else None,
            keys=self._sort_keys if local else None,
        )

    async def queue_summary(self) -> tuple[int, datetime | None]:
        return await self._db.read(queue.summary)

    async def list_queue(self) -> list[QueuedMessage]:
        return await self.queued_messages()

    async def remove_queued(self, queue_id: int) -> None:
        await self._db.write(without_events(lambda conn: queue.delete_queued(conn, queue_id)))

    async def claim_queue(self, now: datetime, limit: int) -> list[QueuedMessage]:
        return await self._db.write(without_events(lambda conn: queue.claim_due(conn, now, limit)))

    async def queued_messages(self, ids: Sequence[int] | None = None) -> list[QueuedMessage]:
        wanted = None if ids is None else list(ids)
        return await self._db.read(lambda conn: queue.load_messages(conn, wanted))

    async def get_queued(self, queue_id: int) -> QueuedMessage:
        found = await self.queued_messages([queue_id])
        if not found:
            raise NotFound(f"queued message #{queue_id} does not exist")
        return found[0]

    async def update_queue_recipients(self, recipients: Sequence[QueuedRecipient]) -> None:
        updates = list(recipients)
        await self._db.write(
            without_events(lambda conn: queue.update_recipients(conn, updates))
        )

    async def unsettled_queue(self, limit: int = 1000) -> list[int]:
        return await self._db.read(lambda conn: queue.unsettled_messages(conn, limit))

    async def recover_queue(self, now: datetime) -> int:
        return await self._db.write(without_events(lambda conn: queue.recover_inflight(conn, now)))

    async def set_queue_held(self, queue_id: int, held: bool) -> None:
        await self._db.write(without_events(lambda conn: queue.set_held(conn, queue_id, held)))

    async def retry_queue(self, queue_id: int | None, now: datetime) -> int:
        return await self._db.write(
            without_events(lambda conn: queue.make_due(conn, queue_id, now))
        )

    # -- API tokens and the audit log ---------------------------------------------------------
    async def add_token(self, name: str, scope: str, secret_hash: str,
                        created_by: str) -> ApiToken:
        return await self._db.write(without_events(
            lambda conn: admin_records.add_token(conn, name, scope, secret_hash, created_by)))

    async def find_token(self, token_id: int) -> ApiToken | None:
        return await self._db.read(lambda conn: admin_records.find_token(conn, token_id))

    async def list_tokens(self) -> list[ApiToken]:
        return await self._db.read(admin_records.list_tokens)

    async def revoke_token(self, token_id: int) -> None:
        await self._db.write(without_events(
            lambda conn: admin_records.revoke_token(conn, token_id)))

    async def touch_token(self, token_id: int, at: datetime, source: str) -> None:
        with audit.unaudited():
            await self._db.write(without_events(
                lambda conn: admin_records.touch_token(conn, token_id, at, source)))

    async def record_audit(self, entry: AuditEntry) -> None:
        with audit.unaudited():
            await self._db.write(without_events(
                lambda conn: admin_records.insert_audit(conn, entry)))

    async def audit_log(self, limit: int = 100, before: int | None = None,
                        target: str | None = None) -> list[AuditRecord]:
        return await self._db.read(
            lambda conn: admin_records.list_audit(conn, limit, before, target))

    # -- maintenance ---------------------------------------------------------------------------
    async def collect_garbage(self, grace_seconds: float = 3600.0) -> int:
        return await maintenance.collect_garbage(self._db, self.blobs, grace_seconds)

    async def integrity_check(self) -> list[str]:
        return await maintenance.check(self._db, self.blobs)

    async def backup(self, target: Path) -> BackupReport:
        return await self._db.in_io(lambda: backups.backup(self.db_path, self.blobs, target))
