"""Domains, accounts, aliases and groups in the SQLite store: who receives mail where.

Functions of a connection, run by the store's writer (writes) or readers (reads). Addresses
are stored twice: as given (``address``, ``source``), for display, and as a lookup key with
the local part case-folded and the domain lower-cased, which every lookup and uniqueness
check uses. The argument checks (``new_domain_name``, ``address_key`` ...) are pure and run
on the event loop before a write is submitted, so a bad name never reaches the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from mailstead.core.errors import AlreadyExists, InvalidName, NotEmpty, NotFound
from mailstead.core.types import DEFAULT_MAILBOXES, Address, Pop3Policy, SendAs
from mailstead.store.models import Alias, Domain, Group, User
from mailstead.store.sql import mailboxes
from mailstead.store.sql.connections import inserted_id
from mailstead.store.sql.rows import USER_COLUMNS, row_to_user

T = TypeVar("T")

#: The account settings ``update_user`` may change, by column.
UserSetting = Literal["quota_bytes", "pop3_policy", "plus_folders", "disabled", "send_as"]

AddressKind = Literal["user", "alias", "group"]
#: An address is one thing only: a user, an alias or a group (kind -> table, key column).
_ADDRESS_KINDS: dict[AddressKind, tuple[str, str]] = {
    "user": ("users", "addr_key"),
    "alias": ("aliases", "source_key"),
    "group": ("groups", "addr_key"),
}

# -- names and keys (pure) ---------------------------------------------------------------------


def domain_key(name: str) -> str:
    """A domain as stored and looked up: lower case, no trailing dot."""
    return name.strip().lower().rstrip(".")


def new_domain_name(name: str) -> str:
    """The stored form of a domain about to be added; InvalidName if it cannot be one."""
    domain = domain_key(name)
    if not domain or "@" in domain or any(c.isspace() for c in domain) or ".." in domain:
        raise InvalidName(f"not a domain name: {name!r}")
    return domain


@dataclass(frozen=True, slots=True)
class AddressKey:
    """An address of a user, alias or group, ready for the database."""

    given: str  # as the caller wrote it, for error messages
    display: str  # as stored and shown: the local part as given, the domain lower-cased
    key: str  # what lookups and uniqueness compare: the local part case-folded too
    domain: str


def address_key(address: str) -> AddressKey:
    parsed = Address.parse(address)
    return AddressKey(
        address, str(parsed), f"{parsed.local.casefold()}@{parsed.domain}", parsed.domain
    )


def alias_key(source: str) -> AddressKey:
    """:func:`address_key` for an alias source, which may also be ``@domain`` (catch-all)."""
    if source.startswith("@"):
        domain = domain_key(source[1:])
        if not domain or "@" in domain:
            raise InvalidName(f"not a catch-all address: {source!r}")
        return AddressKey(source, f"@{domain}", f"@{domain}", domain)
    return address_key(source)


def clean_address(address: str) -> str:
    """An alias target or group member as stored (it may be anywhere, not only here)."""
    return str(Address.parse(address))


def user_lookup_keys(address: str) -> list[str]:
    """The keys to try, in order, for an address that may carry a ``+tag``: an account
    literally named ``a+b@`` wins over ``a@`` with tag ``b``. Empty for a non-address."""
    try:
        parsed = Address.parse(address)
    except InvalidName:
        return []
    base, tag = parsed.without_tag()
    keys = [f"{parsed.local.casefold()}@{parsed.domain}"]
    if tag is not None:
        keys.append(f"{base.local.casefold()}@{base.domain}")
    return keys


def check_quota(quota_bytes: int) -> int:
    if quota_bytes < 0:
        raise InvalidName("quota cannot be negative")
    return quota_bytes


def check_pop3_policy(policy: str) -> Pop3Policy:
    """The policy, refused with the choices when the command line gave something else."""
    try:
        return Pop3Policy(policy)
    except ValueError:
        choices = ", ".join(p.value for p in Pop3Policy)
        raise InvalidName(f"POP3 policy must be one of {choices}") from None


def check_send_as(send_as: str) -> SendAs:
    """The setting, refused with the choices when the caller gave something else."""
    try:
        return SendAs(send_as)
    except ValueError:
        choices = ", ".join(s.value for s in SendAs)
        raise InvalidName(f"send-as must be one of {choices}") from None


def _in_domain(domain: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its argument) that limits a listing to one domain, if given."""
    return ("", ()) if domain is None else (" WHERE domain = ?", (domain.lower(),))


def _require_domain(conn: sqlite3.Connection, domain: str) -> None:
    if not has_domain(conn, domain):
        raise NotFound(f"domain {domain} does not exist")


def _require_unclaimed(
    conn: sqlite3.Connection, address: AddressKey, adding: AddressKind
) -> None:
    """Refuse to make ``address`` an ``adding`` when it is already another kind of address."""
    for kind, (table, column) in _ADDRESS_KINDS.items():
        if kind != adding and conn.execute(
            f"SELECT 1 FROM {table} WHERE {column} = ?", (address.key,)
        ).fetchone():
            article = "an" if kind == "alias" else "a"
            raise AlreadyExists(f"{address.display} is already {article} {kind}")


def _require(found: T | None, what: str) -> T:
    """A row the write just made or found: NotFound should it be gone all the same."""
    if found is None:
        raise NotFound(f"{what} does not exist")
    return found


# -- domains -----------------------------------------------------------------------------------


def add_domain(conn: sqlite3.Connection, domain: str, created: str) -> Domain:
    try:
        conn.execute("INSERT INTO domains (name, created) VALUES (?, ?)", (domain, created))
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"domain {domain} already exists") from None
    return Domain(domain, datetime.fromisoformat(created))


def remove_domain(conn: sqlite3.Connection, domain: str) -> None:
    """Only an empty domain goes: its users, aliases and groups must be removed first."""
    _require_domain(conn, domain)
    for table in ("users", "aliases", "groups"):
        count = conn.execute(f"SELECT count(*) FROM {table} WHERE domain = ?", (domain,))
        remaining = count.fetchone()[0]
        if remaining:
            raise NotEmpty(f"domain {domain} still has {remaining} {table}")
    conn.execute("DELETE FROM domains WHERE name = ?", (domain,))


def list_domains(conn: sqlite3.Connection) -> list[Domain]:
    found = conn.execute("SELECT name, created FROM domains ORDER BY name").fetchall()
    return [Domain(r[0], datetime.fromisoformat(r[1])) for r in found]


def has_domain(conn: sqlite3.Connection, domain: str) -> bool:
    return conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() is not None


# -- users -------------------------------------------------------------------------------------


def add_user(
    conn: sqlite3.Connection,
    address: AddressKey,
    password_hash: str,
    quota_bytes: int,
    created: str,
    scram: str | None = None,
) -> User:
    """The account with its default mailboxes, each subscribed."""
    _require_domain(conn, address.domain)
    _require_unclaimed(conn, address, "user")
    try:
        cur = conn.execute(
            "INSERT INTO users (address, addr_key, domain, password_hash, quota_bytes,"
            " created, scram_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                address.display,
                address.key,
                address.domain,
                password_hash,
                quota_bytes,
                created,
                scram,
            ),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"user {address.display} already exists") from None
    user_id = inserted_id(cur)
    for name, special_use in DEFAULT_MAILBOXES:
        mailboxes.insert_mailbox(conn, user_id, name, special_use)
        mailboxes.subscribe(conn, user_id, name, True)
    return get_user(conn, user_id)


def find_user(conn: sqlite3.Connection, keys: Sequence[str]) -> User | None:
    """The first account found under ``keys`` (from :func:`user_lookup_keys`)."""
    for key in keys:
        row = conn.execute(
            f"SELECT {USER_COLUMNS} FROM users WHERE addr_key = ?", (key,)
        ).fetchone()
        if row is not None:
            return row_to_user(row)
    return None


def get_user(conn: sqlite3.Connection, user_id: int) -> User:
    row = conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"user #{user_id} does not exist")
    return row_to_user(row)


def list_users(conn: sqlite3.Connection, domain: str | None) -> list[User]:
    where, args = _in_domain(domain)
    found = conn.execute(
        f"SELECT {USER_COLUMNS} FROM users{where} ORDER BY domain, addr_key", args
    ).fetchall()
    return [row_to_user(r) for r in found]


def update_user(
    conn: sqlite3.Connection, address: AddressKey, setting: UserSetting, value: str | int
) -> None:
    cur = conn.execute(
        f"UPDATE users SET {setting} = ? WHERE addr_key = ?", (value, address.key)
    )
    if cur.rowcount == 0:
        raise NotFound(f"user {address.given} does not exist")


def set_password(
    conn: sqlite3.Connection, address: AddressKey, password_hash: str, scram: str | None
) -> None:
    """The new hash and the keys of the same password together: never one without the
    other, so no key of an old password outlives it."""
    cur = conn.execute(
        "UPDATE users SET password_hash = ?, scram_sha256 = ? WHERE addr_key = ?",
        (password_hash, scram, address.key),
    )
    if cur.rowcount == 0:
        raise NotFound(f"user {address.given} does not exist")


def add_scram_keys(
    conn: sqlite3.Connection, address: AddressKey, password_hash: str, scram: str
) -> bool:
    """Keys for the password whose hash is ``password_hash``, if that is still the
    account's password; whether they were stored."""
    cur = conn.execute(
        "UPDATE users SET scram_sha256 = ? WHERE addr_key = ? AND password_hash = ?",
        (scram, address.key, password_hash),
    )
    return cur.rowcount > 0


def remove_user(conn: sqlite3.Connection, address: AddressKey) -> None:
    """Mailboxes, messages, expunge records and subscriptions go by cascade; bodies are left
    to garbage collection, which knows whether others still use them."""
    if conn.execute("DELETE FROM users WHERE addr_key = ?", (address.key,)).rowcount == 0:
        raise NotFound(f"user {address.given} does not exist")


# -- aliases -----------------------------------------------------------------------------------


def add_alias(conn: sqlite3.Connection, source: AddressKey, targets: Sequence[str]) -> Alias:
    """Adds ``targets`` after the alias's existing ones (a target already there stays put)."""
    _require_domain(conn, source.domain)
    _require_unclaimed(conn, source, "alias")
    position = conn.execute(
        "SELECT coalesce(max(position), 0) FROM aliases WHERE source_key = ?", (source.key,)
    ).fetchone()[0]
    for target in targets:
        position += 1
        conn.execute(
            "INSERT OR IGNORE INTO aliases (source_key, source, domain, target, position)"
            " VALUES (?, ?, ?, ?, ?)",
            (source.key, source.display, source.domain, target, position),
        )
    return _require(find_alias(conn, source), f"alias {source.display}")


def find_alias(conn: sqlite3.Connection, source: AddressKey) -> Alias | None:
    """Exact lookup; callers try ``@domain`` for the catch-all."""
    found = conn.execute(
        "SELECT source, target FROM aliases WHERE source_key = ? ORDER BY position",
        (source.key,),
    ).fetchall()
    if not found:
        return None
    return Alias(found[0][0], tuple(r[1] for r in found))


def remove_alias(conn: sqlite3.Connection, source: AddressKey, target: str | None) -> None:
    """The whole alias, or only ``target`` (as :func:`clean_address` gives it) from it."""
    if target is None:
        cur = conn.execute("DELETE FROM aliases WHERE source_key = ?", (source.key,))
    else:
        cur = conn.execute(
            "DELETE FROM aliases WHERE source_key = ? AND target = ?", (source.key, target)
        )
    if cur.rowcount == 0:
        raise NotFound(f"alias {source.given}{' -> ' + target if target else ''} does not exist")


def list_aliases(conn: sqlite3.Connection, domain: str | None) -> list[Alias]:
    where, args = _in_domain(domain)
    found = conn.execute(
        f"SELECT source_key, source, target FROM aliases{where} ORDER BY source_key, position",
        args,
    ).fetchall()
    grouped: dict[str, tuple[str, list[str]]] = {}
    for key, display, target in found:
        grouped.setdefault(key, (display, []))[1].append(target)
    return [Alias(display, tuple(ts)) for display, ts in grouped.values()]


# -- groups ------------------------------------------------------------------------------------


def add_group(conn: sqlite3.Connection, address: AddressKey, members: Sequence[str]) -> Group:
    _require_domain(conn, address.domain)
    _require_unclaimed(conn, address, "group")
    try:
        cur = conn.execute(
            "INSERT INTO groups (address, addr_key, domain) VALUES (?, ?, ?)",
            (address.display, address.key, address.domain),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"group {address.display} already exists") from None
    group_id = inserted_id(cur)
    for position, member in enumerate(members, start=1):
        _insert_member(conn, group_id, member, position)
    return _group(conn, address)


def _insert_member(conn: sqlite3.Connection, group_id: int, member: str, position: int) -> bool:
    """False when ``member`` already belongs to the group."""
    return conn.execute(
        "INSERT OR IGNORE INTO group_members (group_id, member, position) VALUES (?, ?, ?)",
        (group_id, member, position),
    ).rowcount > 0


def find_group(conn: sqlite3.Connection, address: AddressKey) -> Group | None:
    """The group with its members in the order they were added."""
    return _load_group(conn, address.key)


def _group_row(conn: sqlite3.Connection, key: str) -> tuple[int, str] | None:
    """The group's (id, address as shown)."""
    row = conn.execute("SELECT id, address FROM groups WHERE addr_key = ?", (key,)).fetchone()
    return None if row is None else (row[0], row[1])


def _load_group(conn: sqlite3.Connection, key: str) -> Group | None:
    row = _group_row(conn, key)
    if row is None:
        return None
    group_id, display = row
    members = conn.execute(
        "SELECT member FROM group_members WHERE group_id = ? ORDER BY position", (group_id,)
    ).fetchall()
    return Group(display, tuple(m[0] for m in members))


def _group(conn: sqlite3.Connection, address: AddressKey) -> Group:
    return _require(find_group(conn, address), f"group {address.given}")


def _group_id(conn: sqlite3.Connection, address: AddressKey) -> int:
    group_id, _ = _require(_group_row(conn, address.key), f"group {address.given}")
    return group_id


def remove_group(conn: sqlite3.Connection, address: AddressKey) -> None:
    if conn.execute("DELETE FROM groups WHERE addr_key = ?", (address.key,)).rowcount == 0:
        raise NotFound(f"group {address.given} does not exist")


def list_groups(conn: sqlite3.Connection, domain: str | None) -> list[Group]:
    where, args = _in_domain(domain)
    keys = conn.execute(f"SELECT addr_key FROM groups{where} ORDER BY addr_key", args)
    return [g for (key,) in keys.fetchall() if (g := _load_group(conn, key)) is not None]


def add_group_member(conn: sqlite3.Connection, address: AddressKey, member: str) -> Group:
    """Adds ``member`` (as :func:`clean_address` gives it) after the existing members."""
    group_id = _group_id(conn, address)
    position = conn.execute(
        "SELECT coalesce(max(position), 0) + 1 FROM group_members WHERE group_id = ?",
        (group_id,),
    ).fetchone()[0]
    if not _insert_member(conn, group_id, member, position):
        raise AlreadyExists(f"{member} is already a member of {address.given}")
    return _group(conn, address)


def remove_group_member(conn: sqlite3.Connection, address: AddressKey, member: str) -> Group:
    group_id = _group_id(conn, address)
    cur = conn.execute(
        "DELETE FROM group_members WHERE group_id = ? AND member = ?", (group_id, member)
    )
    if cur.rowcount == 0:
        raise NotFound(f"{member} is not a member of {address.given}")
    return _group(conn, address)
