"""SORT and THREAD (RFC 5256) over what the store kept of each message: pure ordering.

The handler (:mod:`mailstead.imap.commands.sort`) finds the messages with the SEARCH
evaluator and turns each into a :class:`Sortable`, from the sort keys the store kept of
its body (:class:`~mailstead.store.models.SortKeys`, derived here by :func:`keys_of` from
the structure ``mime/`` parsed once at delivery; decision 0031). Everything here is a
function of those records, so it is tested without a store. Comparisons follow §2.1
(i;ascii-casemap) and §2.2 (sent date, ties by sequence).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import NamedTuple

from mailstead.core import sanity
from mailstead.imap.basesubject import BaseSubject, ascii_casemap, extract
from mailstead.imap.parse.sort import Criterion, SortKey, ThreadAlgorithm
from mailstead.mime.stored import StoredStructure
from mailstead.store.models import MessageMeta, SortKeys

_MSG_ID = re.compile(r"<([^<>\s]+)>")
_log = logging.getLogger("mailstead.imap")

#: How :func:`keys_of` derives the keys. Raise it with any change to what they hold or
#: how they are derived: stored keys of another version are derived again when a SORT or
#: THREAD needs them (decision 0031).
KEYS_VERSION = 1


def _first_mailbox(addresses: Sequence[str]) -> str:
    """The addr-mailbox (local part) of the first address, as SORT FROM/TO/CC compare it
    (RFC 5256 §3: "the [IMAP] addr-mailbox of the first ... address"); empty when there is
    none. ``mime/`` stores each address as ``Name <local@domain>`` or ``local@domain``, and
    a group's start as its display name: the name ENVELOPE puts in the mailbox field of a
    group's start (RFC 9051 §7.5.2), so it is that address's addr-mailbox."""
    if not addresses:
        return ""
    first = addresses[0]
    if first.endswith(">") and "<" in first:
        first = first[first.rfind("<") + 1 : -1]
    at = first.rfind("@")
    return first[:at] if at >= 0 else first


def _utc(moment: datetime) -> float:
    """Seconds since the epoch; a date without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _sent(date: datetime | None, arrival: float) -> float:
    """The sent date of RFC 5256 §2.2: the Date: field, or the INTERNALDATE when it "cannot
    be determined". A Date: before 1970 is taken as one that cannot: in practice it is
    the year 2002 written "0102" by a mailer's Y2K bug, or a broken clock, and Dovecot
    treats it so too (its sent date 0 falls back to the arrival)."""
    if date is None:
        return arrival
    sent = _utc(date)
    return sent if sent > 0 else arrival


class Sortable(NamedTuple):
    """What SORT and THREAD read of one message, taken from its stored keys. A tuple, not a
    dataclass: a SORT builds one per message of the mailbox, and a tuple is the cheapest
    immutable record to build."""

    seq: int
    uid: int
    arrival: float  # INTERNALDATE, seconds since the epoch
    sent: float  # the Date: field, or INTERNALDATE without a usable one (§2.2)
    size: int
    subject: BaseSubject
    from_mailbox: str
    to_mailbox: str
    cc_mailbox: str
    message_id: str | None  # the first valid Message ID of Message-ID
    references: tuple[str, ...]  # References, or else the first of In-Reply-To (§5)
    modseq: int = 0  # RFC 7162 §3.1.5: the answer to a MODSEQ program tells the highest

    @classmethod
    def of(
        cls, meta: MessageMeta, seq: int, structure: StoredStructure | None,
        reads: frozenset[Field],
    ) -> Sortable:
        """The record of one message, with the fields in ``reads`` taken from its
        structure and the others left empty: decoding what no criterion compares would
        cost most of a SORT by date (the subject's extraction, the reference fields)."""
        arrival = _utc(meta.internaldate)
        none = extract("")
        if structure is None:
            return cls(seq, int(meta.uid), arrival, arrival, meta.size, none, "", "", "",
                       None, (), int(meta.modseq))
        own: list[str] = []
        refs: tuple[str, ...] = ()
        if Field.REFERENCES in reads:
            message_id, in_reply_to, references = structure.references_fields
            own = _MSG_ID.findall(message_id or "")
            refs = tuple(_MSG_ID.findall(references or ""))
            if not refs:
                # RFC 5256 §5: without valid References, the first valid Message ID of
                # In-Reply-To.
                refs = tuple(_MSG_ID.findall(in_reply_to or ""))[:1]
        return cls(
            seq=seq,
            uid=int(meta.uid),
            arrival=arrival,
            sent=_sent(structure.date, arrival) if Field.DATE in reads else arrival,
            size=meta.size,
            subject=extract(structure.subject or "") if Field.SUBJECT in reads else none,
            from_mailbox=_mailbox_key(structure.from_addrs, Field.FROM in reads),
            to_mailbox=_mailbox_key(structure.to, Field.TO in reads),
            cc_mailbox=_mailbox_key(structure.cc, Field.CC in reads),
            message_id=own[0] if own else None,
            references=refs,
            modseq=int(meta.modseq),
        )


def _mailbox_key(addresses: Sequence[str], wanted: bool) -> str:
    return ascii_casemap(_first_mailbox(addresses)) if wanted else ""


def _references(structure: StoredStructure) -> tuple[str | None, tuple[str, ...]]:
    """The message's own first valid Message ID, and its parents (RFC 5256 §5)."""
    message_id, in_reply_to, references = structure.references_fields
    own = _MSG_ID.findall(message_id or "")
    refs = tuple(_MSG_ID.findall(references or ""))
    if not refs:
        # RFC 5256 §5: without valid References, the first valid Message ID of
        # In-Reply-To.
        refs = tuple(_MSG_ID.findall(in_reply_to or ""))[:1]
    return (own[0] if own else None), refs


def keys_of(structure: StoredStructure) -> SortKeys:
    """Everything SORT and THREAD compare of a body, as the store keeps it: the sent date
    without the INTERNALDATE fallback (that is the message's, not the body's), addresses
    and base subject already case-mapped as they are compared."""
    date = structure.date
    sent = _utc(date) if date is not None else None
    subject = extract(structure.subject or "")
    message_id, refs = _references(structure)
    return SortKeys(
        version=KEYS_VERSION,
        sent=sent if sent is not None and sent > 0 else None,
        from_key=_mailbox_key(structure.from_addrs, True),
        to_key=_mailbox_key(structure.to, True),
        cc_key=_mailbox_key(structure.cc, True),
        subject=ascii_casemap(subject.text),
        reply=subject.reply,
        message_id=message_id,
        references=refs,
    )


def stored_sort_keys(structure: bytes) -> SortKeys | None:
    """The store's injected :data:`~mailstead.store.interfaces.SortKeysMaker`: the keys of
    a body just parsed, written with it. Never raises in production: a bug here logs and
    gives None, so a delivery is never refused for its keys (the first SORT that needs
    them derives them again); with the sanity flag on, as under test, it raises."""
    try:
        return keys_of(StoredStructure(structure))
    except Exception as exc:
        sanity.degrade(_log, exc, "sort keys failed (%s); they are left to the first SORT")
        return None


def record(meta: MessageMeta, seq: int, keys: SortKeys) -> Sortable:
    """The record of one message from its body's stored keys; fields the keys were read
    without are empty, as :meth:`Sortable.of` leaves them."""
    arrival = _utc(meta.internaldate)
    sent = keys.sent
    return Sortable(
        seq, int(meta.uid), arrival, arrival if sent is None else sent, meta.size,
        BaseSubject(keys.subject, keys.reply), keys.from_key, keys.to_key, keys.cc_key,
        keys.message_id, keys.references, int(meta.modseq),
    )


class Field(Enum):
    """What a record may be filled with from the stored structure."""

    SUBJECT = "subject"
    FROM = "from"
    TO = "to"
    CC = "cc"
    DATE = "date"
    REFERENCES = "references"


#: The fields each sort key compares (ARRIVAL and SIZE come from the message list).
SORT_FIELDS: dict[SortKey, frozenset[Field]] = {
    SortKey.ARRIVAL: frozenset(),
    SortKey.CC: frozenset({Field.CC}),
    SortKey.DATE: frozenset({Field.DATE}),
    SortKey.FROM: frozenset({Field.FROM}),
    SortKey.SIZE: frozenset(),
    SortKey.SUBJECT: frozenset({Field.SUBJECT}),
    SortKey.TO: frozenset({Field.TO}),
}
#: The fields each threading algorithm reads.
THREAD_FIELDS: dict[ThreadAlgorithm, frozenset[Field]] = {
    ThreadAlgorithm.ORDEREDSUBJECT: frozenset({Field.SUBJECT, Field.DATE}),
    ThreadAlgorithm.REFERENCES: frozenset({Field.SUBJECT, Field.DATE, Field.REFERENCES}),
}


_KEYS: dict[SortKey, Callable[[Sortable], str | float | int]] = {
    SortKey.ARRIVAL: lambda m: m.arrival,
    SortKey.CC: lambda m: m.cc_mailbox,
    SortKey.DATE: lambda m: m.sent,
    SortKey.FROM: lambda m: m.from_mailbox,
    SortKey.SIZE: lambda m: m.size,
    SortKey.SUBJECT: lambda m: ascii_casemap(m.subject.text),
    SortKey.TO: lambda m: m.to_mailbox,
}


def sort_messages(messages: Sequence[Sortable], criteria: Sequence[Criterion]) -> list[Sortable]:
    """``messages`` in the order of ``criteria``; messages equal under every criterion in
    sequence-number order (RFC 5256 §3: "the order in which they appear in the mailbox"),
    which REVERSE does not turn round. Python's sort is stable, so sorting by the last
    criterion first and the first criterion last gives the lexicographic order."""
    ordered = sorted(messages, key=lambda m: m.seq)
    for criterion in reversed(criteria):
        ordered.sort(key=_KEYS[criterion.key], reverse=criterion.reverse)
    return ordered


# --- THREAD ------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Node:
    """A thread node: a message, or a dummy (``message`` None) standing for a referenced
    message that is not in the result, or grouping threads of one subject (§5)."""

    message: Sortable | None = None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    def first(self) -> Sortable | None:
        """The message itself, or a dummy's first child's (RFC 5256 §5 steps 4 to 6)."""
        if self.message is not None:
            return self.message
        return self.children[0].first() if self.children else None

    def is_ancestor_of(self, other: Node) -> bool:
        at: Node | None = other
        while at is not None:
            if at is self:
                return True
            at = at.parent
        return False


def _order(node: Node) -> tuple[float, int]:
    """Siblings are ordered by sent date, then by their place in the mailbox (§2.2)."""
    first = node.first()
    return (first.sent, first.seq) if first is not None else (0.0, 0)


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _unlink(child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def ordered_subject(messages: Sequence[Sortable]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT (RFC 5256 §3): messages grouped by base subject, each group
    ordered by sent date; the first of a group is the parent of all the others, and the
    groups are ordered by the sent date of their first message."""
    ordered = sorted(messages, key=lambda m: (ascii_casemap(m.subject.text), m.sent, m.seq))
    threads: list[Node] = []
    current: str | None = None
    for message in ordered:
        subject = ascii_casemap(message.subject.text)
        if threads and subject == current:
            _link(threads[-1], Node(message))
        else:
            threads.append(Node(message))
            current = subject
    threads.sort(key=_order)
    return threads


def references(messages: Sequence[Sortable]) -> list[Node]:
    """THREAD=REFERENCES (RFC 5256 §5, steps 1 to 6): the threads as a list of roots."""
    by_id: dict[str, Node] = {}
    nodes: list[Node] = []
    for message in sorted(messages, key=lambda m: m.seq):
        node = _message_node(by_id, message)
        nodes.append(node)
        # Step 1A: link the references in order, first the parent of the second and so
        # on; an existing link stays (References may be truncated), no link makes a loop.
        previous: Node | None = None
        for ref in message.references:
            container = by_id.get(ref)
            if container is None:
                container = by_id[ref] = Node()  # a dummy for a message not in the result
            if (
                previous is not None
                and container.parent is None
                and container is not previous
                and not container.is_ancestor_of(previous)
            ):
                _link(previous, container)
            previous = container
        # Step 1B: the last reference is the parent; an older link is broken; none without
        # references; never a loop.
        if previous is None or previous is node or node.is_ancestor_of(previous):
            _unlink(node)
        else:
            _link(previous, node)
    # Step 2: the root set.
    roots = [n for n in {id(n): n for n in [*by_id.values(), *nodes]}.values()
             if n.parent is None]
    root = Node()
    for n in roots:
        _link(root, n)
    # Step 3: dummies without children go; a dummy's children move up to its place, except
    # to the root level when it has more than one.
    _prune(root)
    # Step 4: the root level by sent date (a dummy by its first child, sorted first).
    for n in root.children:
        if n.message is None:
            n.children.sort(key=_order)
    root.children.sort(key=_order)
    # Step 5: threads of one base subject gathered together.
    _gather_subjects(root)
    # Step 6: every set of siblings by sent date, the deepest first.
    _sort_tree(root)
    return root.children


def _message_node(by_id: dict[str, Node], message: Sortable) -> Node:
    """The node of a message under its Message-ID; a message without one, or with the ID
    of an earlier message, gets a node of its own that no reference can reach (§5 step
    1A: "assign a unique Message ID")."""
    node = Node(message)
    if message.message_id is None:
        return node
    existing = by_id.get(message.message_id)
    if existing is None:
        by_id[message.message_id] = node
        return node
    if existing.message is None:  # a dummy from an earlier reference: it is this message
        existing.message = message
        return existing
    return node


def _descendants(root: Node) -> list[Node]:
    """``root`` and every node under it, each parent before its children. Iterative: a
    thread may be thousands of replies deep, deeper than Python's recursion limit."""
    out = [root]
    at = 0
    while at < len(out):
        out.extend(out[at].children)
        at += 1
    return out


def _prune(root: Node) -> None:
    """§5 step 3, children before their parents, so each sees its children final."""
    for node in reversed(_descendants(root)):
        kept: list[Node] = []
        for child in node.children:
            if child.message is not None:
                kept.append(child)
            elif not child.children:
                child.parent = None
            elif node is not root or len(child.children) == 1:
                for grandchild in child.children:
                    grandchild.parent = node
                kept += child.children
                child.children = []
                child.parent = None
            else:
                kept.append(child)
        node.children = kept


def _gather_subjects(root: Node) -> None:
    """§5 step 5: a table of base subjects, preferring a dummy and then a message that is
    not a reply or forward; then every other thread of that subject is merged into it.
    The root's list is rebuilt once at the end (removing from it one merge at a time
    would cost its whole length per merge)."""
    table: dict[str, Node] = {}
    for n in root.children:
        first = n.first()
        if first is None or not first.subject.text:
            continue
        key = ascii_casemap(first.subject.text)
        old = table.get(key)
        if old is None:
            table[key] = n
            continue
        old_first = old.first()
        if (n.message is None and old.message is not None) or (
            old_first is not None and old_first.subject.reply and not first.subject.reply
        ):
            table[key] = n
    roots = list(root.children)
    place = {id(n): i for i, n in enumerate(roots)}
    gone: set[int] = set()  # ids of nodes no longer at the root

    def adopt(parent: Node, child: Node) -> None:
        """``child`` leaves the root for ``parent``."""
        child.parent = parent
        parent.children.append(child)
        gone.add(id(child))

    for n in list(roots):
        first = n.first()
        if id(n) in gone or first is None or not first.subject.text:
            continue
        key = ascii_casemap(first.subject.text)
        other = table[key]
        if other is n:
            continue
        if other.message is None and n.message is None:
            for c in n.children:
                c.parent = other
            other.children += n.children
            n.children = []
            gone.add(id(n))
        elif other.message is None:
            adopt(other, n)
        elif n.message is None:
            adopt(n, other)
            table[key] = n
        elif not other.message.subject.reply and n.message.subject.reply:
            adopt(other, n)
        else:
            dummy = Node(parent=root)
            roots[place[id(other)]] = dummy
            place[id(dummy)] = place[id(other)]
            adopt(dummy, other)
            adopt(dummy, n)
            gone.discard(id(dummy))
            table[key] = dummy
    root.children = [n for n in roots if id(n) not in gone]


def _sort_tree(root: Node) -> None:
    """§5 step 6: every set of siblings by sent date, the deepest first (a dummy is ordered
    by its first child, so its children must be in order before it is placed)."""
    for node in reversed(_descendants(root)):
        node.children.sort(key=_order)


def render_threads(roots: Sequence[Node], number: Callable[[Sortable], int]) -> str:
    """The THREAD response's data (RFC 5256 §4): ``(1 2 (3)(4 5))``; a dummy has no number
    of its own, so its children show as a nested list. Built with a stack of what is still
    to write (text, or a node as a thread-list or as thread-members), not by recursion.

    thread-list = "(" (thread-members / thread-nested) ")";
    thread-members = nz-number *(SP nz-number) [SP thread-nested];
    thread-nested = 2*thread-list."""
    out: list[str] = []
    todo: list[str | tuple[bool, Node]] = [(True, n) for n in reversed(roots)]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        as_list, node = item
        if as_list:
            out.append("(")
            todo += [")", (False, node)]
            continue
        if node.message is not None:
            out.append(str(number(node.message)))
            if node.children:
                out.append(" ")
        if len(node.children) == 1:
            todo.append((False, node.children[0]))
        else:
            todo += [(True, c) for c in reversed(node.children)]
    return "".join(out)
