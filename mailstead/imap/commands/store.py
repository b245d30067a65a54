"""STORE and UID STORE (RFC 9051 §6.4.6, §6.4.9): FLAGS, +FLAGS, -FLAGS, and .SILENT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.types import UID
from mailstead.imap import response
from mailstead.imap.parse.commands import Command, Store
from mailstead.imap.selected import uid_ranges
from mailstead.imap.session import CommandError, Reply
from mailstead.store.models import FlagMode

if TYPE_CHECKING:
    from mailstead.imap.session import Session

_MODES = {"set": FlagMode.SET, "add": FlagMode.ADD, "remove": FlagMode.REMOVE}


async def store(session: Session, cmd: Command) -> Reply:
    args = cmd.args
    view = session.selected
    assert isinstance(args, Store) and view is not None
    if view.readonly:
        raise CommandError("NO", "Mailbox is read-only", "READ-ONLY")
    by_uid = cmd.name == "UID STORE"
    uids = view.resolve(args.sequence, uid=by_uid)
    if not uids:
        return Reply(text=f"{cmd.name} completed")
    result = await session.store.store_flags(
        view.mailbox_id, [UID(u) for u in uids], _MODES[args.mode], args.flags
    )
    for update in result.updated:
        view.note_own_flags(int(update.uid), int(update.modseq))
    new_keywords = {f for f in args.flags if not f.startswith("\\")} - view.keywords
    if new_keywords and args.mode != "remove":
        view.keywords |= new_keywords
        for line in view.flags_announcement():  # RFC 9051 §7.3.5
            session.send(line)
    if args.silent:
        return Reply(text=f"{cmd.name} completed")
    # The result holds only what changed; the client is told every message's flags.
    metas = await session.store.list_messages(view.mailbox_id, uid_ranges(uids))
    for meta in metas:
        seq = view.seq_of(int(meta.uid))
        if seq is None:
            continue
        shown = set(meta.flags)
        if not session.rev2 and int(meta.uid) in view.recent:
            shown.add("\\Recent")
        uid_part = b" UID %d" % meta.uid if by_uid else b""
        session.send(
            b"* %d FETCH (FLAGS %s%s)\r\n" % (seq, response.flag_list(shown), uid_part)
        )
    if len(metas) < len(uids):
        return Reply(text="Some messages were expunged", code="EXPUNGEISSUED")
    return Reply(text=f"{cmd.name} completed")
