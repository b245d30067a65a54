"""Whose mailbox a name means, and what the logged-in user may do with it (RFC 4314 ACL,
RFC 2342 namespaces; decision 0028).

A name in store terms (``/`` separated, after :class:`~mailstead.imap.names.NameMapper`)
is either the user's own (the personal namespace ``""``) or, under
:data:`OTHER_USERS`, ``Other Users/<owner address>/<owner's name>``: another account's
mailbox. Every command that takes a mailbox name goes through :func:`locate` and
:func:`open_mailbox`, which answer with the owner, the owner's name for it, the name as
this client calls it, and the rights, and refuse with the codes RFC 4314 §4 asks for:
``NO [NONEXISTENT]`` when the user may neither list nor read the mailbox (its existence
is not revealed), ``NO [NOPERM]`` when it may see it but lacks the right.

Rights are read from the store each time a command needs them, never cached in the
session, so a grant or a revoke applies from the grantee's next command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.rights import RIGHTS, overlay
from mailstead.core.rights import flag_right as rights_flag_right
from mailstead.imap.replies import no
from mailstead.imap.states import Selected
from mailstead.store.models import Mailbox, MessageMeta, User
from mailstead.store.names import SEPARATOR

if TYPE_CHECKING:
    from mailstead.imap.session import Session

#: The other users' namespace prefix (RFC 2342 §5), without its separator.
OTHER_USERS = "Other Users"

#: The rights that change a selected mailbox: with none of them SELECT is READ-ONLY.
CHANGE_RIGHTS = "stwe"


async def own_view(
    session: Session, selected: Selected, metas: list[MessageMeta]
) -> list[MessageMeta]:
    """``metas`` of the selected mailbox with the user's own \\Seen, when the mailbox is
    another account's; unchanged when it is the user's. FETCH, STORE and SEARCH read
    messages through here, so "r" taken away while the mailbox is selected applies at
    the next of them (``NO [NOPERM]``)."""
    view = selected.view
    if view.private_seen is None:
        return metas
    require(await selected_rights(session, selected), "r", "reading it")
    seen = await session.store.private_seen(view.mailbox_id, selected.user.id)
    view.private_seen = {int(u) for u in seen}
    return [replace(m, flags=overlay(m.flags, m.uid in seen)) for m in metas]


def flag_right(flag: str) -> str:
    """The right changing ``flag`` needs (RFC 4314 §4; :func:`mailstead.core.rights.flag_right`)."""
    return rights_flag_right(flag)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a name points: the owner's account id and address, the owner's own name for
    the mailbox, and the name as this session calls it."""

    owner_id: int
    owner: str
    local: str
    path: str
    own: bool


def in_other_users(name: str) -> bool:
    return name == OTHER_USERS or name.startswith(OTHER_USERS + SEPARATOR)


def shared_path(owner: str, local: str) -> str:
    """Another account's mailbox as this session names it (store separator)."""
    return f"{OTHER_USERS}{SEPARATOR}{owner}{SEPARATOR}{local}"


def owner_prefix(owner: str) -> str:
    return f"{OTHER_USERS}{SEPARATOR}{owner}"


async def locate(session: Session, user: User, name: str) -> Location:
    """The account and name ``name`` points to. An unknown owner, or a name that stops at
    the namespace or the owner, is ``NO [NONEXISTENT]``: no such mailbox."""
    if not in_other_users(name):
        return Location(user.id, user.address, name, name, True)
    parts = name[len(OTHER_USERS) + 1 :].split(SEPARATOR)
    # Under the "." separator the dots of the address came in as levels: the owner is the
    # longest run of levels that, joined by dots again, is an account (decision 0028).
    widths = range(len(parts) - 1, 0, -1) if not session.names.identity else (1,)
    for width in widths:
        candidate = ".".join(parts[:width])
        if "@" not in candidate or width >= len(parts):
            continue
        owner = await session.store.find_user(candidate)
        if owner is None or owner.address.lower() != candidate.lower():
            continue  # no such account, or a plus address of one: not its name here
        local = SEPARATOR.join(parts[width:])
        if owner.id == user.id:
            return Location(user.id, user.address, local, name, True)
        return Location(owner.id, owner.address, local, name, False)
    raise no("No such mailbox", "NONEXISTENT")


def require(rights: str, needed: str, what: str) -> None:
    """``NO [NOPERM]`` unless every right in ``needed`` is granted."""
    if any(r not in rights for r in needed):
        raise no(f"Permission denied: {what} needs the right(s) {needed!r}", "NOPERM")


async def rights_on(session: Session, user: User, where: Location, box: Mailbox) -> str:
    """The user's rights on a mailbox: all of them on its own."""
    if where.own:
        return RIGHTS
    return await session.store.rights_for(box.id, user.id)


async def open_mailbox(
    session: Session, user: User, name: str, needed: str, what: str
) -> tuple[Mailbox, str]:
    """The mailbox ``name`` means, named as the client calls it (a shared one without its
    special-use attribute, which belongs to its owner), and the user's rights on it,
    which must include ``needed``. NotFound and InvalidName pass through, as for the
    user's own names, and so does a mailbox the user may neither list nor read."""
    where = await locate(session, user, name)
    box = await session.store.get_mailbox(where.owner_id, where.local)
    rights = await rights_on(session, user, where, box)
    if not where.own:
        if "l" not in rights and "r" not in rights:
            raise NotFound(f"mailbox {name} does not exist")  # RFC 4314 §4: not revealed
        box = replace(box, name=where.path, special_use=None)
    require(rights, needed, what)
    return box, rights


async def selected_rights(session: Session, selected: Selected) -> str:
    """The user's rights on the selected mailbox now (re-read: they may have changed)."""
    if selected.view.owner_id == selected.user.id:
        return RIGHTS
    try:
        return await session.store.rights_for(selected.view.mailbox_id, selected.user.id)
    except NotFound:
        return ""  # deleted meanwhile: the flush that follows says BYE


async def parent_rights(session: Session, user: User, where: Location) -> str:
    """The rights on the parent of ``where`` (CREATE and RENAME's new name need "k"
    there, RFC 4314 §4); none for a top level of another account."""
    parent = where.local.rpartition(SEPARATOR)[0]
    if where.own:
        return RIGHTS
    if not parent:
        return ""
    try:
        box = await session.store.get_mailbox(where.owner_id, parent)
    except (NotFound, InvalidName):
        return ""
    return await session.store.rights_for(box.id, user.id)


__all__ = [
    "CHANGE_RIGHTS",
    "OTHER_USERS",
    "Location",
    "flag_right",
    "in_other_users",
    "locate",
    "open_mailbox",
    "overlay",
    "own_view",
    "owner_prefix",
    "parent_rights",
    "require",
    "rights_on",
    "selected_rights",
    "shared_path",
]
