"""Mailbox management in the authenticated state: CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE and NAMESPACE (RFC 9051 §6.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.types import SPECIAL_USES
from mailstead.imap import objectid
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
    box = await session.store.create_mailbox(user.id, name, special)
    # RFC 8474 §4: the new mailbox's MAILBOXID in the tagged OK.
    return done("CREATE completed", f"MAILBOXID ({objectid.mailbox_id(box)})")


async def delete(session: Session, cmd: Command[MailboxArg], user: User) -> Reply:
    """RFC 9051 §6.3.5: a mailbox with children loses its messages and stays as \\Noselect;
    a \\Noselect mailbox with children cannot be deleted (NO [INUSE])."""
    name = cmd.args.name
    if is_inbox(name):
        raise no("INBOX cannot be deleted", "CANNOT")
    selected = session.selection
    if selected is not None and selected.view.name == name:
        session.unselect()  # deleting what we have open: close it quietly first
    await session.store.delete_mailbox(user.id, name)
    return done("DELETE completed")


async def rename(session: Session, cmd: Command[Rename], user: User) -> Reply:
    new = cmd.args.new.rstrip(SEPARATOR) or cmd.args.new
    if is_inbox(new):
        raise no("INBOX already exists", "ALREADYEXISTS")
    await session.store.rename_mailbox(user.id, cmd.args.old, new)
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
    """RFC 9051 §6.3.10 / RFC 2342: one personal namespace, no shared or other users'."""
    session.untagged(b'NAMESPACE (("" ' + session.separator + b")) NIL NIL")
    return done("NAMESPACE completed")
