"""COPY, MOVE and their UID forms (RFC 9051 §6.4.7-8, RFC 6851 MOVE, RFC 4315 COPYUID)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.types import UID
from mailstead.imap import access, response
from mailstead.imap.parse.commands import Command, CopyMove
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.states import Selected

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def copy_move(session: Session, cmd: Command[CopyMove], selected: Selected) -> Reply:
    view = selected.view
    moving = cmd.name.endswith("MOVE")
    if moving and view.readonly:
        raise no("Mailbox is read-only", "READ-ONLY")
    uids = view.resolve(cmd.args.sequence, uid=cmd.name.startswith("UID "))
    if moving:
        # RFC 6851 §3.3 with RFC 4314 §4: moving out takes the rights to delete and
        # expunge in the source.
        access.require(await access.selected_rights(session, selected), "te", cmd.name)
    try:
        target, rights = await access.open_mailbox(
            session, selected.user, cmd.args.mailbox, "i", f"{cmd.name} into it"
        )
    except (NotFound, InvalidName) as exc:
        raise no("Mailbox does not exist", "TRYCREATE") from exc
    if target.noselect:  # RFC 9051 §6.3.5
        raise no("Mailbox is \\Noselect and cannot hold messages", "CANNOT")
    if not uids:
        return done(f"{cmd.name} completed")  # RFC 4315 §3: no COPYUID for nothing
    # RFC 4314 §4: into another account's mailbox the copies keep only the flags this
    # user may set there.
    limited = None if target.user_id == selected.user.id else rights
    if moving:
        # Into the selected mailbox too (decision 0018): the messages get new UIDs; the
        # EXPUNGEs of the old and the EXISTS of the new follow at the flush, in that order.
        result = await session.store.move(
            view.mailbox_id, [UID(u) for u in uids], target.id, rights=limited
        )
    else:
        result = await session.store.copy(
            view.mailbox_id, [UID(u) for u in uids], target.id, rights=limited
        )
    if not result.mapping:
        return done(f"{cmd.name} completed")
    code = (
        f"COPYUID {result.uidvalidity} {response.uid_set(int(s) for s, _ in result.mapping)}"
        f" {response.uid_set(int(d) for _, d in result.mapping)}"
    )
    if moving:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        session.untagged(f"OK [{code}] Moved")
        view.note_expunged(int(s) for s, _ in result.mapping)
        return done(f"{cmd.name} completed")
    return done(f"{cmd.name} completed", code)
