"""NOTIFY grammar (RFC 5465 §8): ``NOTIFY NONE`` or ``NOTIFY SET [STATUS] event-group...``.

The parser checks everything the RFC answers with BAD: the syntax, a filter named twice
for the selected mailbox (§6.1), non-message events with ``selected`` (§6.1), MessageNew
without MessageExpunge or the reverse, FlagChange without both (§5), fetch attributes on
MessageNew outside ``selected`` (§5.2: they describe the FETCH sent for the selected
mailbox). Event names it does not know are kept, not refused: RFC 5465 §3.1 answers them
with ``NO [BADEVENT ...]`` (not BAD), which the handler does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailstead.imap.parse.fetch import FetchAtt, fetch_atts
from mailstead.imap.parse.primitives import Reader

#: Event groups in one NOTIFY SET, and mailbox names in all its filters together: a client
#: watches a handful of filters, and each name costs a comparison per change event.
MAX_GROUPS = 16
MAX_NAMES = 1000
#: Event names in one group: the eight of RFC 5465 each once, and a few unknown ones.
MAX_EVENTS = 16


class FilterKind(StrEnum):
    """The mailbox filters of RFC 5465 §6 (``filter-mailboxes``)."""

    SELECTED = "SELECTED"
    SELECTED_DELAYED = "SELECTED-DELAYED"
    INBOXES = "INBOXES"
    PERSONAL = "PERSONAL"
    SUBSCRIBED = "SUBSCRIBED"
    SUBTREE = "SUBTREE"
    MAILBOXES = "MAILBOXES"

    @property
    def selected(self) -> bool:
        return self in (FilterKind.SELECTED, FilterKind.SELECTED_DELAYED)

    @property
    def named(self) -> bool:
        """Followed by one mailbox name or a parenthesised list of them."""
        return self in (FilterKind.SUBTREE, FilterKind.MAILBOXES)


class Event(StrEnum):
    """The event names of RFC 5465 §5 (the value is how the RFC spells them)."""

    MESSAGE_NEW = "MessageNew"
    MESSAGE_EXPUNGE = "MessageExpunge"
    FLAG_CHANGE = "FlagChange"
    ANNOTATION_CHANGE = "AnnotationChange"
    MAILBOX_NAME = "MailboxName"
    SUBSCRIPTION_CHANGE = "SubscriptionChange"
    MAILBOX_METADATA_CHANGE = "MailboxMetadataChange"
    SERVER_METADATA_CHANGE = "ServerMetadataChange"

    @property
    def about_messages(self) -> bool:
        """A ``message-event`` (§8), the only kind ``selected`` may ask for (§6.1)."""
        return self in _MESSAGE_EVENTS


_MESSAGE_EVENTS = frozenset(
    {Event.MESSAGE_NEW, Event.MESSAGE_EXPUNGE, Event.FLAG_CHANGE, Event.ANNOTATION_CHANGE}
)
_BY_UPPER = {e.value.upper(): e for e in Event}
_FILTERS = {k.value: k for k in FilterKind}


@dataclass(frozen=True, slots=True)
class EventGroup:
    """One ``(filter events)`` group. ``events`` empty is ``NONE``; ``unknown`` holds the
    event names this server has never heard of (answered NO [BADEVENT])."""

    kind: FilterKind
    names: tuple[str, ...]  # SUBTREE / MAILBOXES only
    events: frozenset[Event]
    fetch: tuple[FetchAtt, ...] = ()  # MessageNew's fetch attributes (selected filters)
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifyArgs:
    """NOTIFY: ``groups`` is None for NOTIFY NONE; ``status`` is SET's STATUS indicator."""

    groups: tuple[EventGroup, ...] | None
    status: bool = False


def _names(r: Reader, budget: list[int]) -> tuple[str, ...]:
    """``one-or-more-mailbox``: a mailbox, or a parenthesised list of them (§8)."""
    if r.peek() != b"(":
        names = [r.mailbox()]
    else:
        r.open_paren()
        names = [r.mailbox()]
        while r.more_in_list() and len(names) <= budget[0]:
            r.skip_spaces()
            names.append(r.mailbox())
        r.close_paren()
    budget[0] -= len(names)
    if budget[0] < 0:
        raise r.error(f"more than {MAX_NAMES} mailbox names in NOTIFY")
    return tuple(names)


def _events(r: Reader, kind: FilterKind) -> EventGroup:
    """``events = ( "(" event *(SP event) ")" ) / "NONE"`` with the §5 and §6.1 rules."""
    if r.peek() != b"(":
        word = r.atom("an event list or NONE").upper()
        if word != "NONE":
            raise r.error("expected an event list or NONE")
        return EventGroup(kind, (), frozenset())
    r.open_paren()
    known: set[Event] = set()
    unknown: list[str] = []
    fetch: tuple[FetchAtt, ...] = ()
    while True:
        word = r.atom("an event name")
        event = _BY_UPPER.get(word.upper())
        if event is None:
            unknown.append(word)
        elif event in known:
            raise r.error(f"event {event} named twice")
        else:
            known.add(event)
        if event is Event.MESSAGE_NEW and r.peek(2) == b" (":
            # §8: "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"].
            r.sp()
            fetch = tuple(fetch_atts(r))
        if len(known) + len(unknown) > MAX_EVENTS:
            raise r.error(f"more than {MAX_EVENTS} events in one group")
        if not r.more_in_list():
            break
        r.skip_spaces()
    r.close_paren()
    if (Event.MESSAGE_NEW in known) != (Event.MESSAGE_EXPUNGE in known):
        raise r.error("MessageNew and MessageExpunge go together (RFC 5465 section 5)")
    if (Event.FLAG_CHANGE in known or Event.ANNOTATION_CHANGE in known) and (
        Event.MESSAGE_NEW not in known
    ):
        raise r.error("FlagChange needs MessageNew and MessageExpunge (RFC 5465 section 5)")
    if kind.selected and any(not e.about_messages for e in known):
        raise r.error("only message events apply to the selected mailbox (RFC 5465 6.1)")
    if fetch and not kind.selected:
        raise r.error("MessageNew fetch attributes apply to the selected mailbox only")
    return EventGroup(kind, (), frozenset(known), fetch, tuple(unknown))


def notify(r: Reader) -> NotifyArgs:
    """RFC 5465 §8: notify = "NOTIFY" SP (notify-set / notify-none);
    notify-set = "SET" [status-indicator] SP event-groups;
    event-group = "(" filter-mailboxes SP events ")"."""
    r.sp()
    form = r.atom("SET or NONE").upper()
    if form == "NONE":
        r.end()
        return NotifyArgs(None)
    if form != "SET":
        raise r.error("expected SET or NONE")
    r.sp()
    status = False
    if r.peek() != b"(":
        if r.atom("STATUS or an event group").upper() != "STATUS":
            raise r.error("expected STATUS or an event group")
        status = True
        r.sp()
    groups: list[EventGroup] = []
    budget = [MAX_NAMES]
    while True:
        r.open_paren()
        word = r.atom("a mailbox filter").upper()
        kind = _FILTERS.get(word)
        if kind is None:
            raise r.error(f"unknown mailbox filter {word[:40]}")
        names: tuple[str, ...] = ()
        if kind.named:
            r.sp()
            names = _names(r, budget)
        r.sp()
        group = _events(r, kind)
        r.close_paren()
        if kind.selected and any(g.kind.selected for g in groups):
            raise r.error("only one of SELECTED and SELECTED-DELAYED (RFC 5465 6.1)")
        groups.append(EventGroup(kind, names, group.events, group.fetch, group.unknown))
        if len(groups) > MAX_GROUPS:
            raise r.error(f"more than {MAX_GROUPS} event groups in NOTIFY")
        if not r.more():
            break
        r.sp()
    r.end()
    return NotifyArgs(tuple(groups), status)
