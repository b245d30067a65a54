"""SETACL, DELETEACL, GETACL, LISTRIGHTS and MYRIGHTS (RFC 4314 §3; decision 0028).

Identifiers are account addresses and ``anyone``; the owner always has every right and
is listed first by GETACL. Every command but MYRIGHTS needs "a" on the mailbox
(RFC 4314 §4); MYRIGHTS needs any right at all. Rights strings are parsed by
:mod:`mailstead.core.rights`, the one parser the store and the admin commands use too.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.rights import ANYONE, RIGHTS, apply_change, with_obsolete
from mailstead.imap import access, response
from mailstead.imap.parse.acl import AclIdentifier, AclTarget, SetAcl
from mailstead.imap.parse.commands import Command
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import Mailbox, User

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def _administered(session: Session, user: User, name: str, what: str) -> Mailbox:
    """The mailbox, when the user holds "a" on it."""
    try:
        box, _ = await access.open_mailbox(session, user, name, "a", what)
    except (NotFound, InvalidName) as exc:
        raise no("No such mailbox", "NONEXISTENT") from exc
    return box


async def _owner(session: Session, box: Mailbox) -> str:
    return (await session.store.get_user(box.user_id)).address


def _identifier(identifier: str) -> str:
    if identifier.startswith("-"):
        # RFC 4314 §2: negative rights are optional; we keep none.
        raise no("Negative rights are not supported", "CANNOT")
    return ANYONE if identifier.lower() == ANYONE else identifier


#: What may go out as an atom (RFC 9051 ATOM-CHAR, less "]"): addresses, rights.
_ATOM = re.compile(r"[A-Za-z0-9!#$&'+\-./=?@^_`|~:;<>,]+")


def _astring(session: Session, value: str) -> bytes:
    """An identifier or rights as an atom when it can be one (as Dovecot and James send
    them), else a quoted string or literal."""
    if _ATOM.fullmatch(value):
        return value.encode()
    return response.string(value, utf8=session.utf8)


async def setacl(session: Session, cmd: Command[SetAcl], user: User) -> Reply:
    args = cmd.args
    identifier = _identifier(args.identifier)
    box = await _administered(session, user, args.name, "SETACL")
    if identifier.lower() == (await _owner(session, box)).lower():
        raise no("The owner always has every right", "CANNOT")
    current = ""
    if args.rights[:1] in ("+", "-"):
        current = next(
            (
                e.rights
                for e in await session.store.get_acl(box.id)
                if e.identifier.lower() == identifier.lower()
            ),
            "",
        )
    try:
        rights = apply_change(current, args.rights)
        await session.store.set_acl(box.id, identifier, rights)
    except InvalidName as exc:
        raise no(f"Invalid rights: {exc}", "CLIENTBUG") from exc
    except NotFound as exc:
        raise no("No such identifier (an account address or anyone)", "CANNOT") from exc
    return done("SETACL completed")


async def deleteacl(session: Session, cmd: Command[AclIdentifier], user: User) -> Reply:
    identifier = _identifier(cmd.args.identifier)
    box = await _administered(session, user, cmd.args.name, "DELETEACL")
    if identifier.lower() == (await _owner(session, box)).lower():
        raise no("The owner always has every right", "CANNOT")
    # RFC 4314 §3.2: removing what is not there (an unknown identifier) changes nothing.
    with contextlib.suppress(NotFound):
        await session.store.set_acl(box.id, identifier, "")
    return done("DELETEACL completed")


async def getacl(session: Session, cmd: Command[AclTarget], user: User) -> Reply:
    box = await _administered(session, user, cmd.args.name, "GETACL")
    items = [_astring(session, await _owner(session, box)) + b" " + with_obsolete(RIGHTS).encode()]
    for entry in await session.store.get_acl(box.id):
        items.append(
            _astring(session, entry.identifier)
            + b" "
            + _astring(session, with_obsolete(entry.rights))
        )
    session.untagged(b"ACL " + session.mailbox_name(box.name) + b" " + b" ".join(items))
    return done("GETACL completed")


async def listrights(session: Session, cmd: Command[AclIdentifier], user: User) -> Reply:
    """RFC 4314 §3.4: the rights always granted, then each right that can be granted on
    its own. Every right is independent here (RIGHTS=texk); the owner's are all fixed."""
    identifier = _identifier(cmd.args.identifier)
    box = await _administered(session, user, cmd.args.name, "LISTRIGHTS")
    name = session.mailbox_name(box.name)
    if identifier.lower() == (await _owner(session, box)).lower():
        answer = with_obsolete(RIGHTS).encode()
    else:
        answer = b'"" ' + " ".join(RIGHTS).encode() + b" c d"
    session.untagged(b"LISTRIGHTS " + name + b" " + _astring(session, identifier) + b" " + answer)
    return done("LISTRIGHTS completed")


async def myrights(session: Session, cmd: Command[AclTarget], user: User) -> Reply:
    """RFC 4314 §3.5: any right on the mailbox lets the user ask."""
    try:
        box, rights = await access.open_mailbox(session, user, cmd.args.name, "", "MYRIGHTS")
    except (NotFound, InvalidName) as exc:
        raise no("No such mailbox", "NONEXISTENT") from exc
    session.untagged(
        b"MYRIGHTS "
        + session.mailbox_name(box.name)
        + b" "
        + _astring(session, with_obsolete(rights))
    )
    return done("MYRIGHTS completed")
