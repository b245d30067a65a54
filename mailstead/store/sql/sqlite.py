"""The embedded mailstore: SQLite (WAL) for metadata, content-addressed files for bodies.

Writes go through :class:`GroupCommitWriter` (one thread, group commit). Reads run on a small
pool of threads, each with its own read connection; WAL lets them run beside the writer.
The invariants are those of :mod:`mailstead.store.interfaces`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar

from mailstead.core.errors import (
    AlreadyExists,
    InvalidName,
    NotEmpty,
    NotFound,
    QuotaExceeded,
    StoreError,
)
from mailstead.core.types import (
    DEFAULT_MAILBOXES,
    DELETED,
    SEEN,
    SPECIAL_USES,
    UID,
    Address,
    FlagMode,
    ModSeq,
    Pop3Policy,
)
from mailstead.store.blobs import BlobFiles, blob_id_for
from mailstead.store.changes import ChangeBus
from mailstead.store.interfaces import StructureParser, UIDRanges
from mailstead.store.models import (
    Alias,
    AppendResult,
    ChangeEvent,
    ChangeKind,
    CopyResult,
    DeliveryResult,
    Domain,
    FlagUpdate,
    Group,
    Mailbox,
    MessageMeta,
    OutboundEnvelope,
    QueuedMessage,
    QueuedRecipient,
    Recipient,
    StoreFlagsResult,
    User,
)
from mailstead.store.names import SEPARATOR, is_inbox, parents_of, validate_mailbox_name
from mailstead.store.sql import rows
from mailstead.store.sql.connections import Connections, chunks
from mailstead.store.sql.message_lists import MessageLists
from mailstead.store.sql.queue import (
    QUEUE_REFERENCE,
    claim_due,
    delete_queued,
    insert_queued,
    is_blob_queued,
    load_messages,
    load_queue,
    make_due,
    next_due,
    recover_inflight,
    set_held,
    unsettled_messages,
    update_recipients,
)
from mailstead.store.sql.writer import WriteFn, WriteOutcome

T = TypeVar("T")

#: Bodies up to this size are kept in the database (docs/decisions/0002); larger ones in
#: files under blobs/.
DATABASE_BODY_LIMIT = 256 * 1024
#: Bodies up to this size are parsed on the event loop (about 0.1 ms for 4 KiB), larger ones
#: on the I/O pool: either way not in the writer thread, whose SQL is the serial part of
#: every delivery.
INLINE_PARSE_LIMIT = 32 * 1024
#: The columns ``_insert_message`` needs from the target mailbox, fetched in one statement.
_MAILBOX_FOR_INSERT = (
    "SELECT id, user_id, uidvalidity, uidnext, highestmodseq, noselect, name FROM mailboxes"
)


def _address_key(address: str) -> tuple[str, str, str]:
    """(display form, lookup key, domain): local part kept as given, matched case-folded."""
    parsed = Address.parse(address)
    return str(parsed), f"{parsed.local.casefold()}@{parsed.domain}", parsed.domain


def _alias_key(source: str) -> tuple[str, str, str]:
    if source.startswith("@"):
        domain = source[1:].strip().lower().rstrip(".")
        if not domain or "@" in domain:
            raise InvalidName(f"not a catch-all address: {source!r}")
        return f"@{domain}", f"@{domain}", domain
    return _address_key(source)


def _wanted_recipients(recipients: Sequence[Recipient]) -> list[tuple[int, str, frozenset[str]]]:
    return [(r.user_id, validate_mailbox_name(r.mailbox_name), rows.clean_flags(r.flags))
            for r in recipients]


def _in_domain(domain: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its argument) that limits a listing to one domain, if given."""
    return ("", ()) if domain is None else (" WHERE domain = ?", (domain.lower(),))


def _require_domain(conn: sqlite3.Connection, domain: str) -> None:
    if conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() is None:
        raise NotFound(f"domain {domain} does not exist")


#: An address is one thing only: a user, an alias or a group (kind -> table, key column).
_ADDRESS_KINDS = {
    "user": ("users", "addr_key"),
    "alias": ("aliases", "source_key"),
    "group": ("groups", "addr_key"),
}


def _require_unclaimed(conn: sqlite3.Connection, key: str, display: str, adding: str) -> None:
    """Refuse to make ``display`` an ``adding`` when it is already another kind of address."""
    for kind, (table, column) in _ADDRESS_KINDS.items():
        if kind != adding and conn.execute(
            f"SELECT 1 FROM {table} WHERE {column} = ?", (key,)
        ).fetchone():
            raise AlreadyExists(f"{display} is already {'an' if kind == 'alias' else 'a'} {kind}")


def _existing(found: T | None, what: str) -> T:
    """A row the write just made or checked: NotFound if it is gone all the same."""
    if found is None:
        raise NotFound(f"{what} does not exist")
    return found


class SQLiteStore:
    """Store backed by ``<data_dir>/mailstead.db`` and ``<data_dir>/blobs``."""

    def __init__(
        self,
        data_dir: Path,
        parse: StructureParser | None = None,
        *,
        read_threads: int = 4,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / "mailstead.db"
        self.blobs = BlobFiles(self.data_dir / "blobs")
        self._parse = parse
        self._changes = ChangeBus()
        self._db = Connections(
            self.db_path, self.blobs.root, self._changes.publish, read_threads=read_threads
        )
        self._directory_generation = 0
        #: Whole-mailbox lists for SELECT and POP3, caught up by mod-sequence on each read.
        self._message_lists = MessageLists()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def changes(self) -> ChangeBus:
        return self._changes

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs.setup()
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches committed, writes committed): writes/batches is the group-commit factor."""
        return self._db.commit_stats

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing ------------------------------------------------------------------------------

    async def _write_directory(self, fn: WriteFn[T]) -> T:
        """A write that changes who receives mail where (domains, accounts, aliases,
        groups, folders): caches of routing decisions check the generation it bumps."""
        try:
            return await self._db.write(fn)
        finally:
            self._directory_generation += 1

    @property
    def directory_generation(self) -> int:
        return self._directory_generation

    # -- domains -------------------------------------------------------------------------------
    async def add_domain(self, name: str) -> Domain:
        domain = name.strip().lower().rstrip(".")
        if not domain or "@" in domain or any(c.isspace() for c in domain) or ".." in domain:
            raise InvalidName(f"not a domain name: {name!r}")
        created = rows.now_text()

        def write(conn: sqlite3.Connection) -> WriteOutcome[Domain]:
            try:
                conn.execute("INSERT INTO domains (name, created) VALUES (?, ?)", (domain, created))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {domain} already exists") from None
            return WriteOutcome(Domain(domain, datetime.fromisoformat(created)))

        return await self._write_directory(write)

    async def remove_domain(self, name: str) -> None:
        domain = name.strip().lower().rstrip(".")

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            _require_domain(conn, domain)
            for table, what in (("users", "users"), ("aliases", "aliases"), ("groups", "groups")):
                row = conn.execute(f"SELECT count(*) FROM {table} WHERE domain = ?", (domain,))
                count = row.fetchone()[0]
                if count:
                    raise NotEmpty(f"domain {domain} still has {count} {what}")
            conn.execute("DELETE FROM domains WHERE name = ?", (domain,))
            return WriteOutcome(None)

        await self._write_directory(write)

    async def list_domains(self) -> list[Domain]:
        def read(conn: sqlite3.Connection) -> list[Domain]:
            records = conn.execute("SELECT name, created FROM domains ORDER BY name").fetchall()
            return [Domain(r[0], datetime.fromisoformat(r[1])) for r in records]

        return await self._db.read(read)

    async def has_domain(self, name: str) -> bool:
        domain = name.strip().lower().rstrip(".")

        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone()
            return row is not None

        return await self._db.read(read)

    # -- users ---------------------------------------------------------------------------------
    async def add_user(self, address: str, password_hash: str, *, quota_bytes: int = 0) -> User:
        display, key, domain = _address_key(address)
        if quota_bytes < 0:
            raise InvalidName("quota cannot be negative")
        created = rows.now_text()

        def write(conn: sqlite3.Connection) -> WriteOutcome[User]:
            _require_domain(conn, domain)
            _require_unclaimed(conn, key, display, "user")
            try:
                cur = conn.execute(
                    "INSERT INTO users (address, addr_key, domain, password_hash, quota_bytes,"
                    " created) VALUES (?, ?, ?, ?, ?, ?)",
                    (display, key, domain, password_hash, quota_bytes, created),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"user {display} already exists") from None
            user_id = cur.lastrowid
            assert user_id is not None
            for name, special_use in DEFAULT_MAILBOXES:
                self._insert_mailbox(conn, user_id, name, special_use)
                conn.execute(
                    "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)", (user_id, name)
                )
            row = conn.execute(f"SELECT {rows.USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
            return WriteOutcome(rows.row_to_user(row.fetchone()))

        return await self._write_directory(write)

    async def find_user(self, address: str) -> User | None:
        try:
            parsed = Address.parse(address)
        except InvalidName:
            return None
        base, tag = parsed.without_tag()
        keys = [f"{parsed.local.casefold()}@{parsed.domain}"]
        if tag is not None:
            keys.append(f"{base.local.casefold()}@{base.domain}")

        def read(conn: sqlite3.Connection) -> User | None:
            # An account literally named "a+b@" wins over "a@" with tag "b".
            for key in keys:
                row = conn.execute(
                    f"SELECT {rows.USER_COLUMNS} FROM users WHERE addr_key = ?", (key,)
                ).fetchone()
                if row is not None:
                    return rows.row_to_user(row)
            return None

        return await self._db.read(read)

    async def get_user(self, user_id: int) -> User:
        def read(conn: sqlite3.Connection) -> User:
            row = conn.execute(f"SELECT {rows.USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
            found = row.fetchone()
            if found is None:
                raise NotFound(f"user #{user_id} does not exist")
            return rows.row_to_user(found)

        return await self._db.read(read)

    async def list_users(self, domain: str | None = None) -> list[User]:
        def read(conn: sqlite3.Connection) -> list[User]:
            where, args = _in_domain(domain)
            records = conn.execute(
                f"SELECT {rows.USER_COLUMNS} FROM users{where} ORDER BY domain, addr_key", args
            )
            return [rows.row_to_user(r) for r in records.fetchall()]

        return await self._db.read(read)

    async def _update_user(self, address: str, column: str, value: object) -> None:
        _, key, _ = _address_key(address)

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            cur = conn.execute(f"UPDATE users SET {column} = ? WHERE addr_key = ?", (value, key))
            if cur.rowcount == 0:
                raise NotFound(f"user {address} does not exist")
            return WriteOutcome(None)

        await self._write_directory(write)

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._update_user(address, "password_hash", password_hash)

    async def set_quota(self, address: str, quota_bytes: int) -> None:
        if quota_bytes < 0:
            raise InvalidName("quota cannot be negative")
        await self._update_user(address, "quota_bytes", quota_bytes)

    async def set_pop3_policy(self, address: str, policy: Pop3Policy) -> None:
        try:
            value = Pop3Policy(policy)
        except ValueError:
            choices = ", ".join(p.value for p in Pop3Policy)
            raise InvalidName(f"POP3 policy must be one of {choices}") from None
        await self._update_user(address, "pop3_policy", value.value)

    async def set_plus_folders(self, address: str, enabled: bool) -> None:
        await self._update_user(address, "plus_folders", int(enabled))

    async def set_disabled(self, address: str, disabled: bool) -> None:
        await self._update_user(address, "disabled", int(disabled))

    async def remove_user(self, address: str) -> None:
        _, key, _ = _address_key(address)

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            row = conn.execute("SELECT id FROM users WHERE addr_key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"user {address} does not exist")
            # Mailboxes, messages, expunge records and subscriptions go by cascade; bodies
            # are left to garbage collection, which knows whether others still use them.
            conn.execute("DELETE FROM users WHERE id = ?", (row[0],))
            return WriteOutcome(None)

        await self._write_directory(write)

    # -- aliases and groups --------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        display, key, domain = _alias_key(source)
        clean_targets = [str(Address.parse(t)) for t in targets]
        if not clean_targets:
            raise InvalidName("an alias needs at least one target")

        def write(conn: sqlite3.Connection) -> WriteOutcome[Alias]:
            _require_domain(conn, domain)
            _require_unclaimed(conn, key, display, "alias")
            position = conn.execute(
                "SELECT coalesce(max(position), 0) FROM aliases WHERE source_key = ?", (key,)
            ).fetchone()[0]
            for target in clean_targets:
                position += 1
                conn.execute(
                    "INSERT OR IGNORE INTO aliases (source_key, source, domain, target, position)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key, display, domain, target, position),
                )
            return WriteOutcome(_existing(self._load_alias(conn, key), f"alias {display}"))

        return await self._write_directory(write)

    @staticmethod
    def _load_alias(conn: sqlite3.Connection, key: str) -> Alias | None:
        records = conn.execute(
            "SELECT source, target FROM aliases WHERE source_key = ? ORDER BY position", (key,)
        ).fetchall()
        if not records:
            return None
        return Alias(records[0][0], tuple(r[1] for r in records))

    async def remove_alias(self, source: str, target: str | None = None) -> None:
        _, key, _ = _alias_key(source)

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            if target is None:
                cur = conn.execute("DELETE FROM aliases WHERE source_key = ?", (key,))
            else:
                cur = conn.execute(
                    "DELETE FROM aliases WHERE source_key = ? AND target = ?",
                    (key, str(Address.parse(target))),
                )
            if cur.rowcount == 0:
                raise NotFound(f"alias {source}{' -> ' + target if target else ''} does not exist")
            return WriteOutcome(None)

        await self._write_directory(write)

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        def read(conn: sqlite3.Connection) -> list[Alias]:
            where, args = _in_domain(domain)
            records = conn.execute(
                f"SELECT source_key, source, target FROM aliases{where}"
                " ORDER BY source_key, position",
                args,
            ).fetchall()
            grouped: dict[str, tuple[str, list[str]]] = {}
            for key, display, target in records:
                grouped.setdefault(key, (display, []))[1].append(target)
            return [Alias(display, tuple(ts)) for display, ts in grouped.values()]

        return await self._db.read(read)

    async def find_alias(self, source: str) -> Alias | None:
        try:
            _, key, _ = _alias_key(source)
        except InvalidName:
            return None
        return await self._db.read(lambda conn: self._load_alias(conn, key))

    async def add_group(self, address: str, members: Sequence[str] = ()) -> Group:
        display, key, domain = _address_key(address)
        clean = [str(Address.parse(m)) for m in members]

        def write(conn: sqlite3.Connection) -> WriteOutcome[Group]:
            _require_domain(conn, domain)
            _require_unclaimed(conn, key, display, "group")
            try:
                cur = conn.execute(
                    "INSERT INTO groups (address, addr_key, domain) VALUES (?, ?, ?)",
                    (display, key, domain),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"group {display} already exists") from None
            for position, member in enumerate(clean, start=1):
                conn.execute(
                    "INSERT OR IGNORE INTO group_members (group_id, member, position)"
                    " VALUES (?, ?, ?)",
                    (cur.lastrowid, member, position),
                )
            return WriteOutcome(_existing(self._load_group(conn, key), f"group {address}"))

        return await self._write_directory(write)

    @staticmethod
    def _load_group(conn: sqlite3.Connection, key: str) -> Group | None:
        row = conn.execute("SELECT id, address FROM groups WHERE addr_key = ?", (key,)).fetchone()
        if row is None:
            return None
        members = conn.execute(
            "SELECT member FROM group_members WHERE group_id = ? ORDER BY position", (row[0],)
        ).fetchall()
        return Group(row[1], tuple(m[0] for m in members))

    async def remove_group(self, address: str) -> None:
        _, key, _ = _address_key(address)

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            if conn.execute("DELETE FROM groups WHERE addr_key = ?", (key,)).rowcount == 0:
                raise NotFound(f"group {address} does not exist")
            return WriteOutcome(None)

        await self._write_directory(write)

    async def list_groups(self, domain: str | None = None) -> list[Group]:
        def read(conn: sqlite3.Connection) -> list[Group]:
            where, args = _in_domain(domain)
            query = f"SELECT addr_key FROM groups{where} ORDER BY addr_key"
            keys = [r[0] for r in conn.execute(query, args).fetchall()]
            return [g for k in keys if (g := self._load_group(conn, k)) is not None]

        return await self._db.read(read)

    async def add_group_member(self, address: str, member: str) -> Group:
        _, key, _ = _address_key(address)
        clean = str(Address.parse(member))

        def write(conn: sqlite3.Connection) -> WriteOutcome[Group]:
            row = conn.execute("SELECT id FROM groups WHERE addr_key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"group {address} does not exist")
            position = conn.execute(
                "SELECT coalesce(max(position), 0) + 1 FROM group_members WHERE group_id = ?",
                (row[0],),
            ).fetchone()[0]
            cur = conn.execute(
                "INSERT OR IGNORE INTO group_members (group_id, member, position) VALUES (?, ?, ?)",
                (row[0], clean, position),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"{clean} is already a member of {address}")
            return WriteOutcome(_existing(self._load_group(conn, key), f"group {address}"))

        return await self._write_directory(write)

    async def remove_group_member(self, address: str, member: str) -> Group:
        _, key, _ = _address_key(address)
        clean = str(Address.parse(member))

        def write(conn: sqlite3.Connection) -> WriteOutcome[Group]:
            row = conn.execute("SELECT id FROM groups WHERE addr_key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"group {address} does not exist")
            cur = conn.execute(
                "DELETE FROM group_members WHERE group_id = ? AND member = ?", (row[0], clean)
            )
            if cur.rowcount == 0:
                raise NotFound(f"{clean} is not a member of {address}")
            return WriteOutcome(_existing(self._load_group(conn, key), f"group {address}"))

        return await self._write_directory(write)

    async def find_group(self, address: str) -> Group | None:
        try:
            _, key, _ = _address_key(address)
        except InvalidName:
            return None
        return await self._db.read(lambda conn: self._load_group(conn, key))

    # -- mailboxes -----------------------------------------------------------------------------
    @staticmethod
    def _next_uidvalidity(conn: sqlite3.Connection, above: int = 0) -> int:
        """Unique per mailbox for the life of the store, so a recreated name never reuses one
        (RFC 9051 §2.3.1.1). Time-based like most servers, strictly increasing, and greater
        than ``above`` (the UIDVALIDITY an earlier mailbox of the same name had)."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
        last = int(row[0]) if row else 0
        value = max(last + 1, above + 1, int(time.time()))
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(value),),
        )
        return value

    def _insert_mailbox(
        self,
        conn: sqlite3.Connection,
        user_id: int,
        name: str,
        special_use: str | None,
        *,
        uidvalidity_above: int = 0,
    ) -> int:
        uidvalidity = self._next_uidvalidity(conn, uidvalidity_above)
        cur = conn.execute(
            "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
            (user_id, name, uidvalidity, special_use),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _load_mailbox(self, conn: sqlite3.Connection, user_id: int, name: str) -> Mailbox:
        row = conn.execute(
            rows.MAILBOX_SELECT + " WHERE b.user_id = ? AND b.name = ?", (user_id, name)
        ).fetchone()
        if row is None:
            raise NotFound(f"mailbox {name} does not exist")
        return rows.row_to_mailbox(row)

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        def read(conn: sqlite3.Connection) -> list[Mailbox]:
            records = conn.execute(
                rows.MAILBOX_SELECT + " WHERE b.user_id = ? ORDER BY b.name = 'INBOX' DESC,"
                " b.name",
                (user_id,),
            ).fetchall()
            return [rows.row_to_mailbox(r) for r in records]

        return await self._db.read(read)

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        clean = validate_mailbox_name(name)
        return await self._db.read(lambda conn: self._load_mailbox(conn, user_id, clean))

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox:
        def read(conn: sqlite3.Connection) -> Mailbox:
            row = conn.execute(rows.MAILBOX_SELECT + " WHERE b.id = ?", (mailbox_id,)).fetchone()
            if row is None:
                raise NotFound(f"mailbox #{mailbox_id} does not exist")
            return rows.row_to_mailbox(row)

        return await self._db.read(read)

    async def create_mailbox(
        self, user_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        clean = validate_mailbox_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise InvalidName(f"unknown special-use attribute {special_use}")

        def write(conn: sqlite3.Connection) -> WriteOutcome[Mailbox]:
            if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
                raise NotFound(f"user #{user_id} does not exist")
            exists = "SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?"
            row = conn.execute(
                "SELECT id, noselect FROM mailboxes WHERE user_id = ? AND name = ?",
                (user_id, clean),
            ).fetchone()
            if row is not None and not row[1]:
                raise AlreadyExists(f"mailbox {clean} already exists")
            if row is not None:
                # A \Noselect name left by DELETE becomes a real mailbox again.
                conn.execute(
                    "UPDATE mailboxes SET noselect = 0,"
                    " special_use = coalesce(?, special_use) WHERE id = ?",
                    (special_use, row[0]),
                )
                event = ChangeEvent(user_id, row[0], ChangeKind.MAILBOX_CREATED, name=clean)
                return WriteOutcome(self._load_mailbox(conn, user_id, clean), [event])
            events = []
            for parent in parents_of(clean):
                if not conn.execute(exists, (user_id, parent)).fetchone():
                    parent_id = self._insert_mailbox(conn, user_id, parent, None)
                    events.append(
                        ChangeEvent(user_id, parent_id, ChangeKind.MAILBOX_CREATED, name=parent)
                    )
            mailbox_id = self._insert_mailbox(conn, user_id, clean, special_use)
            events.append(ChangeEvent(user_id, mailbox_id, ChangeKind.MAILBOX_CREATED, name=clean))
            return WriteOutcome(self._load_mailbox(conn, user_id, clean), events)

        return await self._write_directory(write)

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> Mailbox:
        src = validate_mailbox_name(old)
        dst = validate_mailbox_name(new)
        if src == dst:
            raise AlreadyExists(f"mailbox {dst} already exists")
        if dst.startswith(src + SEPARATOR):
            raise InvalidName("cannot rename a mailbox into its own child")

        def write(conn: sqlite3.Connection) -> WriteOutcome[Mailbox]:
            source = self._load_mailbox(conn, user_id, src)
            exists = "SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?"
            if conn.execute(exists, (user_id, dst)).fetchone():
                raise AlreadyExists(f"mailbox {dst} already exists")
            events: list[ChangeEvent] = []
            for parent in parents_of(dst):
                if not conn.execute(exists, (user_id, parent)).fetchone():
                    parent_id = self._insert_mailbox(conn, user_id, parent, None)
                    events.append(
                        ChangeEvent(user_id, parent_id, ChangeKind.MAILBOX_CREATED, name=parent)
                    )
            if is_inbox(src):
                # RFC 9051 §6.3.6: renaming INBOX moves all its messages to the new name and
                # leaves INBOX empty; INBOX's children are not renamed. The mailbox itself
                # moves (UIDs, UIDVALIDITY, UIDNEXT, mod-sequences, quota usage unchanged, so
                # a session with INBOX selected goes on with it under the new name) and a
                # fresh INBOX takes the name with UIDNEXT 1 and a UIDVALIDITY above the old
                # one's (§2.3.1.1). INBOX's subscription stays with the name INBOX.
                conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (dst, source.id))
                inbox_id = self._insert_mailbox(
                    conn, user_id, "INBOX", None, uidvalidity_above=source.uidvalidity
                )
                events.append(ChangeEvent(user_id, source.id, ChangeKind.MAILBOX_RENAMED, name=dst))
                events.append(
                    ChangeEvent(user_id, inbox_id, ChangeKind.MAILBOX_CREATED, name="INBOX")
                )
                return WriteOutcome(self._load_mailbox(conn, user_id, dst), events)
            prefix = src + SEPARATOR
            children = conn.execute(
                "SELECT id, name FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ?",
                (user_id, len(prefix), prefix),
            ).fetchall()
            renames = [(source.id, src, dst)] + [
                (cid, cname, dst + cname[len(src):]) for cid, cname in children
            ]
            for mailbox_id, old_name, new_name in renames:
                conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new_name, mailbox_id))
                conn.execute(
                    "UPDATE subscriptions SET name = ? WHERE user_id = ? AND name = ?",
                    (new_name, user_id, old_name),
                )
                events.append(
                    ChangeEvent(user_id, mailbox_id, ChangeKind.MAILBOX_RENAMED, name=new_name)
                )
            return WriteOutcome(self._load_mailbox(conn, user_id, dst), events)

        return await self._write_directory(write)

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        clean = validate_mailbox_name(name)
        if is_inbox(clean):
            raise InvalidName("INBOX cannot be deleted")  # RFC 9051 §6.3.5

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            box = self._load_mailbox(conn, user_id, clean)
            prefix = clean + SEPARATOR
            child = conn.execute(
                "SELECT 1 FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ? LIMIT 1",
                (user_id, len(prefix), prefix),
            ).fetchone()
            if child and box.noselect:
                raise NotEmpty(f"mailbox {clean} has children; delete them first")
            if child:
                # RFC 9051 §6.3.5: keep the name for the children, drop the messages.
                uids = [r[0] for r in conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (box.id,)
                )]
                removed = self._remove_rows(conn, box.id, uids)
                conn.execute("UPDATE mailboxes SET noselect = 1 WHERE id = ?", (box.id,))
                return WriteOutcome(None, removed.events)
            conn.execute(
                "UPDATE users SET used_bytes = used_bytes - ? WHERE id = ?",
                (box.size_bytes, user_id),
            )
            conn.execute("DELETE FROM mailboxes WHERE id = ?", (box.id,))
            event = ChangeEvent(user_id, box.id, ChangeKind.MAILBOX_DELETED, name=clean)
            return WriteOutcome(None, [event])

        await self._write_directory(write)

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        clean = validate_mailbox_name(name)

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            if subscribed:
                conn.execute(
                    "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
                    (user_id, clean),
                )
            else:
                conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, clean)
                )
            event = ChangeEvent(user_id, 0, ChangeKind.SUBSCRIPTION, name=clean)
            return WriteOutcome(None, [event])

        await self._db.write(write)

    async def list_subscriptions(self, user_id: int) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            records = conn.execute(
                "SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name", (user_id,)
            )
            return [r[0] for r in records.fetchall()]

        return await self._db.read(read)

    # -- messages: writing ---------------------------------------------------------------------
    async def _prepare_body(self, data: bytes) -> tuple[str, set[Path], bytes | None]:
        """Write the body (flushed later with its batch) and parse it once, off the loop."""

        def work() -> tuple[str, set[Path], bytes | None]:
            blob_id, dirty = self.blobs.write(data)
            structure = self._parse(data) if self._parse is not None else None
            return blob_id, dirty, structure

        return await self._db.in_io(work)

    def _ensure_blob_row(
        self, conn: sqlite3.Connection, blob_id: str, size: int, structure: bytes | None
    ) -> None:
        in_database = conn.execute(
            "SELECT 1 FROM blobs WHERE id = ? AND data IS NOT NULL", (blob_id,)
        ).fetchone()
        if in_database:
            return
        # A collection may have removed an unreferenced body file between our write and
        # this commit; the writer thread serialises us with it, so checking here is enough.
        if not self.blobs.exists(blob_id):
            raise _BodyVanished(blob_id)
        conn.execute(
            "INSERT OR IGNORE INTO blobs (id, size, structure) VALUES (?, ?, ?)",
            (blob_id, size, structure),
        )

    @staticmethod
    def _mailbox_row(conn: sqlite3.Connection, mailbox_id: int) -> tuple[int, int, int, int]:
        row = conn.execute(
            "SELECT user_id, uidvalidity, uidnext, highestmodseq FROM mailboxes WHERE id = ?",
            (mailbox_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"mailbox #{mailbox_id} does not exist")
        return row[0], row[1], row[2], row[3]

    @staticmethod
    def _charge_quota(conn: sqlite3.Connection, user_id: int, size: int) -> None:
        """Add ``size`` to the account's usage, refusing to go over its quota. One
        statement: every write runs in its own SAVEPOINT, so raising undoes the UPDATE."""
        row = conn.execute(
            "UPDATE users SET used_bytes = used_bytes + ? WHERE id = ?"
            " RETURNING quota_bytes, used_bytes",
            (size, user_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"user #{user_id} does not exist")
        quota, used = row
        if size > 0 and quota and used > quota:
            raise QuotaExceeded(f"quota of {quota} bytes exceeded")

    @staticmethod
    def _mailbox_for_insert(conn: sqlite3.Connection, mailbox_id: int) -> _MailboxRow:
        row = conn.execute(f"{_MAILBOX_FOR_INSERT} WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            raise NotFound(f"mailbox #{mailbox_id} does not exist")
        return _MailboxRow(*row)

    def _insert_message(
        self,
        conn: sqlite3.Connection,
        mailbox: _MailboxRow,
        blob_id: str,
        size: int,
        flags: frozenset[str],
        internaldate: str,
    ) -> tuple[int, AppendResult]:
        mailbox.require_selectable()
        mailbox_id, user_id, uidvalidity = mailbox.id, mailbox.user_id, mailbox.uidvalidity
        uid, modseq = mailbox.uidnext, mailbox.highestmodseq + 1
        self._charge_quota(conn, user_id, size)
        conn.execute(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate,"
            " size, blob_id, savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (mailbox_id, uid, modseq, rows.flags_text(flags), SEEN in flags, DELETED in flags,
             internaldate, size, blob_id, datetime.now(UTC).isoformat()),
        )
        conn.execute(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
            (uid + 1, modseq, mailbox_id),
        )
        return user_id, AppendResult(uidvalidity, UID(uid), ModSeq(modseq))

    async def _stage(self, data: bytes) -> _Staged:
        """Get a body ready for a write: a small one is hashed and parsed here (the writer
        stores it in the database, decision 0002); a large one is written to a file and
        parsed on the I/O pool. Nothing but SQL is left for the writer thread."""
        if len(data) <= DATABASE_BODY_LIMIT:
            if self._parse is None:
                structure = None
            elif len(data) <= INLINE_PARSE_LIMIT:
                structure = self._parse(data)
            else:
                parse = self._parse
                structure = await self._db.in_io(lambda: parse(data))
            return _Staged(blob_id_for(data), set(), structure, data)
        blob_id, dirty, structure = await self._prepare_body(data)
        return _Staged(blob_id, dirty, structure, None)

    def _place(self, conn: sqlite3.Connection, staged: _Staged, size: int) -> None:
        """In the writer's transaction: make the staged body's row exist.

        A small body goes into its ``blobs`` row and becomes durable with the same WAL
        fsync as the records that reference it; one already stored (the same message
        delivered again) is left as it is.
        """
        if staged.small is not None:
            conn.execute(
                "INSERT OR IGNORE INTO blobs (id, size, structure, data) VALUES (?, ?, ?, ?)",
                (staged.blob_id, size, staged.structure, staged.small),
            )
        else:
            self._ensure_blob_row(conn, staged.blob_id, size, staged.structure)

    async def _with_body(
        self, data: bytes, build: Callable[[str, bytes | None], WriteFn[T]]
    ) -> T:
        """Run ``build(blob_id, structure)``'s write with the body stored durably first
        (in the same transaction for a small body; flushed before the COMMIT for a file)."""
        for _attempt in range(3):
            staged = await self._stage(data)
            inner = build(staged.blob_id, staged.structure)

            def write(conn: sqlite3.Connection, staged: _Staged = staged,
                      inner: WriteFn[T] = inner) -> WriteOutcome[T]:
                self._place(conn, staged, len(data))
                return inner(conn)

            try:
                return await self._db.write(write, sync_dirs=staged.dirty)
            except _BodyVanished:
                continue
        raise StoreError("message body could not be stored")

    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        clean_flags = rows.clean_flags(flags)
        when = rows.internaldate_text(internaldate)
        size = len(data)

        def build(blob_id: str, structure: bytes | None) -> WriteFn[AppendResult]:
            def write(conn: sqlite3.Connection) -> WriteOutcome[AppendResult]:
                mailbox = self._mailbox_for_insert(conn, mailbox_id)
                user_id, result = self._insert_message(
                    conn, mailbox, blob_id, size, clean_flags, when
                )
                event = ChangeEvent(
                    user_id, mailbox_id, ChangeKind.EXISTS, (result.uid,), result.modseq,
                    (clean_flags,),
                )
                return WriteOutcome(result, [event])

            return write

        return await self._with_body(data, build)

    async def deliver(
        self, data: bytes, recipients: Sequence[Recipient], internaldate: datetime | None = None
    ) -> DeliveryResult:
        if not recipients:
            raise InvalidName("a delivery needs at least one recipient")
        when = rows.internaldate_text(internaldate)
        size = len(data)
        wanted = _wanted_recipients(recipients)

        def build(blob_id: str, structure: bytes | None) -> WriteFn[DeliveryResult]:
            def write(conn: sqlite3.Connection) -> WriteOutcome[DeliveryResult]:
                return self._deliver_rows(conn, blob_id, size, wanted, when)

            return write

        return await self._with_body(data, build)

    def _deliver_rows(
        self,
        conn: sqlite3.Connection,
        blob_id: str,
        size: int,
        wanted: list[tuple[int, str, frozenset[str]]],
        when: str,
    ) -> WriteOutcome[DeliveryResult]:
        """Insert one stored body into each recipient's mailbox (inside a write)."""
        results: list[tuple[int, AppendResult]] = []
        events: list[ChangeEvent] = []
        for user_id, name, flags in wanted:
            row = conn.execute(
                f"{_MAILBOX_FOR_INSERT} WHERE user_id = ? AND name = ? AND noselect = 0",
                (user_id, name),
            ).fetchone()
            if row is None:  # folder removed (or \Noselect) since routing: INBOX never fails
                row = conn.execute(
                    f"{_MAILBOX_FOR_INSERT} WHERE user_id = ? AND name = 'INBOX'", (user_id,)
                ).fetchone()
            if row is None:
                raise NotFound(f"user #{user_id} has no INBOX")
            mailbox = _MailboxRow(*row)
            _, result = self._insert_message(conn, mailbox, blob_id, size, flags, when)
            results.append((user_id, result))
            events.append(ChangeEvent(
                user_id, mailbox.id, ChangeKind.EXISTS, (result.uid,), result.modseq, (flags,)
            ))
        return WriteOutcome(DeliveryResult(blob_id, tuple(results)), events)

    # -- outbound queue ------------------------------------------------------------------------
    async def enqueue(
        self,
        data: bytes,
        envelope: OutboundEnvelope | None,
        local_data: bytes | None = None,
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
        wanted = _wanted_recipients(local)
        bodies = [data] if envelope is not None else []
        if local:
            assert local_data is not None
            bodies.append(local_data)

        for _attempt in range(3):
            prepared = await asyncio.gather(*(self._stage(b) for b in bodies))
            sync_dirs: set[Path] = set().union(*(st.dirty for st in prepared))

            def write(conn: sqlite3.Connection, prepared: list[_Staged] = prepared
                      ) -> WriteOutcome[tuple[DeliveryResult | None, int | None]]:
                queue_id: int | None = None
                delivered: DeliveryResult | None = None
                events: list[ChangeEvent] = []
                for body, staged in zip(bodies, prepared, strict=True):
                    self._place(conn, staged, len(body))
                if envelope is not None:
                    queue_id = insert_queued(
                        conn, prepared[0].blob_id, len(data), envelope, now.isoformat()
                    )
                if local:
                    assert local_data is not None
                    outcome = self._deliver_rows(
                        conn, prepared[-1].blob_id, len(local_data), wanted, when
                    )
                    delivered, events = outcome.result, outcome.events
                return WriteOutcome((delivered, queue_id), events)

            try:
                result: tuple[DeliveryResult | None, int | None] = await self._db.write(
                    write, sync_dirs=sync_dirs
                )
            except _BodyVanished:
                continue
            return result
        raise StoreError("message body could not be stored")

    async def list_queue(self) -> list[QueuedMessage]:
        return await self._db.read(load_queue)

    async def remove_queued(self, queue_id: int) -> None:
        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            if not delete_queued(conn, queue_id):
                raise NotFound(f"queued message #{queue_id} does not exist")
            return WriteOutcome(None)

        await self._db.write(write)

    # -- outbound delivery state (issue 4: the scheduler) ----------------------------------
    async def claim_queue(self, now: datetime, limit: int) -> list[QueuedMessage]:
        def write(conn: sqlite3.Connection) -> WriteOutcome[list[QueuedMessage]]:
            return WriteOutcome(claim_due(conn, now, limit))

        return await self._db.write(write)

    async def queued_messages(self, ids: Sequence[int] | None = None) -> list[QueuedMessage]:
        wanted = None if ids is None else list(ids)
        return await self._db.read(lambda conn: load_messages(conn, wanted))

    async def get_queued(self, queue_id: int) -> QueuedMessage:
        found = await self.queued_messages([queue_id])
        if not found:
            raise NotFound(f"queued message #{queue_id} does not exist")
        return found[0]

    async def update_queue_recipients(self, recipients: Sequence[QueuedRecipient]) -> None:
        records = list(recipients)

        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            update_recipients(conn, records)
            return WriteOutcome(None)

        await self._db.write(write)

    async def unsettled_queue(self, limit: int = 1000) -> list[int]:
        return await self._db.read(lambda conn: unsettled_messages(conn, limit))

    async def recover_queue(self, now: datetime) -> int:
        def write(conn: sqlite3.Connection) -> WriteOutcome[int]:
            return WriteOutcome(recover_inflight(conn, now))

        return await self._db.write(write)

    async def set_queue_held(self, queue_id: int, held: bool) -> None:
        def write(conn: sqlite3.Connection) -> WriteOutcome[None]:
            if not set_held(conn, queue_id, held):
                raise NotFound(f"queued message #{queue_id} does not exist")
            return WriteOutcome(None)

        await self._db.write(write)

    async def retry_queue(self, queue_id: int | None, now: datetime) -> int:
        def write(conn: sqlite3.Connection) -> WriteOutcome[int]:
            if queue_id is not None and not conn.execute(
                "SELECT 1 FROM queue_messages WHERE id = ?", (queue_id,)
            ).fetchone():
                raise NotFound(f"queued message #{queue_id} does not exist")
            return WriteOutcome(make_due(conn, queue_id, now))

        return await self._db.write(write)

    async def next_queue_due(self) -> datetime | None:
        return await self._db.read(next_due)

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

        def write(conn: sqlite3.Connection) -> WriteOutcome[StoreFlagsResult]:
            user_id, _, _, highest = self._mailbox_row(conn, mailbox_id)
            modseq = highest + 1  # RFC 7162 §3.1: one new modseq for this whole change
            updated: list[FlagUpdate] = []
            modified: list[UID] = []
            changes: list[tuple[str, int, int, int, int]] = []
            for chunk in chunks(targets):
                marks = ",".join("?" * len(chunk))
                records = conn.execute(
                    f"SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ?"
                    f" AND uid IN ({marks}) ORDER BY uid",
                    (mailbox_id, *chunk),
                ).fetchall()
                for uid, old_modseq, text in records:
                    if unchanged_since is not None and old_modseq > unchanged_since:
                        modified.append(UID(uid))
                        continue
                    current = rows.parse_flags(text)
                    if mode is FlagMode.SET:
                        new = wanted
                    elif mode is FlagMode.ADD:
                        new = current | wanted
                    else:
                        new = current - wanted
                    if new == current:
                        continue
                    changes.append((rows.flags_text(new), SEEN in new, DELETED in new, modseq, uid))
                    updated.append(FlagUpdate(UID(uid), ModSeq(modseq), new))
            if changes:
                conn.executemany(
                    "UPDATE messages SET flags = ?, seen = ?, deleted = ?, modseq = ?"
                    f" WHERE mailbox_id = {int(mailbox_id)} AND uid = ?",
                    changes,
                )
                conn.execute(
                    "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id)
                )
            events = []
            if updated:
                events.append(ChangeEvent(
                    user_id, mailbox_id, ChangeKind.FLAGS,
                    tuple(u.uid for u in updated), ModSeq(modseq),
                    tuple(u.flags for u in updated),
                ))
            return WriteOutcome(StoreFlagsResult(tuple(updated), tuple(modified)), events)

        return await self._db.write(write)

    def _remove_rows(
        self, conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int]
    ) -> WriteOutcome[list[UID]]:
        """Delete messages, record them for VANISHED, give their bytes back to the quota."""
        user_id, _, _, highest = self._mailbox_row(conn, mailbox_id)
        if not uids:
            return WriteOutcome([])
        modseq = highest + 1
        freed = 0
        for chunk in chunks(list(uids)):
            marks = ",".join("?" * len(chunk))
            freed += conn.execute(
                f"SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?"
                f" AND uid IN ({marks})",
                (mailbox_id, *chunk),
            ).fetchone()[0]
            conn.execute(
                f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
                (mailbox_id, *chunk),
            )
        conn.executemany(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
            [(mailbox_id, uid, modseq) for uid in uids],
        )
        conn.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id))
        conn.execute("UPDATE users SET used_bytes = used_bytes - ? WHERE id = ?", (freed, user_id))
        removed = [UID(u) for u in uids]
        event = ChangeEvent(user_id, mailbox_id, ChangeKind.EXPUNGE, tuple(removed), ModSeq(modseq))
        return WriteOutcome(removed, [event])

    async def expunge(self, mailbox_id: int, uids: Sequence[UID] | None = None) -> list[UID]:
        limit = None if uids is None else set(uids)

        def write(conn: sqlite3.Connection) -> WriteOutcome[list[UID]]:
            records = conn.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? AND deleted = 1 ORDER BY uid",
                (mailbox_id,),
            ).fetchall()
            doomed = [r[0] for r in records if limit is None or r[0] in limit]
            return self._remove_rows(conn, mailbox_id, doomed)

        return await self._db.write(write)

    async def delete_messages(self, mailbox_id: int, uids: Sequence[UID]) -> list[UID]:
        targets = sorted(set(uids))

        def write(conn: sqlite3.Connection) -> WriteOutcome[list[UID]]:
            present = self._existing_uids(conn, mailbox_id, targets)
            return self._remove_rows(conn, mailbox_id, present)

        return await self._db.write(write)

    @staticmethod
    def _existing_uids(conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        present: list[int] = []
        for chunk in chunks(list(uids)):
            marks = ",".join("?" * len(chunk))
            present.extend(r[0] for r in conn.execute(
                f"SELECT uid FROM messages WHERE mailbox_id = ? AND uid IN ({marks}) ORDER BY uid",
                (mailbox_id, *chunk),
            ))
        return present

    def _copy_rows(
        self,
        conn: sqlite3.Connection,
        src: int,
        uids: Sequence[int],
        dst: int,
        *,
        expunge_source: bool,
    ) -> WriteOutcome[CopyResult]:
        src_user, _, _, _ = self._mailbox_row(conn, src)
        target = self._mailbox_for_insert(conn, dst)
        target.require_selectable()
        dst_user, dst_validity = target.user_id, target.uidvalidity
        next_uid, highest = target.uidnext, target.highestmodseq
        if src_user != dst_user:
            raise InvalidName("messages can only be copied within one account")
        records: list[tuple[int, str, str, int, str]] = []
        for chunk in chunks(sorted(set(uids))):
            marks = ",".join("?" * len(chunk))
            records.extend(conn.execute(
                f"SELECT uid, flags, internaldate, size, blob_id FROM messages"
                f" WHERE mailbox_id = ? AND uid IN ({marks}) ORDER BY uid",
                (src, *chunk),
            ).fetchall())
        if not records:
            return WriteOutcome(CopyResult(dst_validity, ()))
        modseq = highest + 1
        total = sum(r[3] for r in records)
        if not expunge_source:
            self._charge_quota(conn, dst_user, total)
        mapping: list[tuple[UID, UID]] = []
        new_flags: list[frozenset[str]] = []
        inserts = []
        saved = datetime.now(UTC).isoformat()  # RFC 8514 §3: a copy is saved now
        for offset, (uid, flags, internaldate, size, blob_id) in enumerate(records):
            new_uid = next_uid + offset
            parsed = rows.parse_flags(flags)
            inserts.append((dst, new_uid, modseq, flags, SEEN in parsed, DELETED in parsed,
                            internaldate, size, blob_id, saved))
            mapping.append((UID(uid), UID(new_uid)))
            new_flags.append(parsed)
        conn.executemany(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate,"
            " size, blob_id, savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        conn.execute(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
            (next_uid + len(records), modseq, dst),
        )
        events = [ChangeEvent(
            dst_user, dst, ChangeKind.EXISTS, tuple(n for _, n in mapping), ModSeq(modseq),
            tuple(new_flags),
        )]
        if expunge_source:
            removed = self._remove_rows(conn, src, [int(o) for o, _ in mapping])
            # The bytes moved rather than doubled: _remove_rows gave them back, take them again.
            conn.execute(
                "UPDATE users SET used_bytes = used_bytes + ? WHERE id = ?", (total, dst_user)
            )
            events.extend(removed.events)
        return WriteOutcome(CopyResult(dst_validity, tuple(mapping)), events)

    async def copy(
        self, src_mailbox_id: int, uids: Sequence[UID], dst_mailbox_id: int
    ) -> CopyResult:
        def write(conn: sqlite3.Connection) -> WriteOutcome[CopyResult]:
            return self._copy_rows(conn, src_mailbox_id, uids, dst_mailbox_id, expunge_source=False)

        return await self._db.write(write)

    async def move(
        self, src_mailbox_id: int, uids: Sequence[UID], dst_mailbox_id: int
    ) -> CopyResult:
        if src_mailbox_id == dst_mailbox_id:
            raise InvalidName("source and destination mailbox are the same")

        def write(conn: sqlite3.Connection) -> WriteOutcome[CopyResult]:
            return self._copy_rows(conn, src_mailbox_id, uids, dst_mailbox_id, expunge_source=True)

        return await self._db.write(write)

    # -- messages: reading ---------------------------------------------------------------------
    async def list_messages(
        self,
        mailbox_id: int,
        uid_ranges: UIDRanges | None = None,
        *,
        changed_since: int | None = None,
    ) -> list[MessageMeta]:
        if uid_ranges is None and changed_since is None:
            return await self._db.read(partial(self._message_lists.read, mailbox_id=mailbox_id))

        def read(conn: sqlite3.Connection) -> list[MessageMeta]:
            sql = f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?"
            args: list[object] = [mailbox_id]
            if changed_since is not None:
                sql += " AND modseq > ?"
                args.append(changed_since)
            if uid_ranges is not None:
                if not uid_ranges:
                    return []
                if len(uid_ranges) <= 64:
                    clauses = []
                    for low, high in uid_ranges:
                        clauses.append("uid BETWEEN ? AND ?")
                        args.extend((low, high if high is not None else 2**63 - 1))
                    sql += " AND (" + " OR ".join(clauses) + ")"
                else:
                    # Many small ranges: one range scan over their span, filtered here.
                    low = min(r[0] for r in uid_ranges)
                    highs = [r[1] for r in uid_ranges]
                    high = None if None in highs else max(h for h in highs if h is not None)
                    sql += " AND uid BETWEEN ? AND ?"
                    args.extend((low, high if high is not None else 2**63 - 1))
                    records = conn.execute(sql + " ORDER BY uid", args).fetchall()
                    return [
                        rows.row_to_message(r) for r in records
                        if any(lo <= r[1] <= (hi if hi is not None else r[1])
                               for lo, hi in uid_ranges)
                    ]
            records = conn.execute(sql + " ORDER BY uid", args).fetchall()
            return [rows.row_to_message(r) for r in records]

        return await self._db.read(read)

    async def get_structure(self, blob_id: str) -> bytes:
        def read(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT structure FROM blobs WHERE id = ?", (blob_id,)).fetchone()
            if row is None or row[0] is None:
                raise NotFound(f"no structure stored for {blob_id}")
            return bytes(row[0])

        return await self._db.read(read)

    async def get_structures(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(blob_ids))

        def read(conn: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for chunk in chunks(wanted):
                marks = ",".join("?" * len(chunk))
                for blob_id, structure in conn.execute(
                    f"SELECT id, structure FROM blobs WHERE id IN ({marks})"
                    " AND structure IS NOT NULL",
                    tuple(chunk),
                ):
                    found[blob_id] = bytes(structure)
            return found

        return await self._db.read(read)

    async def read_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT data FROM blobs WHERE id = ?", (blob_id,)).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])

        stored = await self._db.read(read)
        if stored is not None:
            return stored[start:end]
        return await self._db.in_io(lambda: self.blobs.read(blob_id, start, end))

    async def read_blobs(
        self, requests: Sequence[tuple[str, int, int | None]]
    ) -> list[bytes | None]:
        ids = sorted({blob_id for blob_id, _, _ in requests})

        def read(conn: sqlite3.Connection) -> dict[str, bytes | None]:
            found: dict[str, bytes | None] = {}
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                for blob_id, data in conn.execute(
                    f"SELECT id, data FROM blobs WHERE id IN ({marks})", tuple(chunk)
                ):
                    found[blob_id] = data  # None: the body is in a file
            return found

        found = await self._db.read(read)
        out: list[bytes | None] = []
        for blob_id, start, end in requests:
            if blob_id not in found:
                out.append(None)
                continue
            data = found[blob_id]
            if data is not None:
                out.append(bytes(data[start:end]))
                continue
            try:  # large bodies are files: one read each on the I/O pool
                out.append(await self._db.in_io(partial(self.blobs.read, blob_id, start, end)))
            except NotFound:
                out.append(None)
        return out

    async def save_dates(
        self, mailbox_id: int, uid_ranges: UIDRanges | None = None
    ) -> dict[UID, datetime]:
        def read(conn: sqlite3.Connection) -> dict[UID, datetime]:
            sql = ("SELECT uid, COALESCE(savedate, internaldate) FROM messages"
                   " WHERE mailbox_id = ?")
            args: list[object] = [mailbox_id]
            if uid_ranges is not None:
                if not uid_ranges:
                    return {}
                clauses = []
                for low, high in uid_ranges:
                    clauses.append("uid BETWEEN ? AND ?")
                    args += [low, high if high is not None else 2**63 - 1]
                sql += " AND (" + " OR ".join(clauses) + ")"
            return {
                UID(uid): datetime.fromisoformat(text).astimezone(UTC)
                for uid, text in conn.execute(sql, args)
            }

        return await self._db.read(read)

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[UID]:
        def read(conn: sqlite3.Connection) -> list[UID]:
            records = conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                (mailbox_id, modseq),
            ).fetchall()
            return [UID(r[0]) for r in records]

        return await self._db.read(read)

    # -- maintenance ---------------------------------------------------------------------------
    async def collect_garbage(self, grace_seconds: float = 3600.0) -> int:
        """Remove unreferenced bodies: files once older than the grace period, bodies kept
        in the database at once (no file can race with them).

        Candidates are found on the read side; the decision and the unlink happen in the
        writer thread, serialised with every append, so a body that an append is about to
        reference is either kept or re-written by that append (see _ensure_blob_row).
        """

        def find(conn: sqlite3.Connection) -> tuple[list[str], set[str]]:
            unreferenced = [r[0] for r in conn.execute(
                "SELECT id FROM blobs b WHERE NOT EXISTS"
                " (SELECT 1 FROM messages m WHERE m.blob_id = b.id)"
                f" AND NOT {QUEUE_REFERENCE}"
            ).fetchall()]
            known = {r[0] for r in conn.execute("SELECT id FROM blobs").fetchall()}
            return unreferenced, known

        unreferenced, known = await self._db.read(find)
        orphans = await self._db.in_io(lambda: [b for b in self.blobs.iter_ids() if b not in known])
        candidates = [b for b in unreferenced + orphans]
        await self._db.in_io(lambda: self.blobs.clean_tmp(grace_seconds))
        if not candidates:
            return 0

        def write(conn: sqlite3.Connection) -> WriteOutcome[int]:
            doomed: list[str] = []
            for blob_id in candidates:
                used = conn.execute(
                    "SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1", (blob_id,)
                ).fetchone()
                used = used or is_blob_queued(conn, blob_id)
                if used or self.blobs.age(blob_id) < grace_seconds:
                    continue
                conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
                # Unlinked now, in the writer thread, so an append later in this batch
                # that carries the same content writes the file again. If the COMMIT
                # fails, the row stays without a file; nothing references it, and the
                # next append of that content rewrites the file.
                self.blobs.delete(blob_id)
                doomed.append(blob_id)
            return WriteOutcome(len(doomed))

        return await self._db.write(write)

    async def integrity_check(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            problems = [p for p in problems if p != "ok"]
            problems += [f"foreign key: {r}" for r in conn.execute("PRAGMA foreign_key_check")]
            for user_id, used, actual in conn.execute(
                "SELECT u.id, u.used_bytes, (SELECT coalesce(sum(m.size), 0) FROM messages m"
                " JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = u.id) FROM users u"
            ).fetchall():
                if used != actual:
                    problems.append(f"user #{user_id}: used_bytes {used} != actual {actual}")
            return problems

        return await self._db.read(read)


@dataclass(frozen=True, slots=True)
class _Staged:
    """A body on its way into a write (see SQLiteStore._stage)."""

    blob_id: str
    dirty: set[Path]  # files to flush before the COMMIT (large bodies)
    structure: bytes | None  # the parsed MIME structure
    small: bytes | None  # the body itself when it goes into the database


class _MailboxRow(NamedTuple):
    """What an insert needs to know about its mailbox (``_MAILBOX_FOR_INSERT``)."""

    id: int
    user_id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    noselect: int
    name: str

    def require_selectable(self) -> None:
        """Messages cannot go into a \\Noselect name (RFC 9051 §6.3.5)."""
        if self.noselect:
            raise NotFound(f"mailbox {self.name} is \\Noselect and cannot hold messages")


class _BodyVanished(Exception):
    """The body was collected between writing and committing: write it again."""
