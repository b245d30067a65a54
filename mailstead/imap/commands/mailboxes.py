"""Mailbox management in the authenticated state: CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, STATUS, NAMESPACE (RFC 9051 §6.3), ENABLE (RFC 5161)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.types import SPECIAL_USES
from mailstead.imap import objectid
from mailstead.imap.parse.commands import Command, Create, Enable, MailboxArg, Rename, Status
from mailstead.imap.session import CommandError, Reply
from mailstead.store.models import Mailbox
from mailstead.store.names import SEPARATOR, is_inbox

if TYPE_CHECKING:
    from mailstead.imap.session import Session

# What ENABLE can switch on (RFC 9051 §6.3.1, RFC 6855 §3, RFC 7162 §3.1, §3.2.3).
ENABLEABLE = ("IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC")


async def enable(session: Session, cmd: Command) -> Reply:
    """RFC 5161 §3.1: unknown capabilities are ignored; ENABLED lists what is newly on."""
    args = cmd.args
    assert isinstance(args, Enable)
    newly = []
    for cap in args.capabilities:
        if cap in ENABLEABLE and cap not in session.enabled and cap not in newly:
            newly.append(cap)
    session.untagged(
        "ENABLED" + "".join(" " + ("IMAP4rev2" if c == "IMAP4REV2" else c) for c in newly)
    )
    for cap in newly:
        if cap == "CONDSTORE":
            session.enable_condstore()  # and HIGHESTMODSEQ when a mailbox is selected
        else:
            session.enabled.add(cap)
        if cap == "QRESYNC":
            session.enable_condstore()  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    return Reply(text="ENABLE completed")


async def create(session: Session, cmd: Command) -> Reply:
    args = cmd.args
    assert isinstance(args, Create) and session.user is not None
    # RFC 9051 §6.3.4: a trailing separator only says the client intends to add children.
    name = args.name.rstrip(SEPARATOR) if args.name != SEPARATOR else args.name
    if is_inbox(name):
        raise CommandError("NO", "INBOX always exists", "ALREADYEXISTS")
    special = None
    if args.special_use:
        # RFC 6154 §3: we keep one special use per mailbox.
        if len(args.special_use) > 1:
            raise CommandError("NO", "Only one special-use attribute per mailbox", "USEATTR")
        special = next((u for u in SPECIAL_USES if u.lower() == args.special_use[0].lower()),
                       None)
        if special is None:
            raise CommandError("NO", "Unknown special-use attribute", "USEATTR")
    box = await session.store.create_mailbox(session.user.id, name, special)
    # RFC 8474 §4: the new mailbox's MAILBOXID in the tagged OK.
    return Reply(text="CREATE completed", code=f"MAILBOXID ({objectid.mailbox_id(box)})")


async def delete(session: Session, cmd: Command) -> Reply:
    """RFC 9051 §6.3.5: a mailbox with children loses its messages and stays as \\Noselect;
    a \\Noselect mailbox with children cannot be deleted (NO [INUSE])."""
    args = cmd.args
    assert isinstance(args, MailboxArg) and session.user is not None
    if is_inbox(args.name):
        raise CommandError("NO", "INBOX cannot be deleted", "CANNOT")
    if session.selected is not None and session.selected.name == args.name:
        session.unselect()  # deleting what we have open: close it quietly first
    await session.store.delete_mailbox(session.user.id, args.name)
    return Reply(text="DELETE completed")


async def rename(session: Session, cmd: Command) -> Reply:
    args = cmd.args
    assert isinstance(args, Rename) and session.user is not None
    new = args.new.rstrip(SEPARATOR) or args.new
    if is_inbox(new):
        raise CommandError("NO", "INBOX already exists", "ALREADYEXISTS")
    await session.store.rename_mailbox(session.user.id, args.old, new)
    return Reply(text="RENAME completed")


async def subscribe(session: Session, cmd: Command) -> Reply:
    """RFC 9051 §6.3.7: the subscription list holds names, existing or not (LIST shows a
    missing one as \\NonExistent, RFC 5258 §3.1), as James does; unsubscribing always works.
    Invalid names are still refused by the store (NO [CANNOT])."""
    args = cmd.args
    assert isinstance(args, MailboxArg) and session.user is not None
    await session.store.set_subscribed(session.user.id, args.name, cmd.name == "SUBSCRIBE")
    return Reply(text=f"{cmd.name} completed")


async def namespace(session: Session, cmd: Command) -> Reply:
    """RFC 9051 §6.3.10 / RFC 2342: one personal namespace, no shared or other users'."""
    session.untagged(b'NAMESPACE (("" ' + session.separator + b")) NIL NIL")
    return Reply(text="NAMESPACE completed")


#: The order STATUS and LIST-STATUS answer in, whatever the order asked. RFC 9051 §6.3.11
#: leaves it open; this is Apache James's order (MailboxStatusResponseEncoder), with MAILBOXID
#: last as its scripts expect, so that each item has one place in every answer.
STATUS_ORDER = (
    "APPENDLIMIT", "MESSAGES", "SIZE", "DELETED", "DELETED-STORAGE", "RECENT", "UIDNEXT",
    "HIGHESTMODSEQ", "UIDVALIDITY", "UNSEEN", "MAILBOXID",
)


async def status_items(session: Session, box: Mailbox, items: tuple[str, ...]) -> bytes:
    """``(MESSAGES 3 UIDNEXT 4 ...)`` in :data:`STATUS_ORDER`, each item once (RFC 9051
    §6.3.11, RFC 8438 SIZE, RFC 7889 APPENDLIMIT, RFC 9208 §4.1.4 DELETED-STORAGE); RECENT
    is the rev1 count of messages no session has seen yet."""
    values: list[str] = []
    asked = set(items)
    for item in (i for i in STATUS_ORDER if i in asked):
        value: int | str
        if item == "MESSAGES":
            value = box.message_count
        elif item == "UIDNEXT":
            value = box.uidnext
        elif item == "UIDVALIDITY":
            value = box.uidvalidity
        elif item == "UNSEEN":
            value = box.unseen_count
        elif item == "DELETED":
            value = box.deleted_count
        elif item == "SIZE":
            value = box.size_bytes
        elif item == "DELETED-STORAGE":
            # RFC 9208 §4.1.4: the storage EXPUNGE would free, in octets like SIZE: the sum
            # of the \Deleted messages' RFC822.SIZE, exactly what EXPUNGE takes off the
            # account's quota usage (which counts every message's size, shared bodies too).
            value = box.deleted_bytes
        elif item == "APPENDLIMIT":
            value = session.settings.limits.max_message_size
        elif item == "HIGHESTMODSEQ":
            value = box.highestmodseq  # RFC 7162 §3.1.6
        elif item == "MAILBOXID":
            value = f"({objectid.mailbox_id(box)})"  # RFC 8474 §4
        else:  # RECENT
            metas = await session.store.list_messages(box.id)
            value = len(session.ctx.recent.unclaimed(
                (box.id, box.uidvalidity), (int(m.uid) for m in metas)
            ))
        values.append(f"{item} {value}")
    return ("(" + " ".join(values) + ")").encode()


async def status(session: Session, cmd: Command) -> Reply:
    args = cmd.args
    assert isinstance(args, Status) and session.user is not None
    try:
        box = await session.store.get_mailbox(session.user.id, args.name)
    except (NotFound, InvalidName) as exc:
        raise CommandError("NO", "No such mailbox", "NONEXISTENT") from exc
    if box.noselect:  # RFC 9051 §6.3.5: nothing to report on a name kept for its children
        raise CommandError("NO", "Mailbox is \\Noselect", "NONEXISTENT")
    if "HIGHESTMODSEQ" in args.items:
        session.enable_condstore()
    data = await status_items(session, box, args.items)
    session.untagged(b"STATUS " + session.mailbox_name(box.name) + b" " + data)
    return Reply(text="STATUS completed")

