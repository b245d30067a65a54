"""EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).

The EXPUNGE (or VANISHED) responses come from the session's flush after the command, which
reports this session's and everyone else's expunges in one consistent sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailstead.core.types import UID
from mailstead.imap import access
from mailstead.imap.parse.commands import Command, UidExpunge
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.states import Selected

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def expunge(session: Session, cmd: Command[None], selected: Selected) -> Reply:
    """Every message flagged \\Deleted."""
    await _require_writable(session, selected)
    return await _expunge(session, cmd.name, selected, None)


async def uid_expunge(session: Session, cmd: Command[UidExpunge], selected: Selected) -> Reply:
    """Only the messages flagged \\Deleted among the given UIDs."""
    await _require_writable(session, selected)
    uids = selected.view.resolve(cmd.args.sequence, uid=True)
    if not uids:
        return done(f"{cmd.name} completed")
    return await _expunge(session, cmd.name, selected, [UID(u) for u in uids])


async def _require_writable(session: Session, selected: Selected) -> None:
    if selected.view.readonly:  # EXAMINE (RFC 9051 §6.3.3)
        raise no("Mailbox is read-only", "READ-ONLY")
    # RFC 4314 §4: EXPUNGE needs "e".
    access.require(await access.selected_rights(session, selected), "e", "EXPUNGE")


async def _expunge(
    session: Session, name: str, selected: Selected, uids: Sequence[UID] | None
) -> Reply:
    view = selected.view
    removed = await session.store.expunge(view.mailbox_id, uids)
    view.note_expunged(int(u) for u in removed)
    if session.qresync:
        # RFC 7162 §3.2.7: VANISHED carries no mod-sequence, so the tagged OK tells the new
        # HIGHESTMODSEQ. Send the updates first (the expunge's events are already
        # published when the store call returns), so the value covers everything sent.
        session.flush(allow_expunge=True)
        return done(f"{name} completed", f"HIGHESTMODSEQ {view.highestmodseq}")
    return done(f"{name} completed")
