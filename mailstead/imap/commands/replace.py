"""REPLACE and UID REPLACE (RFC 8508): append a new message and expunge the one it
replaces, atomically, into the selected mailbox or another one of the same account.

The new message passes every check APPEND makes (``append.new_message``,
``append.target_mailbox``); the store then writes it and removes the old one in one
transaction (``Messages.replace``), so a refusal at any point leaves both as they were.
The arrival and the expunge reach this session as the store's change events; the expunge
is announced at the flush after the command like any other (EXPUNGE, or VANISHED once
QRESYNC is on)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.errors import NotFound
from mailstead.core.types import UID
from mailstead.imap import access
from mailstead.imap.commands.append import new_message, target_mailbox
from mailstead.imap.parse.commands import Command, Replace
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.states import Selected

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def replace(session: Session, cmd: Command[Replace], selected: Selected) -> Reply:
    view = selected.view
    if view.readonly:  # RFC 8508 §3: it expunges, which EXAMINE does not allow
        raise no("Mailbox is read-only", "READ-ONLY")
    # REPLACE: a sequence number out of range is BAD, as for FETCH (InvalidSequence);
    # UID REPLACE: a UID that is not there names nothing, and there is nothing to replace.
    uids = view.resolve(cmd.args.sequence, uid=cmd.name.startswith("UID "))
    if not uids:
        raise no("No such message to replace")
    if view.is_expunged(uids[0]):  # expunged elsewhere, not announced yet (RFC 9051 §7.1)
        raise no("The message to replace has been expunged", "EXPUNGEISSUED")
    # RFC 4314 §4: removing the old message takes "t" and "e" in the selected mailbox.
    access.require(await access.selected_rights(session, selected), "te", cmd.name)
    message = await new_message(session, selected.user, cmd.args.message)
    box = await target_mailbox(session, selected.user, cmd.args.name)
    try:
        result = await session.store.replace(box.id, message, view.mailbox_id, UID(uids[0]))
    except NotFound as exc:
        # Another session expunged it since this one last heard (RFC 9051 §7.1).
        raise no("The message to replace has been expunged", "EXPUNGEISSUED") from exc
    # RFC 8508 §3: APPENDUID in an untagged OK, then the new message (EXISTS, when it
    # went into the selected mailbox), then the EXPUNGE (or VANISHED) of the old one, in the
    # order the server did them, as the RFC's examples show: the first flush holds the
    # expunge back, the one after the command sends it.
    session.untagged(f"OK [APPENDUID {result.uidvalidity} {result.uid}] Replacement Message ready")
    session.flush(allow_expunge=False, hold_recent=True)
    view.note_expunged([uids[0]])
    return done(f"{cmd.name} completed")
