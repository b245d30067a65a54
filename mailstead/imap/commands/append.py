"""APPEND (RFC 9051 §6.3.12) with UIDPLUS APPENDUID (RFC 4315), APPENDLIMIT (RFC 7889),
LITERAL+ (RFC 7888) and literal8 (RFC 3516). The size was checked before the continuation
was sent (session read loop); here the message is stored and acknowledged once durable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.imap.parse.commands import Append, Command
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import User

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def append(session: Session, cmd: Command[Append], user: User) -> Reply:
    args = cmd.args
    if args.message is None:  # spooled, until the budgets refused it
        raise no("Too much data arriving at once, try again later", "UNAVAILABLE")
    if len(args.message) > session.settings.limits.max_message_size:
        raise no("Message too big", "TOOBIG")
    if not args.message:
        raise no("Empty message")  # RFC 9051 §6.3.12 wants a message
    try:
        box = await session.store.get_mailbox(user.id, args.name)
    except (NotFound, InvalidName) as exc:
        # RFC 9051 §6.3.12: TRYCREATE tells the client CREATE could help.
        raise no("Mailbox does not exist", "TRYCREATE") from exc
    if box.noselect:  # RFC 9051 §6.3.5
        raise no("Mailbox is \\Noselect and cannot hold messages", "CANNOT")
    flags = [f for f in args.flags if f != "\\Recent"]
    result = await session.store.append(box.id, args.message, flags, args.date)
    # A new keyword in the selected mailbox is announced (FLAGS, RFC 9051 §7.3.5) with the
    # EXISTS at the flush after this command: the store's EXISTS event carries the flags.
    return done("APPEND completed", f"APPENDUID {result.uidvalidity} {result.uid}")
