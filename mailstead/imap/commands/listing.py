"""LIST (RFC 9051 §6.3.9 with RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE, RFC 5819
LIST-STATUS) and LSUB (RFC 3501 §6.3.9, for rev1 clients)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.imap.commands.status import status_items
from mailstead.imap.parse.commands import (
    Command,
    ListArgs,
    ListReturn,
    ListSelection,
    StatusItem,
)
from mailstead.imap.replies import Reply, done
from mailstead.imap.wildcard import MailboxPattern
from mailstead.store.models import Mailbox, User
from mailstead.store.names import SEPARATOR, parents_of

if TYPE_CHECKING:
    from mailstead.imap.session import Session


def mailbox_pattern(reference: str, pattern: str) -> MailboxPattern:
    """``*`` matches anything, ``%`` anything but the separator (RFC 9051 §6.3.9); the
    reference is a prefix; INBOX matches case-insensitively. Matching takes linear time
    whatever the pattern (see :mod:`mailstead.imap.wildcard`)."""
    combined = pattern if pattern.startswith(SEPARATOR) else reference + pattern
    if combined[:5].upper() == "INBOX" and (len(combined) == 5 or combined[5] in "/*%"):
        combined = "INBOX" + combined[5:]
    return MailboxPattern(combined, SEPARATOR)


def _matches(patterns: list[MailboxPattern], name: str) -> bool:
    return any(p.matches(name) for p in patterns)


async def list_command(session: Session, cmd: Command[ListArgs], user: User) -> Reply:
    args = cmd.args
    if StatusItem.HIGHESTMODSEQ in args.status_items:
        session.enable_condstore()  # RFC 7162 §3.1: STATUS (HIGHESTMODSEQ), here via LIST
    if len(args.patterns) == 1 and args.patterns[0] == "" and not args.extended:
        # RFC 9051 §6.3.9: the hierarchy delimiter and root of the reference.
        session.untagged(b"LIST (\\Noselect) " + session.separator + b' ""')
        return done("LIST completed")
    patterns = [mailbox_pattern(args.reference, p) for p in args.patterns if p != ""]
    boxes = await session.store.list_mailboxes(user.id)
    by_name: dict[str, Mailbox] = {b.name: b for b in boxes}
    subscribed = set(await session.store.list_subscriptions(user.id))
    has_children = {p for name in by_name for p in parents_of(name)}
    sel = args.selection
    show_subscribed = (
        ListSelection.SUBSCRIBED in sel or ListReturn.SUBSCRIBED in args.returns
    )

    if ListSelection.SUBSCRIBED in sel:
        candidates = sorted(subscribed, key=lambda n: (n != "INBOX", n))
        if ListSelection.RECURSIVEMATCH in sel:
            extra = {p for n in subscribed for p in parents_of(n)} - subscribed
            candidates = sorted(set(candidates) | extra, key=lambda n: (n != "INBOX", n))
    else:
        candidates = [b.name for b in boxes]

    for name in candidates:
        if not _matches(patterns, name):
            continue
        box = by_name.get(name)
        if ListSelection.SPECIAL_USE in sel and (box is None or box.special_use is None):
            continue
        attrs: list[str] = []
        extended = b""
        if box is None and name in subscribed:
            attrs.append("\\NonExistent")
        elif box is not None:
            if box.noselect:
                # RFC 9051 §6.3.5: a deleted mailbox kept for its children; it is still
                # listed (RFC 5258 §3: \\Noselect names are not \\NonExistent).
                attrs.append("\\Noselect")
            attrs.append("\\HasChildren" if name in has_children else "\\HasNoChildren")
        if show_subscribed and name in subscribed:
            attrs.append("\\Subscribed")
        if box is not None and box.special_use:
            attrs.append(box.special_use)
        if ListSelection.RECURSIVEMATCH in sel and any(
            s.startswith(name + SEPARATOR) for s in subscribed
        ):
            # RFC 5258 §3.5: a parent listed because of its subscribed children.
            extended = b' ("CHILDINFO" ("SUBSCRIBED"))'
        elif ListSelection.SUBSCRIBED in sel and name not in subscribed:
            continue
        line = (
            b"LIST (" + " ".join(attrs).encode() + b") " + session.separator + b" "
            + session.mailbox_name(name)
            + extended
        )
        session.untagged(line)
        if args.status_items and box is not None and not box.noselect:  # RFC 5819 §2
            data = await status_items(session, box, args.status_items)
            session.untagged(b"STATUS " + session.mailbox_name(name) + b" " + data)
    return done("LIST completed")


async def lsub(session: Session, cmd: Command[ListArgs], user: User) -> Reply:
    """RFC 3501 §6.3.9: subscribed names; a ``%`` match on an unsubscribed parent of a
    subscribed name is listed with \\Noselect. That is what \\Noselect says in LSUB, so a
    subscribed name that does not exist is listed with ``()``, as Dovecot and James do
    (LIST (SUBSCRIBED) tells \\NonExistent); a \\Noselect mailbox kept for its children
    keeps the attribute."""
    args = cmd.args
    if args.patterns == ("",):
        session.untagged(b"LSUB (\\Noselect) " + session.separator + b' ""')
        return done("LSUB completed")
    patterns = [mailbox_pattern(args.reference, p) for p in args.patterns]
    subscribed = set(await session.store.list_subscriptions(user.id))
    noselect = {b.name for b in await session.store.list_mailboxes(user.id) if b.noselect}
    seen: set[str] = set()
    for name in sorted(subscribed, key=lambda n: (n != "INBOX", n)):
        if _matches(patterns, name):
            attrs = "\\Noselect" if name in noselect else ""
            seen.add(name)
            session.untagged(
                f"LSUB ({attrs}) ".encode() + session.separator + b" " + session.mailbox_name(name)
            )
            continue
        for parent in parents_of(name):
            if parent not in seen and parent not in subscribed and _matches(patterns, parent):
                seen.add(parent)
                session.untagged(
                    b"LSUB (\\Noselect) " + session.separator + b" " + session.mailbox_name(parent)
                )
    return done("LSUB completed")
