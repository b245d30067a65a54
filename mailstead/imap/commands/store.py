"""STORE and UID STORE (RFC 9051 §6.4.6, §6.4.9): FLAGS, +FLAGS, -FLAGS, and .SILENT."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mailstead.core.types import SEEN, UID, FlagMode
from mailstead.imap import access, response
from mailstead.imap.parse.commands import Command, Store
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.selected import SelectedMailbox, uid_ranges
from mailstead.imap.states import Selected
from mailstead.store.models import FlagUpdate, StoreFlagsResult

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def store(session: Session, cmd: Command[Store], selected: Selected) -> Reply:
    args = cmd.args
    view = selected.view
    if view.readonly:
        raise no("Mailbox is read-only", "READ-ONLY")
    if args.unchanged_since is not None:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    by_uid = cmd.name == "UID STORE"
    uids = view.resolve(args.sequence, uid=by_uid)
    if not uids:
        return done(f"{cmd.name} completed")
    rights = await access.selected_rights(session, selected)
    if view.private_seen is not None:
        result = await _store_shared(session, selected, uids, args, rights)
    elif all(r in rights for r in "swt"):
        result = await session.store.store_flags(
            view.mailbox_id,
            [UID(u) for u in uids],
            args.mode,
            args.flags,
            unchanged_since=args.unchanged_since,
        )
    else:
        result = await _store_within_rights(session, view, uids, args, rights)
    modseqs: dict[int, int] = {}
    for update in result.updated:
        view.note_own_flags(int(update.uid), int(update.modseq))
        modseqs[int(update.uid)] = int(update.modseq)
    if args.mode is not FlagMode.REMOVE and result.updated:
        for line in view.announce_keywords(args.flags):  # RFC 9051 §7.3.5
            session.send(line)
    modified = _modified(view, [int(u) for u in result.modified], by_uid)
    if args.silent and not session.condstore:
        return _done(cmd, modified)
    # The result holds only what changed; the client is told every message's flags
    # (RFC 7162 §3.1.3: except those that failed UNCHANGEDSINCE). With CONDSTORE on,
    # each FETCH carries UID and MODSEQ, and .SILENT still reports the new MODSEQ of the
    # messages that changed.
    failed = set(result.modified)
    wanted = [u for u in uids if u not in failed]
    metas = await access.own_view(
        session, selected, await session.store.list_messages(view.mailbox_id, uid_ranges(wanted))
    )
    for meta in metas:
        uid = int(meta.uid)
        seq = view.seq_of(uid)
        if seq is None or (args.silent and uid not in modseqs):
            continue
        items: list[bytes] = []
        if not args.silent:
            # Another session may have added a keyword to this message meanwhile.
            for line in view.announce_keywords(meta.flags):
                session.send(line)
            shown = set(meta.flags)
            if not session.rev2 and uid in view.recent:
                shown.add("\\Recent")
            items.append(b"FLAGS " + response.flag_list(shown))
        if by_uid or session.condstore:
            items.append(b"UID %d" % uid)
        if session.condstore:
            items.append(b"MODSEQ (%d)" % max(modseqs.get(uid, 0), int(meta.modseq)))
        session.send(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items)))
    if len(metas) < len(wanted):
        return done("Some messages were expunged", "EXPUNGEISSUED")
    return _done(cmd, modified)


async def _store_within_rights(
    session: Session, view: SelectedMailbox, uids: list[int], args: Store, rights: str
) -> StoreFlagsResult:
    """STORE by a user who may change only some flags (RFC 4314 §4): naming a flag it may
    not change is ``NO [NOPERM]`` (as James answers); ``FLAGS (...)`` replaces only the
    flags it may change and leaves the others of each message as they are."""
    for flag in args.flags:
        access.require(rights, access.flag_right(flag), f"changing {flag}")
    targets = [UID(u) for u in uids]
    if args.mode is not FlagMode.SET:
        return await session.store.store_flags(
            view.mailbox_id, targets, args.mode, args.flags,
            unchanged_since=args.unchanged_since,
        )
    return await _replace_keeping(
        session, view, uids, frozenset(args.flags), args.unchanged_since,
        lambda flag: access.flag_right(flag) not in rights,
    )


async def _store_shared(
    session: Session, selected: Selected, uids: list[int], args: Store, rights: str
) -> StoreFlagsResult:
    """STORE in another account's mailbox: \\Seen is this user's own (decision 0028),
    kept apart from the owner's; the other flags are the mailbox's, within the rights."""
    view = selected.view
    for flag in args.flags:
        access.require(rights, access.flag_right(flag), f"changing {flag}")
    targets = [UID(u) for u in uids]
    others = frozenset(f for f in args.flags if f != SEEN)
    result = StoreFlagsResult((), ())
    if args.mode is FlagMode.SET:
        result = await _replace_keeping(
            session, view, uids, others, args.unchanged_since,
            lambda flag: flag == SEEN or access.flag_right(flag) not in rights,
        )
    elif others:
        result = await session.store.store_flags(
            view.mailbox_id, targets, args.mode, others, unchanged_since=args.unchanged_since
        )
    if "s" in rights and view.private_seen is not None and (
            args.mode is FlagMode.SET or SEEN in args.flags):
        seen = SEEN in args.flags and args.mode is not FlagMode.REMOVE
        for uid in await session.store.set_private_seen(
                view.mailbox_id, selected.user.id, targets, seen):
            if seen:
                view.private_seen.add(int(uid))
            else:
                view.private_seen.discard(int(uid))
    return result


async def _replace_keeping(
    session: Session, view: SelectedMailbox, uids: list[int], flags: frozenset[str],
    unchanged_since: int | None, kept: Callable[[str], bool],
) -> StoreFlagsResult:
    """``FLAGS (...)`` where each message keeps the flags ``kept`` says this user may not
    replace. Messages with the same outcome are written together; the kept flags were
    read just before, and a change to them in between is overwritten (the window of one
    command)."""
    groups: dict[frozenset[str], list[UID]] = {}
    for meta in await session.store.list_messages(view.mailbox_id, uid_ranges(uids)):
        keep = frozenset(f for f in meta.flags if kept(f))
        groups.setdefault(keep | flags, []).append(meta.uid)
    updated: list[FlagUpdate] = []
    modified: list[UID] = []
    for new, group in groups.items():
        part = await session.store.store_flags(
            view.mailbox_id, group, FlagMode.SET, new, unchanged_since=unchanged_since
        )
        updated.extend(part.updated)
        modified.extend(part.modified)
    return StoreFlagsResult(tuple(updated), tuple(modified))


def _modified(view: SelectedMailbox, uids: list[int], by_uid: bool) -> str | None:
    """RFC 7162 §3.1.3 MODIFIED: the messages UNCHANGEDSINCE left alone, as UIDs for UID
    STORE and as sequence numbers for STORE."""
    if not uids:
        return None
    if by_uid:
        numbers = sorted(uids)
    else:
        numbers = sorted(seq for u in uids if (seq := view.seq_of(u)) is not None)
    return "MODIFIED " + response.uid_set(numbers) if numbers else None


def _done(cmd: Command[Store], modified: str | None) -> Reply:
    if modified is not None:
        return done("Conditional STORE failed", modified)
    return done(f"{cmd.name} completed")
