"""What one session asked NOTIFY for (RFC 5465), and the notifications it is owed.

A session that never sends NOTIFY SET has no :class:`Notifications` and pays nothing. One
that does holds its own subscription to the account's change bus (store/changes.py), next
to the one of its selected mailbox, and folds each committed change into a small amount of
pending work, at a cost proportional to the changes, never to the number of mailboxes:

- a message change (new, expunged, flags) in a watched mailbox other than the selected one
  marks that mailbox as owing one STATUS (§5.1-§5.3); many changes to one mailbox before the
  next delivery still make one STATUS;
- a mailbox created, renamed or deleted makes one LIST (§5.4), a subscription change one
  LIST with or without ``\\Subscribed`` (§5.5);
- a METADATA entry set or removed on a watched mailbox, or on the server, makes one
  unsolicited METADATA response naming the entries (§5.9, §5.10).

The selected mailbox is not handled here: its view (imap/selected.py) absorbs the changes
of its own subscription as it always did, and :class:`SelectedRule` only says what NOTIFY
lets the session push for it between commands.

Which filter matches a mailbox is answered from names kept here: the account's mailboxes by
id (change events carry the id; renames and deletions keep the map right) and the subscribed
names (re-read from the store only after a subscription change). Every mailbox on the
account's bus is in the personal namespace; shared mailboxes, when they exist, will reach a
session through their own bus subscription and match only the filters that name them
(``subtree``, ``mailboxes``), which is why :meth:`Watch.events_for` takes ``personal``.

The backlog is bounded (§5.8): past ``max_backlog`` undelivered change events the
subscription is closed, and the next delivery point sends ``OK [NOTIFICATIONOVERFLOW]`` and
ends NOTIFY as if the client had sent NOTIFY NONE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailstead.imap.parse.commands import StatusItem
from mailstead.imap.parse.fetch import FetchAtt
from mailstead.imap.parse.notify import Event, EventGroup, FilterKind
from mailstead.store.changes import Subscription
from mailstead.store.models import ChangeEvent, ChangeKind, Mailbox
from mailstead.store.names import SEPARATOR

#: The events this server can report (RFC 5465 §3.1: BADEVENT lists them). AnnotationChange
#: needs ANNOTATE, which is not served. The metadata events are required of a server with
#: METADATA (RFC 5465 §5.9, §5.10).
SUPPORTED = (
    Event.MESSAGE_NEW,
    Event.MESSAGE_EXPUNGE,
    Event.FLAG_CHANGE,
    Event.MAILBOX_NAME,
    Event.SUBSCRIPTION_CHANGE,
    Event.MAILBOX_METADATA_CHANGE,
    Event.SERVER_METADATA_CHANGE,
)
#: The events that make a STATUS for a mailbox other than the selected one (§5.1-§5.3).
MESSAGE_EVENTS = frozenset({Event.MESSAGE_NEW, Event.MESSAGE_EXPUNGE, Event.FLAG_CHANGE})
#: What a STATUS notification reports (RFC 5465 §5.1-§5.3): a superset of what each event
#: needs, the same set every time, as in Dovecot's first one for a mailbox; HIGHESTMODSEQ
#: too once CONDSTORE is on (§5.2).
_STATUS = (StatusItem.MESSAGES, StatusItem.UIDNEXT, StatusItem.UIDVALIDITY, StatusItem.UNSEEN)


def status_report(condstore: bool) -> tuple[StatusItem, ...]:
    return (*_STATUS, StatusItem.HIGHESTMODSEQ) if condstore else _STATUS


_EVENT_OF_KIND = {
    ChangeKind.EXISTS: Event.MESSAGE_NEW,
    ChangeKind.EXPUNGE: Event.MESSAGE_EXPUNGE,
    ChangeKind.FLAGS: Event.FLAG_CHANGE,
}


@dataclass(frozen=True, slots=True)
class SelectedRule:
    """What the ``selected`` or ``selected-delayed`` filter asked for (RFC 5465 §6.1).
    ``delayed``: expunges wait for a command that may report them (§6.1.2)."""

    delayed: bool
    events: frozenset[Event]
    fetch: tuple[FetchAtt, ...] = ()

    @property
    def flags(self) -> bool:
        return Event.FLAG_CHANGE in self.events


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """One unsolicited METADATA notification (RFC 5465 §5.9, §5.10; RFC 5464 §4.4.2): the
    entries of a mailbox (store name), or of the server (``mailbox`` None), that were set
    or removed."""

    mailbox: str | None
    entries: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Listed:
    """One LIST notification (§5.4, §5.5), in store names."""

    name: str
    nonexistent: bool = False
    oldname: str | None = None
    subscribed: bool = False


def _within(name: str, root: str) -> bool:
    return name == root or name.startswith(root + SEPARATOR)


class Watch:
    """The filters of one NOTIFY SET other than ``selected`` (RFC 5465 §6), compiled."""

    def __init__(self, groups: Iterable[EventGroup]) -> None:
        self.groups = tuple(g for g in groups if not g.kind.selected and g.events)

    def events_for(
        self, name: str, subscribed: set[str], *, personal: bool = True
    ) -> frozenset[Event]:
        """The events asked for ``name``: the union over every filter that matches it, as
        Dovecot does (the RFC does not say how overlapping filters combine)."""
        found: set[Event] = set()
        for g in self.groups:
            match g.kind:
                case FilterKind.PERSONAL | FilterKind.INBOXES:
                    # §6.3: every mailbox may receive new mail here (Sieve fileinto, plus
                    # addressing), so "inboxes" is "personal", as the RFC allows.
                    hit = personal
                case FilterKind.SUBSCRIBED:
                    hit = name in subscribed
                case FilterKind.SUBTREE:
                    hit = any(_within(name, root) for root in g.names)
                case FilterKind.MAILBOXES:
                    hit = name in g.names
                case _:
                    hit = False
            if hit:
                found |= g.events
        return frozenset(found)


class Notifications:
    """One session's NOTIFY state (see the module docstring)."""

    def __init__(
        self,
        groups: tuple[EventGroup, ...],
        subscription: Subscription,
        mailboxes: Iterable[Mailbox],
        subscribed: Iterable[str],
        *,
        max_backlog: int,
    ) -> None:
        self.watch = Watch(groups)
        rule = next((g for g in groups if g.kind.selected), None)
        self.selected: SelectedRule | None = None
        if rule is not None and rule.events:
            self.selected = SelectedRule(
                rule.kind is FilterKind.SELECTED_DELAYED, rule.events, rule.fetch
            )
        self.subscription = subscription
        self.max_backlog = max_backlog
        self.names: dict[int, str] = {b.id: b.name for b in mailboxes}
        self.subscribed: set[str] = set(subscribed)
        self.overflowed = False
        #: Called when a change arrives while the session may push (between commands, in
        #: IDLE); None otherwise.
        self.wake: Callable[[], None] | None = None
        self._status: dict[int, None] = {}  # mailbox ids owing a STATUS, in order
        self._lists: list[Listed] = []
        self._metadata: list[MetadataChanged] = []
        self._touched: dict[str, None] = {}  # names whose subscription may have changed
        subscription.set_notifier(self._arrived)

    # -- arrivals (on the loop thread, right after each commit) -----------------------------
    def _arrived(self) -> None:
        if self.subscription.backlog() > self.max_backlog:
            self.overflow()
        if self.wake is not None:
            self.wake()

    def overflow(self) -> None:
        """Stop collecting (RFC 5465 §5.8); the next delivery says so and ends NOTIFY."""
        if self.overflowed:
            return
        self.overflowed = True
        self.subscription.close()
        self.subscription.drain()
        self._status.clear()
        self._lists.clear()
        self._metadata.clear()
        self._touched.clear()

    def close(self) -> None:
        self.wake = None
        self.subscription.close()

    @property
    def pending(self) -> bool:
        return bool(
            self.overflowed
            or self.subscription.backlog()
            or self._status
            or self._lists
            or self._metadata
            or self._touched
        )

    # -- folding changes into pending work --------------------------------------------------
    def absorb(self, selected_id: int | None) -> None:
        """Fold what arrived into pending STATUS and LIST notifications. Message changes of
        the selected mailbox are its view's business, not ours."""
        for ev in self.subscription.drain():
            self._absorb(ev, selected_id)

    def _absorb(self, ev: ChangeEvent, selected_id: int | None) -> None:
        event = _EVENT_OF_KIND.get(ev.kind)
        if event is not None:
            name = self.names.get(ev.mailbox_id)
            if name is None or ev.mailbox_id == selected_id:
                return
            if event in self.watch.events_for(name, self.subscribed):
                self._status[ev.mailbox_id] = None
            return
        match ev.kind:
            case ChangeKind.MAILBOX_CREATED if ev.name is not None:
                self.names[ev.mailbox_id] = ev.name
                self._list(Listed(ev.name))
            case ChangeKind.MAILBOX_RENAMED if ev.name is not None:
                old = self.names.get(ev.mailbox_id)
                self.names[ev.mailbox_id] = ev.name
                if old is not None and old != "INBOX" and old in self.subscribed:
                    # The store moved the subscription with the name (RFC 9051 §6.3.6).
                    self.subscribed.discard(old)
                    self.subscribed.add(ev.name)
                self._list(Listed(ev.name, oldname=old), also=old)
            case ChangeKind.MAILBOX_DELETED if ev.name is not None:
                self.names.pop(ev.mailbox_id, None)
                self._status.pop(ev.mailbox_id, None)
                self._list(Listed(ev.name, nonexistent=True))
            case ChangeKind.SUBSCRIPTION if ev.name is not None:
                self._touched[ev.name] = None
            case ChangeKind.MAILBOX_METADATA:
                # §5.9: any mailbox a filter watches, the selected one included (its own
                # filter may ask for message events only, §6.1).
                name = self.names.get(ev.mailbox_id)
                if name is not None and Event.MAILBOX_METADATA_CHANGE in self.watch.events_for(
                    name, self.subscribed
                ):
                    self._metadata.append(MetadataChanged(name, ev.entries))
            case ChangeKind.SERVER_METADATA:
                # §5.10: about no mailbox; asked for in any filter group.
                if any(Event.SERVER_METADATA_CHANGE in g.events for g in self.watch.groups):
                    self._metadata.append(MetadataChanged(None, ev.entries))

    def _list(self, note: Listed, *, also: str | None = None) -> None:
        """Queue a MailboxName LIST if a filter asks for it on the name (or the old name)."""
        for name in (note.name, also):
            if name is not None and Event.MAILBOX_NAME in self.watch.events_for(
                name, self.subscribed
            ):
                self._lists.append(note)
                return

    # -- what the session writes ------------------------------------------------------------
    def take_lists(self) -> list[Listed]:
        out, self._lists = self._lists, []
        return out

    def take_metadata(self) -> list[MetadataChanged]:
        out, self._metadata = self._metadata, []
        return out

    def take_status(self) -> list[int]:
        out = list(self._status)
        self._status.clear()
        return out

    @property
    def subscriptions_touched(self) -> bool:
        return bool(self._touched)

    def subscriptions_now(self, now: Iterable[str]) -> list[Listed]:
        """The SubscriptionChange LISTs (§5.5) once the store's subscriptions were re-read:
        one per touched name whose state really changed and that a filter watches."""
        after = set(now)
        before = self.subscribed
        self.subscribed = after
        out: list[Listed] = []
        for name in self._touched:
            if (name in before) == (name in after):
                continue
            watched = self.watch.events_for(name, before | after)
            if Event.SUBSCRIPTION_CHANGE in watched:
                out.append(Listed(name, subscribed=name in after))
        self._touched.clear()
        return out

    def has_children(self, name: str) -> bool:
        prefix = name + SEPARATOR
        return any(n.startswith(prefix) for n in self.names.values())


def watched_for_status(
    watch: Watch, mailboxes: Iterable[Mailbox], subscribed: set[str], selected_id: int | None
) -> list[Mailbox]:
    """The mailboxes NOTIFY SET STATUS reports at once (RFC 5465 §3.1): those a filter
    asks message events for, other than the selected one, that can hold messages."""
    return [
        b
        for b in mailboxes
        if b.id != selected_id
        and not b.noselect
        and watch.events_for(b.name, subscribed) & MESSAGE_EVENTS
    ]
