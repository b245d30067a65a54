"""STATUS (RFC 9051 §6.3.11), and the status items LIST-STATUS reports (RFC 5819)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.imap import access, objectid
from mailstead.imap.parse.commands import Command, Status, StatusItem
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import Mailbox, User

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def status_items(
    session: Session, box: Mailbox, items: Iterable[StatusItem], viewer: User
) -> bytes:
    """``(MESSAGES 3 UIDNEXT 4 ...)``, each item once, in the order :class:`StatusItem`
    declares them whatever the order asked (RFC 9051 §6.3.11, RFC 8438 SIZE, RFC 7889
    APPENDLIMIT, RFC 9208 §4.1.4 DELETED-STORAGE); RECENT is the rev1 count of messages no
    session has seen yet. In another account's mailbox UNSEEN counts by ``viewer``'s own
    \\Seen (decision 0028)."""
    asked = set(items)
    values: list[str] = []
    for item in (i for i in StatusItem if i in asked):
        value: int | str
        match item:
            case StatusItem.MESSAGES:
                value = box.message_count
            case StatusItem.UIDNEXT:
                value = box.uidnext
            case StatusItem.UIDVALIDITY:
                value = box.uidvalidity
            case StatusItem.UNSEEN if box.user_id != viewer.id:
                value = box.message_count - len(await session.store.private_seen(box.id,
                                                                                  viewer.id))
            case StatusItem.UNSEEN:
                value = box.unseen_count
            case StatusItem.DELETED:
                value = box.deleted_count
            case StatusItem.SIZE:
                value = box.size_bytes
            case StatusItem.DELETED_STORAGE:
                # RFC 9208 §4.1.4: the storage EXPUNGE would free, in octets like SIZE: the
                # sum of the \Deleted messages' RFC822.SIZE, exactly what EXPUNGE takes off
                # the account's quota usage (which counts every message, shared bodies too).
                value = box.deleted_bytes
            case StatusItem.APPENDLIMIT:
                value = session.settings.limits.max_message_size
            case StatusItem.HIGHESTMODSEQ:
                value = box.highestmodseq  # RFC 7162 §3.1.6
            case StatusItem.MAILBOXID:
                value = f"({objectid.mailbox_id(box)})"  # RFC 8474 §4
            case StatusItem.RECENT:
                metas = await session.store.list_messages(box.id)
                value = len(session.ctx.recent.unclaimed(
                    (box.id, box.uidvalidity), (int(m.uid) for m in metas)
                ))
        values.append(f"{item} {value}")
    return ("(" + " ".join(values) + ")").encode()


async def status(session: Session, cmd: Command[Status], user: User) -> Reply:
    args = cmd.args
    try:
        # RFC 4314 §4: STATUS needs "r".
        box, _ = await access.open_mailbox(session, user, args.name, "r", "STATUS")
    except (NotFound, InvalidName) as exc:
        raise no("No such mailbox", "NONEXISTENT") from exc
    if box.noselect:  # RFC 9051 §6.3.5: nothing to report on a name kept for its children
        raise no("Mailbox is \\Noselect", "NONEXISTENT")
    if StatusItem.HIGHESTMODSEQ in args.items:
        session.enable_condstore()
    data = await status_items(session, box, args.items, user)
    session.untagged(b"STATUS " + session.mailbox_name(box.name) + b" " + data)
    return done("STATUS completed")
