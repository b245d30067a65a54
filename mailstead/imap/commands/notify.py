"""NOTIFY (RFC 5465 §3.1): choose the unsolicited notifications this session gets.

The grammar (imap/parse/notify.py) has refused with BAD whatever the RFC answers with BAD;
what is left here: events this server does not report (NO [BADEVENT (the supported
ones)]), the subscription to the account's changes, and with ``STATUS`` one STATUS per
watched mailbox before the tagged OK. The delivery itself is the session's
(``Session.deliver_notifications``) and the bookkeeping imap/notify.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName
from mailstead.imap.commands.status import status_items
from mailstead.imap.notify import (
    SUPPORTED,
    Notifications,
    status_report,
    watched_for_status,
)
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.notify import EventGroup, NotifyArgs
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import User

if TYPE_CHECKING:
    from mailstead.imap.session import Session

#: RFC 5465 §3.1: the BADEVENT response code lists every event the server supports.
BADEVENT = "BADEVENT (" + " ".join(SUPPORTED) + ")"


def _store_names(session: Session, group: EventGroup) -> EventGroup:
    """The group's mailbox names in store terms; a name that cannot exist here (it holds
    the store's separator) can match nothing, and RFC 5465 §6.5 and §6.6 ignore names of
    mailboxes that do not exist."""
    names: list[str] = []
    for name in group.names:
        try:
            names.append(session.names.to_store(name))
        except InvalidName:
            continue
    return EventGroup(group.kind, tuple(names), group.events, group.fetch, group.unknown)


async def notify(session: Session, cmd: Command[NotifyArgs], user: User) -> Reply:
    args = cmd.args
    if args.groups is None:
        session.stop_notify()  # NOTIFY NONE
        return done("NOTIFY completed")
    if any(g.unknown or not g.events <= set(SUPPORTED) for g in args.groups):
        # RFC 5465 §3.1: NO, not BAD, and nothing of the earlier NOTIFY changes.
        raise no("Unsupported NOTIFY events", BADEVENT)
    groups = tuple(_store_names(session, g) for g in args.groups)
    store = session.store
    # Subscribe before reading, so that no change slips between the read and the watch.
    subscription = store.changes.subscribe(user.id)
    try:
        boxes = await store.list_mailboxes(user.id)
        subscribed = await store.list_subscriptions(user.id)
    except BaseException:
        subscription.close()
        raise
    notifications = Notifications(
        groups,
        subscription,
        boxes,
        subscribed,
        max_backlog=session.settings.limits.imap_notify_max_backlog,
    )
    session.start_notify(notifications)
    if args.status:
        # RFC 5465 §3.1: a STATUS for each watched mailbox other than the selected one,
        # before the tagged OK.
        selected = session.selection
        items = status_report(session.condstore)
        watched = watched_for_status(
            notifications.watch,
            boxes,
            notifications.subscribed,
            selected.view.mailbox_id if selected is not None else None,
        )
        for box in watched:
            data = await status_items(session, box, items, user)
            session.untagged(b"STATUS " + session.mailbox_name(box.name) + b" " + data)
    return done("NOTIFY completed")
