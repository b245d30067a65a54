"""Mailbox management in the authenticated state: CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE and NAMESPACE (RFC 9051 §6.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.types import SPECIAL_USES
from mailstead.imap import access, objectid
from mailstead.imap.parse.commands import Command, Create, MailboxArg, Rename
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import User
from mailstead.store.names import SEPARATOR, is_inbox

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def create(session: Session, cmd: Command[Create], user: User) -> Reply:
    args = cmd.args
    # RFC 9051 §6.3.4: a trailing separator only says the client intends to add children.
    name = args.name.rstrip(SEPARATOR) if args.name != SEPARATOR else args.name
    if is_inbox(name):
        raise no("INBOX always exists", "ALREADYEXISTS")
    special = None
    if args.special_use:
        # RFC 6154 §3: we keep one special use per mailbox.
        if len(args.special_use) > 1:
            raise no("Only one special-use attribute per mailbox", "USEATTR")
        wanted = args.special_use[0].lower()
        special = next((u for u in SPECIAL_USES if u.lower() == wanted), None)
        if special is None:
            raise no("Unknown special-use attribute", "USEATTR")
    where = await access.locate(session, user, name)
    if not where.own:
        # RFC 4314 §4: creating in another account needs "k" on the parent; the new
        # mailbox starts with the parent's grants (the store copies them), and a
        # special-use attribute is its owner's business.
        access.require(await access.parent_rights(session, user, where), "k", "CREATE")
        special = None
    box = await session.store.create_mailbox(where.owner_id, where.local, special)
    # RFC 8474 §4: the new mailbox's MAILBOXID in the tagged OK.
    return done("CREATE completed", f"MAILBOXID ({objectid.mailbox_id(box)})")


async def delete(session: Session, cmd: Command[MailboxArg], user: User) -> Reply:
    """RFC 9051 §6.3.5: a mailbox with children loses its messages and stays as \\Noselect;
    a \\Noselect mailbox with children cannot be deleted (NO [INUSE])."""
    name = cmd.args.name
    if is_inbox(name):
        raise no("INBOX cannot be deleted", "CANNOT")
    where = await access.locate(session, user, name)
    if not where.own:
        await access.open_mailbox(session, user, name, "x", "DELETE")  # RFC 4314 §4
        if is_inbox(where.local):
            raise no("INBOX cannot be deleted", "CANNOT")
    selected = session.selection
    if selected is not None and selected.view.name == name:
        session.unselect()  # deleting what we have open: close it quietly first
    await session.store.delete_mailbox(where.owner_id, where.local)
    return done("DELETE completed")


async def rename(session: Session, cmd: Command[Rename], user: User) -> Reply:
    new = cmd.args.new.rstrip(SEPARATOR) or cmd.args.new
    if is_inbox(new):
        raise no("INBOX already exists", "ALREADYEXISTS")
    old = await access.locate(session, user, cmd.args.old)
    to = await access.locate(session, user, new)
    if old.owner_id != to.owner_id:
        raise no("A mailbox cannot be renamed into another account", "CANNOT")
    if not old.own:
        # RFC 4314 §4: "x" on the old name, "k" on the new name's parent.
        await access.open_mailbox(session, user, cmd.args.old, "x", "RENAME")
        if is_inbox(old.local):
            raise no("Another account's INBOX cannot be renamed", "CANNOT")
        access.require(await access.parent_rights(session, user, to), "k", "RENAME")
    await session.store.rename_mailbox(old.owner_id, old.local, to.local)
    return done("RENAME completed")


async def subscribe(session: Session, cmd: Command[MailboxArg], user: User) -> Reply:
    """SUBSCRIBE and UNSUBSCRIBE. RFC 9051 §6.3.7: the subscription list holds names,
    existing or not (LIST shows a missing one as \\NonExistent, RFC 5258 §3.1), as James
    does; unsubscribing always works. Invalid names are still refused by the store
    (NO [CANNOT])."""
    subscribing = cmd.name == "SUBSCRIBE"
    await session.store.set_subscribed(user.id, cmd.args.name, subscribing)
    return done(f"{cmd.name} completed")


async def namespace(session: Session, cmd: Command[None]) -> Reply:
    """RFC 9051 §6.3.10 / RFC 2342: the personal namespace and the other users' (another
    account's mailboxes, by its address); no shared namespace: a team mailbox is an
    account of its own (decision 0028)."""
    sep = session.separator
    other = session.mailbox_name(access.OTHER_USERS + SEPARATOR)
    session.untagged(b'NAMESPACE (("" ' + sep + b")) ((" + other + b" " + sep + b")) NIL")
    return done("NAMESPACE completed")
