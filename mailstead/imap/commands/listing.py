"""LIST (RFC 9051 §6.3.9 with RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE, RFC 5819
LIST-STATUS) and LSUB (RFC 3501 §6.3.9, for rev1 clients)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mailstead.core.rights import RIGHTS, with_obsolete
from mailstead.imap import access
from mailstead.imap.commands.status import status_items
from mailstead.imap.parse.commands import (
    LIST_BASE_SELECTION,
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


def _placeholder(owner_id: int, name: str) -> Mailbox:
    """A name listed only as a level above other users' mailboxes (\\Noselect)."""
    return Mailbox(id=0, user_id=owner_id, name=name, uidvalidity=0, uidnext=0,
                   highestmodseq=0, special_use=None, subscribed=False, noselect=True)


async def visible_mailboxes(
    session: Session, user: User
) -> tuple[dict[str, Mailbox], dict[str, str]]:
    """Every mailbox the user may list (RFC 4314 "l"), by the name it has for the user,
    with the user's rights: its own, and other accounts' under
    ``Other Users/<owner>/`` (decision 0028) with the levels above them as \\Noselect
    names, and without their owners' special-use attributes."""
    by_name: dict[str, Mailbox] = {}
    rights: dict[str, str] = {}
    for box in await session.store.list_mailboxes(user.id):
        if not access.in_other_users(box.name):  # hidden by the namespace
            by_name[box.name] = box
            rights[box.name] = RIGHTS
    for shared in await session.store.shared_with(user.id):
        if "l" not in shared.rights:
            continue
        path = access.shared_path(shared.owner, shared.mailbox.name)
        by_name[path] = replace(shared.mailbox, name=path, special_use=None)
        rights[path] = shared.rights
        prefix = access.owner_prefix(shared.owner)
        for parent in [access.OTHER_USERS, prefix] + [
            prefix + SEPARATOR + p for p in parents_of(shared.mailbox.name)
        ]:
            by_name.setdefault(parent, _placeholder(shared.mailbox.user_id, parent))
    return by_name, rights


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
    by_name, rights = await visible_mailboxes(session, user)
    subscribed = set(await session.store.list_subscriptions(user.id))
    has_children = {p for name in by_name for p in parents_of(name)}
    sel = args.selection
    show_subscribed = (
        ListSelection.SUBSCRIBED in sel or ListReturn.SUBSCRIBED in args.returns
    )
    base = sorted(sel & LIST_BASE_SELECTION)

    def meets(name: str) -> bool:
        """The selection criteria: every base option given holds for the name."""
        box = by_name.get(name)
        return all(
            name in subscribed if opt is ListSelection.SUBSCRIBED
            else box is not None and box.special_use is not None
            for opt in base
        )

    universe = subscribed if ListSelection.SUBSCRIBED in sel else set(by_name)
    meeting = {n for n in universe if meets(n)}
    answer = {n for n in meeting if _matches(patterns, n)}
    # RFC 5258 §3.3 rule 2B and §3.5: with RECURSIVEMATCH, a name that matches the pattern
    # is also listed (or a listed one carries CHILDINFO) for a descendant that meets the
    # criteria -- but only for one that is not itself in the answer: "servers SHOULD
    # suppress redundant CHILDINFO responses", as example 9 of §5 shows.
    childinfo: set[str] = set()
    if ListSelection.RECURSIVEMATCH in sel:
        for name in meeting - answer:
            childinfo.update(p for p in parents_of(name) if _matches(patterns, p))
    childinfo_item = (
        b' ("CHILDINFO" (' + b" ".join(b'"%s"' % o.encode() for o in base) + b"))"
    )

    for name in sorted(answer | childinfo, key=lambda n: (n != "INBOX", n)):
        box = by_name.get(name)
        attrs: list[str] = []
        if box is None:
            # RFC 5258 §3.5 table: a subscribed name that does not exist, or a parent
            # listed for its children that does not exist either.
            attrs.append("\\NonExistent")
        else:
            if box.noselect:
                # RFC 9051 §6.3.5: a deleted mailbox kept for its children; it is still
                # listed (RFC 5258 §3: \\Noselect names are not \\NonExistent).
                attrs.append("\\Noselect")
            attrs.append("\\HasChildren" if name in has_children else "\\HasNoChildren")
        if show_subscribed and name in subscribed:
            attrs.append("\\Subscribed")
        if box is not None and box.special_use:
            attrs.append(box.special_use)
        extended = childinfo_item if name in childinfo else b""
        line = (
            b"LIST (" + " ".join(attrs).encode() + b") " + session.separator + b" "
            + session.mailbox_name(name)
            + extended
        )
        session.untagged(line)
        mine = rights.get(name, "") if box is not None else ""
        if ListReturn.MYRIGHTS in args.returns and mine:
            # RFC 8440 §3: the user's rights, after the mailbox's LIST response.
            session.untagged(b"MYRIGHTS " + session.mailbox_name(name) + b" "
                             + with_obsolete(mine).encode())
        if args.status_items and box is not None and not box.noselect and "r" in mine:
            # RFC 5819 §2; RFC 4314 §4: STATUS needs "r".
            data = await status_items(session, box, args.status_items, user)
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
