"""METADATA and METADATA-SERVER (RFC 5464): GETMETADATA and SETMETADATA, on the server
(mailbox ``""``) and on mailboxes (decision 0029).

What an account sees:

- Its own entries, ``/private/...`` and ``/shared/...``, on each mailbox and on the server,
  kept by the store (:class:`~mailstead.store.interfaces.Metadata`) as the client wrote
  them, vendor entries included. mailstead shares no mailboxes between accounts, so a
  ``/shared`` entry is seen by whoever can see the mailbox: its owner; a ``/shared`` server
  entry is the account's too, as in Dovecot.
- Entries made from configuration, read-only: the server's ``/shared/admin`` (§6.2.2,
  ``[imap] server_admin``) and ``/shared/comment`` (§6.2.1, ``[imap] server_comment``).
- A mailbox's ``/private/specialuse`` (RFC 6154 §4): its special-use attribute. It is
  read-only (NO [CANNOT]): special-use is given when a mailbox is created (CREATE-SPECIAL-USE).

Limits (docs/limits.md): a value longer than ``limits.imap_metadata_max_size`` is
``NO [METADATA MAXSIZE n]`` and an account holding more than
``limits.imap_metadata_max_entries`` entries is ``NO [METADATA TOOMANY]``, both changing
nothing (§4.3). ``[METADATA NOPRIVATE]`` is never needed: every mailbox takes private
entries. Entries are not counted against the quota.

Entries that do not exist are answered with NIL when asked for by name (DEPTH 0), like
Dovecot; DEPTH 1 and infinity list only entries that exist (§4.2.2).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailstead.core.errors import TooMany
from mailstead.imap import response
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.metadata import Depth, GetMetadata, SetMetadata
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import Mailbox, User

if TYPE_CHECKING:
    from mailstead.imap.session import Session

#: The server (§3.1): entries of the server, not of a mailbox.
SERVER = ""
#: RFC 6154 §4: a mailbox's special-use attribute as an entry.
SPECIALUSE = "/private/specialuse"
ADMIN = "/shared/admin"
COMMENT = "/shared/comment"
#: ASTRING-CHAR (RFC 9051 §9): what may go unquoted.
_ATOM = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\]+")


def configured_entries(session: Session) -> dict[str, bytes]:
    """The server entries that come from configuration (read-only)."""
    imap = session.settings.imap
    found = {ADMIN: imap.server_admin, COMMENT: imap.server_comment}
    return {name: value.encode() for name, value in found.items() if value}


def _read_only(mailbox: str) -> frozenset[str]:
    return frozenset({ADMIN, COMMENT}) if mailbox == SERVER else frozenset({SPECIALUSE})


async def _entries(session: Session, user: User, mailbox: str) -> dict[str, bytes]:
    """Every entry of ``mailbox`` (or of the server), stored and derived."""
    if mailbox == SERVER:
        entries = await session.store.get_metadata(user.id, None)
        entries.update(configured_entries(session))
        return entries
    box = await session.store.get_mailbox(user.id, mailbox)
    entries = await session.store.get_metadata(user.id, box.id)
    entries.update(_derived(box))
    return entries


def _derived(box: Mailbox) -> dict[str, bytes]:
    # RFC 6154 §4: the value is the mailbox's special-use attributes, space separated.
    return {SPECIALUSE: box.special_use.encode()} if box.special_use else {}


def select_entries(
    entries: dict[str, bytes], wanted: tuple[str, ...], depth: Depth
) -> list[tuple[str, bytes | None]]:
    """The (entry, value) pairs GETMETADATA answers, in the order asked, each once:
    DEPTH 0 names each entry (NIL when it is not there); DEPTH 1 adds the entries one
    level below, DEPTH infinity all those below (§4.2.2), sorted by name."""
    out: dict[str, bytes | None] = {}
    for name in wanted:
        if depth is Depth.ZERO:
            out.setdefault(name, entries.get(name))
            continue
        if name in entries:
            out.setdefault(name, entries[name])
        prefix = name + "/"
        for other in sorted(entries):
            if not other.startswith(prefix):
                continue
            if depth is Depth.ONE and "/" in other[len(prefix) :]:
                continue
            out.setdefault(other, entries[other])
    return list(out.items())


def entry_octets(name: str) -> bytes:
    """An entry name as an atom when it is one (as Dovecot sends them), else quoted: a
    name may hold spaces, quotes or parentheses (§3.2 forbids only controls, * and %)."""
    raw = name.encode()
    return raw if _ATOM.fullmatch(raw) else response.string(raw, utf8=False)


def value_octets(value: bytes | None) -> bytes:
    """value = nstring / literal8 (§5): literal8 for a value with NUL, a literal for
    8-bit or long text, a quoted string otherwise."""
    if value is None:
        return b"NIL"
    if b"\x00" in value:
        return response.literal(value, binary=True)
    return response.string(value, utf8=False)


async def getmetadata(session: Session, cmd: Command[GetMetadata], user: User) -> Reply:
    """RFC 5464 §4.2: one METADATA response with the entries asked for; values longer than
    MAXSIZE are left out and the longest of them named in ``[METADATA LONGENTRIES n]``
    (§4.2.1)."""
    args = cmd.args
    entries = await _entries(session, user, args.mailbox)
    pairs = select_entries(entries, args.entries, args.depth)
    longest = 0
    if args.maxsize is not None:
        kept: list[tuple[str, bytes | None]] = []
        for name, value in pairs:
            if value is not None and len(value) > args.maxsize:
                longest = max(longest, len(value))
            else:
                kept.append((name, value))
        pairs = kept
    if pairs:
        body = b" ".join(entry_octets(name) + b" " + value_octets(value) for name, value in pairs)
        session.untagged(b"METADATA " + session.mailbox_name(args.mailbox) + b" (" + body + b")")
    if longest:
        return done("GETMETADATA completed", f"METADATA LONGENTRIES {longest}")
    return done("GETMETADATA completed")


async def setmetadata(session: Session, cmd: Command[SetMetadata], user: User) -> Reply:
    """RFC 5464 §4.3: set or remove (NIL) every entry given, all or none."""
    args = cmd.args
    limits = session.settings.limits
    read_only = _read_only(args.mailbox)
    changes: dict[str, bytes | None] = {}
    for name, value in args.values:
        if name in read_only:
            raise no(f"{name} cannot be changed here", "CANNOT")
        if value is not None and len(value) > limits.imap_metadata_max_size:
            raise no("Value too long", f"METADATA MAXSIZE {limits.imap_metadata_max_size}")
        changes[name] = value  # the same entry twice: the last value counts
    mailbox_id: int | None = None
    if args.mailbox != SERVER:
        mailbox_id = (await session.store.get_mailbox(user.id, args.mailbox)).id
    try:
        await session.store.set_metadata(
            user.id, mailbox_id, changes, max_entries=limits.imap_metadata_max_entries
        )
    except TooMany as exc:
        raise no("Too many metadata entries", "METADATA TOOMANY") from exc
    return done("SETMETADATA completed")
