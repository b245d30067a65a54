"""The NOTIFY grammar (RFC 5465 §8) through the command table, and the bookkeeping that
turns change events into pending notifications (imap/notify.py), without a server."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.notify import Listed, Notifications, Watch
from mailstead.imap.parse.commands import parse_command
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.fetch import FetchAtt, FetchItem
from mailstead.imap.parse.notify import (
    MAX_GROUPS,
    MAX_NAMES,
    Event,
    EventGroup,
    FilterKind,
    NotifyArgs,
)
from mailstead.store.changes import ChangeBus
from mailstead.store.models import ChangeEvent, ChangeKind, Mailbox

NEW_EXPUNGE = frozenset({Event.MESSAGE_NEW, Event.MESSAGE_EXPUNGE})


def _parse(line: bytes) -> NotifyArgs:
    args = parse_command(line, GRAMMARS).args
    assert isinstance(args, NotifyArgs)
    return args


def test_notify_none_and_set_with_every_filter() -> None:
    assert _parse(b"a NOTIFY none") == NotifyArgs(None)
    args = _parse(
        b'a NOTIFY SET status (SELECTED (MessageNew (UID BODY.PEEK[HEADER]) messageexpunge '
        b'FlagChange)) (Subtree (INBOX "a b") (MessageNew MessageExpunge)) '
        b"(mailboxes Lists (MailboxName)) (subscribed (SubscriptionChange)) "
        b"(inboxes NONE) (personal (MailboxName SubscriptionChange Whatever))"
    )
    assert args.status
    assert args.groups is not None
    selected, subtree, mailboxes, subscribed, inboxes, personal = args.groups
    assert selected.kind is FilterKind.SELECTED
    assert selected.events == NEW_EXPUNGE | {Event.FLAG_CHANGE}
    assert [(a.item, a.peek) for a in selected.fetch] == [
        (FetchItem.UID, False), (FetchItem.BODY, True)
    ]
    assert subtree == EventGroup(FilterKind.SUBTREE, ("INBOX", "a b"), NEW_EXPUNGE)
    assert mailboxes.names == ("Lists",)
    assert subscribed.events == {Event.SUBSCRIPTION_CHANGE}
    assert inboxes.events == frozenset()
    # An unknown event is kept for the handler's NO [BADEVENT] (RFC 5465 §3.1).
    assert personal.unknown == ("Whatever",)


@pytest.mark.parametrize(
    "line",
    [
        b"a NOTIFY",
        b"a NOTIFY SET",
        b"a NOTIFY NONE extra",
        b"a NOTIFY SET STATUS",
        b"a NOTIFY SET (personal)",
        b"a NOTIFY SET (personal ())",
        b"a NOTIFY SET (personal (MessageNew))",
        b"a NOTIFY SET (personal (FlagChange MessageNew))",
        b"a NOTIFY SET (personal (AnnotationChange))",
        b"a NOTIFY SET (selected (MessageNew MessageExpunge MailboxName))",
        b"a NOTIFY SET (selected NONE) (selected-delayed NONE)",
        b"a NOTIFY SET (inboxes (MessageNew (UID) MessageExpunge))",
        b"a NOTIFY SET (subtree (MessageNew MessageExpunge))",
        b"a NOTIFY SET (mailboxes () (MessageNew MessageExpunge))",
        b"a NOTIFY SET (personal (MailboxName MailboxName))",
        b"a NOTIFY SET (personal (MailboxName)",
        b"a NOTIFY SET (personal (MailboxName)) junk",
        b"a NOTIFY SET (everything (MailboxName))",
        b"a NOTIFY SET (personal SOME)",
    ],
)
def test_malformed_notify_is_a_parse_error(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(line, GRAMMARS)


def test_limits_on_groups_and_names() -> None:
    group = b" (personal (MailboxName))"
    parse_command(b"a NOTIFY SET" + group * MAX_GROUPS, GRAMMARS)
    with pytest.raises(ParseError):
        parse_command(b"a NOTIFY SET" + group * (MAX_GROUPS + 1), GRAMMARS)
    names = b" ".join(b"m%d" % n for n in range(MAX_NAMES))
    parse_command(b"a NOTIFY SET (mailboxes (" + names + b") (MailboxName))", GRAMMARS)
    with pytest.raises(ParseError):
        parse_command(b"a NOTIFY SET (mailboxes (" + names + b" x) (MailboxName))", GRAMMARS)


_FILTERS = st.sampled_from(
    ["selected", "selected-delayed", "inboxes", "personal", "subscribed", "subtree X",
     "mailboxes (X Y)"]
)
_EVENTS = st.sampled_from([e.value for e in Event] + ["NONE", "Other", "(", ")", "(UID)"])


@given(st.lists(st.tuples(_FILTERS, st.lists(_EVENTS, max_size=6)), max_size=4),
       st.booleans())
@settings(max_examples=400, deadline=None)
def test_any_notify_line_parses_or_is_refused_cleanly(
    groups: list[tuple[str, list[str]]], status: bool
) -> None:
    """Whatever the mix, the parser answers a record whose groups obey RFC 5465 §5 and
    §6.1, or a ParseError: never another exception."""
    text = "a NOTIFY SET" + (" STATUS" if status else "") + "".join(
        f" ({f} ({' '.join(events)}))" for f, events in groups
    )
    try:
        args = _parse(text.encode())
    except ParseError:
        return
    assert args.groups is not None and args.status is status
    assert sum(g.kind.selected for g in args.groups) <= 1
    for g in args.groups:
        assert (Event.MESSAGE_NEW in g.events) == (Event.MESSAGE_EXPUNGE in g.events)
        if Event.FLAG_CHANGE in g.events:
            assert Event.MESSAGE_NEW in g.events
        if g.kind.selected:
            assert all(e.about_messages for e in g.events)
        else:
            assert not g.fetch


@given(st.binary(max_size=120))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_after_notify_never_crash(tail: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_command(b"a NOTIFY " + tail, GRAMMARS)


# -- the bookkeeping -----------------------------------------------------------------------


def _box(mailbox_id: int, name: str) -> Mailbox:
    return Mailbox(mailbox_id, 1, name, 7, 1, 1, None, False)


def _watching(*groups: EventGroup, backlog: int = 100) -> tuple[ChangeBus, Notifications]:
    bus = ChangeBus()
    boxes = [_box(1, "INBOX"), _box(2, "Work"), _box(3, "Work/Old"), _box(4, "Play")]
    return bus, Notifications(groups, bus.subscribe(1), boxes, ["Play"], max_backlog=backlog)


def test_watch_takes_the_union_of_matching_filters() -> None:
    watch = Watch([
        EventGroup(FilterKind.SUBTREE, ("Work",), NEW_EXPUNGE),
        EventGroup(FilterKind.MAILBOXES, ("Work/Old",), frozenset({Event.MAILBOX_NAME})),
        EventGroup(FilterKind.SUBSCRIBED, (), frozenset({Event.SUBSCRIPTION_CHANGE})),
    ])
    assert watch.events_for("Work/Old", set()) == NEW_EXPUNGE | {Event.MAILBOX_NAME}
    assert watch.events_for("Work", set()) == NEW_EXPUNGE
    assert watch.events_for("Workshop", set()) == frozenset()
    assert watch.events_for("Play", {"Play"}) == {Event.SUBSCRIPTION_CHANGE}
    # Shared mailboxes (not personal) match only the filters that name them.
    assert watch.events_for("Work", set(), personal=False) == NEW_EXPUNGE
    everything = Watch([EventGroup(FilterKind.PERSONAL, (), NEW_EXPUNGE)])
    assert everything.events_for("Play", set(), personal=False) == frozenset()


def test_message_changes_coalesce_into_one_status_and_skip_the_selected_mailbox() -> None:
    bus, notes = _watching(EventGroup(FilterKind.PERSONAL, (), NEW_EXPUNGE))
    bus.publish([ChangeEvent(1, 2, ChangeKind.EXISTS, (1,)),
                 ChangeEvent(1, 2, ChangeKind.EXISTS, (2,)),
                 ChangeEvent(1, 2, ChangeKind.FLAGS, (1,)),  # FlagChange not asked
                 ChangeEvent(1, 4, ChangeKind.FLAGS, (1,)),
                 ChangeEvent(1, 1, ChangeKind.EXISTS, (5,)),  # the selected one
                 ChangeEvent(1, 3, ChangeKind.EXPUNGE, (3,))])
    notes.absorb(selected_id=1)
    assert notes.take_status() == [2, 3]
    assert notes.take_status() == []


def test_mailbox_names_and_subscriptions_make_lists() -> None:
    bus, notes = _watching(EventGroup(
        FilterKind.PERSONAL, (), frozenset({Event.MAILBOX_NAME, Event.SUBSCRIPTION_CHANGE})
    ))
    bus.publish([ChangeEvent(1, 5, ChangeKind.MAILBOX_CREATED, name="New"),
                 ChangeEvent(1, 4, ChangeKind.MAILBOX_RENAMED, name="Games"),
                 ChangeEvent(1, 2, ChangeKind.MAILBOX_DELETED, name="Work"),
                 ChangeEvent(1, 0, ChangeKind.SUBSCRIPTION, name="New"),
                 ChangeEvent(1, 0, ChangeKind.SUBSCRIPTION, name="Games")])
    notes.absorb(selected_id=None)
    assert notes.take_lists() == [Listed("New"), Listed("Games", oldname="Play"),
                                  Listed("Work", nonexistent=True)]
    # The rename moved Play's subscription to Games; only New really changed.
    assert notes.subscriptions_touched
    assert notes.subscriptions_now(["Games", "New"]) == [Listed("New", subscribed=True)]
    assert not notes.subscriptions_touched
    assert notes.names == {1: "INBOX", 3: "Work/Old", 4: "Games", 5: "New"}


def test_a_backlog_past_the_bound_overflows_and_stops_collecting() -> None:
    bus, notes = _watching(EventGroup(FilterKind.PERSONAL, (), NEW_EXPUNGE), backlog=3)
    woken: list[int] = []
    notes.wake = lambda: woken.append(1)
    bus.publish([ChangeEvent(1, 2, ChangeKind.EXISTS, (n,)) for n in range(3)])
    assert not notes.overflowed and woken == [1]
    bus.publish([ChangeEvent(1, 2, ChangeKind.EXISTS, (9,))])
    assert notes.overflowed and notes.pending
    assert notes.subscription.backlog() == 0
    bus.publish([ChangeEvent(1, 2, ChangeKind.EXISTS, (10,))])  # no longer subscribed
    assert notes.subscription.backlog() == 0 and len(woken) == 2


def test_closing_leaves_the_bus() -> None:
    bus, notes = _watching(EventGroup(FilterKind.PERSONAL, (), NEW_EXPUNGE))
    notes.close()
    bus.publish([ChangeEvent(1, 2, ChangeKind.EXISTS, (1,))])
    assert notes.subscription.backlog() == 0 and not notes.pending


def test_fetch_attributes_stay_with_the_selected_rule() -> None:
    args = _parse(b"a NOTIFY SET (selected-delayed (MessageNew (FLAGS) MessageExpunge))")
    assert args.groups is not None
    _, notes = _watching(*args.groups)
    assert notes.selected is not None and notes.selected.delayed
    assert notes.selected.fetch == (FetchAtt(FetchItem.FLAGS),)
    assert not notes.selected.flags
    assert not notes.watch.groups  # nothing watched beyond the selected mailbox


def test_a_rename_out_of_a_watched_subtree_is_still_told() -> None:
    bus, notes = _watching(
        EventGroup(FilterKind.SUBTREE, ("Work",), frozenset({Event.MAILBOX_NAME}))
    )
    bus.publish([ChangeEvent(1, 3, ChangeKind.MAILBOX_RENAMED, name="Elsewhere"),
                 ChangeEvent(1, 4, ChangeKind.MAILBOX_RENAMED, name="Games")])
    notes.absorb(selected_id=None)
    assert notes.take_lists() == [Listed("Elsewhere", oldname="Work/Old")]
