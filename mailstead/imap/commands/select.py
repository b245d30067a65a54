"""Opening and closing the selected mailbox: SELECT, EXAMINE (RFC 9051 §6.3.2-3), CLOSE
(§6.4.1) and UNSELECT (RFC 3691)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from mailstead.core.errors import NotFound
from mailstead.core.types import SEEN
from mailstead.imap import access, objectid, response
from mailstead.imap.parse.commands import Command, QResync, Select
from mailstead.imap.replies import Reply, bad, done, no
from mailstead.imap.selected import SelectedMailbox
from mailstead.imap.states import Selected
from mailstead.store.models import MessageMeta, User

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def select(session: Session, cmd: Command[Select], user: User) -> Reply:
    args = cmd.args
    readonly = cmd.name == "EXAMINE"
    if args.qresync is not None and not session.qresync:
        # RFC 7162 §3.2.5: only after ENABLE QRESYNC; a syntax-level refusal, so the
        # mailbox selected so far stays selected.
        raise bad("QRESYNC parameter without ENABLE QRESYNC")
    if args.condstore:
        session.enabled.add("CONDSTORE")  # HIGHESTMODSEQ follows with the selection anyway
    if session.selection is not None:
        # RFC 9051 §6.3.2: the old mailbox is closed (without expunge) even if this fails.
        session.unselect(keep_recent=True)
        if session.rev2 or session.qresync:  # RFC 9051 §7.1, RFC 7162 §3.2.11
            session.untagged("OK [CLOSED] Previous mailbox closed")
    where = await access.locate(session, user, args.name)
    subscription = session.open_subscription(where.owner_id)
    try:
        # RFC 4314 §4: SELECT and EXAMINE need "r".
        box, rights = await access.open_mailbox(session, user, args.name, "r", cmd.name)
        if box.noselect:  # RFC 9051 §6.3.5: the name only holds children now
            raise no("Mailbox is \\Noselect", "NONEXISTENT")
        messages = await session.store.list_messages(box.id)
        private: set[int] | None = None
        if not where.own:  # this user's own \Seen (decision 0028)
            private = {int(u) for u in await session.store.private_seen(box.id, user.id)}
            messages = [replace(m, flags=access.overlay(m.flags, m.uid in private))
                        for m in messages]
    except BaseException:
        subscription.close()  # no mailbox is selected now; kept \Recent stays (below)
        raise
    # RFC 4314 §4: read-write only with a right to change something in it.
    readonly = readonly or not any(r in rights for r in access.CHANGE_RIGHTS)
    uids = [m.uid for m in messages]
    key = (box.id, box.uidvalidity)
    # RFC 3501 §2.3.2: \Recent belongs to the session that was first notified, read (as
    # Dovecot and James do) as the time it works with the mailbox: SELECT or EXAMINE of
    # the same mailbox keeps it, as in James (even after a failed SELECT in between);
    # CLOSE, UNSELECT or opening another mailbox ends it. A read-only session sees
    # unclaimed messages as \Recent without taking them from the next read-write one.
    kept, session.kept_recent = session.kept_recent, None
    recent = kept[1] & set(uids) if kept is not None and kept[0] == key else set()
    if readonly:
        recent |= session.ctx.recent.unclaimed(key, uids)
    else:
        recent |= session.ctx.recent.claim(key, uids)
    recent_count = len(recent)
    prefix = "" if where.own else box.name[: len(box.name) - len(where.local)]
    view = SelectedMailbox(box, messages, readonly=readonly, recent=recent, name_prefix=prefix,
                           private_seen=private, viewer=None if where.own else user.id)
    session.select(user, view, subscription)
    # The order is free (RFC 9051 §6.3.2); this is James's, which Dovecot's clients accept.
    session.untagged(f"OK [MAILBOXID ({objectid.mailbox_id(box)})] Ok")  # RFC 8474 §4
    session.untagged(b"FLAGS " + view.flags_response())
    session.untagged(f"{view.exists} EXISTS")
    if not session.rev2:
        session.untagged(f"{recent_count} RECENT")  # RFC 3501 §6.3.1
    session.untagged(f"OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
    if not session.rev2:
        first_unseen = next((i for i, m in enumerate(messages, 1) if SEEN not in m.flags), None)
        if first_unseen is not None:
            session.untagged(f"OK [UNSEEN {first_unseen}] First unseen")
    if readonly:
        session.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox")
    else:
        flags = _permanent_flags(view, rights)
        session.untagged(b"OK [PERMANENTFLAGS " + flags + b"] Flags permitted")
    # RFC 7162 §3.1.2.1: every successful SELECT/EXAMINE, whether or not CONDSTORE is on.
    session.untagged(f"OK [HIGHESTMODSEQ {view.highestmodseq}] Highest")
    session.untagged(f"OK [UIDNEXT {box.uidnext}] Predicted next UID")
    if session.rev2:
        # RFC 9051 §6.3.2: a LIST response with the mailbox name is required.
        session.untagged(b"LIST () " + session.separator + b" " + session.mailbox_name(box.name))
    if args.qresync is not None and args.qresync.uidvalidity == box.uidvalidity:
        await _resync(session, view, messages, args.qresync)
    return done(f"{cmd.name} completed", "READ-ONLY" if readonly else "READ-WRITE")


def _permanent_flags(view: SelectedMailbox, rights: str) -> bytes:
    """The flags this user may change for good (RFC 9051 §7.1; RFC 4314 §4: \\Seen with
    "s", \\Deleted with "t", the others and new keywords with "w")."""
    if all(r in rights for r in "swt"):
        return view.flags_response()[:-1] + b" \\*)"
    flags = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", *view.keywords]
    allowed = [f for f in flags if access.flag_right(f) in rights]
    if "w" in rights:
        allowed.append("\\*")
    return response.flag_list(allowed)


async def _resync(
    session: Session, view: SelectedMailbox, messages: list[MessageMeta], known: QResync
) -> None:
    """RFC 7162 §3.2.5.1: what changed since the client's mod-sequence, in the SELECT
    answer: the UIDs expunged since (only among ``known_uids`` when given) as one
    ``VANISHED (EARLIER)``, then every message changed since as a FETCH of its UID, flags
    and mod-sequence. Expunges are remembered for good, so ``seq_match`` is not needed."""
    gone = await session.store.vanished_since(view.mailbox_id, known.modseq)
    if known.known_uids is not None:
        spans = [(min(a, b), max(a, b)) for a, b in known.known_uids.ranges
                 if a is not None and b is not None]  # the parser allows no "*" here
        gone = [u for u in gone if any(low <= u <= high for low, high in spans)]
    if gone:
        session.untagged("VANISHED (EARLIER) " + response.uid_set(int(u) for u in gone))
    for meta in messages:
        if meta.modseq <= known.modseq:
            continue
        uid = int(meta.uid)
        seq = view.seq_of(uid)
        if seq is None:
            continue
        shown = set(meta.flags)
        if not session.rev2 and uid in view.recent:
            shown.add("\\Recent")
        session.send(b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n" % (
            seq, uid, response.flag_list(shown), meta.modseq
        ))


async def close(session: Session, cmd: Command[None], selected: Selected) -> Reply:
    """RFC 9051 §6.4.1: expunge silently (no EXPUNGE responses) unless read-only; RFC 4314
    §4: without "e" the mailbox is closed without expunging."""
    session.unselect()
    if not selected.view.readonly and "e" in await access.selected_rights(session, selected):
        # A mailbox deleted by another session meanwhile has nothing left to expunge, and
        # the client has left it all the same.
        with contextlib.suppress(NotFound):
            await session.store.expunge(selected.view.mailbox_id)
    return done("CLOSE completed")


async def unselect(session: Session, cmd: Command[None], selected: Selected) -> Reply:
    """RFC 3691: like CLOSE without the expunge."""
    session.unselect()
    return done("UNSELECT completed")
