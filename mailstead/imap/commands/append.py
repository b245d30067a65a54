"""APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469), UIDPLUS
APPENDUID (RFC 4315), APPENDLIMIT (RFC 7889), LITERAL+ (RFC 7888) and literal8 (RFC 3516).
Each literal's size was checked before its continuation was sent (session read loop); here
CATENATE messages are assembled, then the messages are stored, all in one transaction, and
acknowledged once durable."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.imap import access, response
from mailstead.imap.catenate import assemble
from mailstead.imap.parse.commands import Append, AppendMessage, Catenate, Command
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import Mailbox, NewMessage, User

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def append(session: Session, cmd: Command[Append], user: User) -> Reply:
    # RFC 3502 §6.3.11: every message is checked (and, RFC 4469, assembled) before any is
    # stored; one refused refuses them all.
    batch = [await new_message(session, user, m) for m in cmd.args.messages]
    box = await target_mailbox(session, user, cmd.args.name)
    if box.user_id != user.id:
        # RFC 4314 §4: flags the user may not set in another account's mailbox are left
        # off the stored message, silently ("s" for \Seen, "t" \Deleted, "w" the rest).
        rights = await session.store.rights_for(box.id, user.id)
        batch = [replace(m, flags=frozenset(f for f in m.flags
                                            if access.flag_right(f) in rights))
                 for m in batch]
    if len(batch) == 1:
        one = batch[0]
        results = [await session.store.append(box.id, one.data, one.flags, one.internaldate)]
    else:
        results = await session.store.append_many(box.id, batch)
    # A new keyword in the selected mailbox is announced (FLAGS, RFC 9051 §7.3.5) with the
    # EXISTS at the flush after this command: the store's EXISTS event carries the flags.
    # RFC 4315 §3 (as RFC 3502 §6.3.11 allows): one APPENDUID with the set of new UIDs.
    uids = response.uid_set(int(r.uid) for r in results)
    return done("APPEND completed", f"APPENDUID {results[0].uidvalidity} {uids}")


async def new_message(session: Session, user: User, message: AppendMessage) -> NewMessage:
    """The store's record of one message of APPEND or REPLACE (a CATENATE one assembled
    first), once it passed the checks the session's read loop could not make (budgets,
    emptiness, the assembled size)."""
    data = message.message
    if isinstance(data, Catenate):
        data = await assemble(session, user, data)
    if data is None:  # spooled, until the budgets refused it
        raise no("Too much data arriving at once, try again later", "UNAVAILABLE")
    if len(data) > session.settings.limits.max_message_size:
        raise no("Message too big", "TOOBIG")
    if not data:
        # RFC 9051 §6.3.12 wants a message; RFC 3502 §6.3.11: a zero-length literal
        # cancels the whole command.
        raise no("Empty message")
    flags = frozenset(f for f in message.flags if f != "\\Recent")
    return NewMessage(data, flags, message.date)


async def target_mailbox(session: Session, user: User, name: str) -> Mailbox:
    """The mailbox APPEND or REPLACE stores into; it must exist and hold messages, and the
    user needs "i" on it (RFC 4314 §4). Another account's mailbox is charged to that
    account's quota: the store charges the mailbox's owner."""
    try:
        box, _ = await access.open_mailbox(session, user, name, "i", "storing into it")
    except (NotFound, InvalidName) as exc:
        # RFC 9051 §6.3.12: TRYCREATE tells the client CREATE could help.
        raise no("Mailbox does not exist", "TRYCREATE") from exc
    if box.noselect:  # RFC 9051 §6.3.5
        raise no("Mailbox is \\Noselect and cannot hold messages", "CANNOT")
    return box
