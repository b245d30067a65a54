"""NOTIFY (RFC 5465): one session asks for notifications, another makes the changes, and
the first must see exactly the untagged responses the RFC prescribes, between commands,
in IDLE and at command boundaries."""

from __future__ import annotations

import imaplib
import re
import socket
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import (
    SIMPLE_MESSAGE,
    Raw,
    append,
    connect,
    imap_config,
    status_of,
)

ALL_PERSONAL = (
    "NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
)
STATUS_LINE = re.compile(
    rb'^\* STATUS "([^"]+)" \(MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY \d+ UNSEEN (\d+)\)\r\n$'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    # A small backlog, so the overflow test needs few changes.
    config = imap_config(imap_notify_max_backlog=50)
    with ServerThread(tmp_path_factory.mktemp("imap-notify"), config) as srv:
        yield srv


@pytest.fixture
def other(server: ServerThread, account: str) -> Iterator[imaplib.IMAP4]:
    c = connect(server, account)
    yield c
    c.logout()


def _ok(lines: list[bytes]) -> list[bytes]:
    assert status_of(lines) == b"OK", lines
    return lines[:-1]


def _status(line: bytes) -> tuple[bytes, int, int, int]:
    m = STATUS_LINE.match(line)
    assert m is not None, line
    return m[1], int(m[2]), int(m[3]), int(m[4])


def _quiet(raw: Raw) -> None:
    """Nothing more was pushed: a NOOP's reply is the next line."""
    assert raw.command("NOOP")[0].split()[1] == b"OK"


# -- the grammar and its errors -----------------------------------------------------------


def test_capability_advertises_notify(raw: Raw) -> None:
    caps = _ok(raw.command("CAPABILITY"))[0].split()
    assert b"NOTIFY" in caps


@pytest.mark.parametrize(
    "arguments",
    [
        "SET (personal (MessageNew))",  # §5: MessageNew and MessageExpunge together
        "SET (personal (MessageExpunge))",
        "SET (personal (FlagChange))",  # §5: FlagChange needs both
        "SET (selected (MailboxName))",  # §6.1: message events only
        "SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew "
        "MessageExpunge))",  # §6.1: one of them
        "SET (personal (MessageNew (UID) MessageExpunge))",  # fetch-atts: selected only
        "SET (bogus (MessageNew MessageExpunge))",
        "SET",
        "SET STATUS",
        "SET (personal)",
        "SET (personal (MessageNew MessageNew MessageExpunge))",
        "SET (subtree (MessageNew MessageExpunge))",
        "MAYBE",
    ],
)
def test_malformed_notify_is_bad(raw: Raw, arguments: str) -> None:
    assert status_of(raw.command(f"NOTIFY {arguments}")) == b"BAD"


@pytest.mark.parametrize(
    "events",
    [
        "AnnotationChange MessageNew MessageExpunge",
        "SomethingNew",
    ],
)
def test_unsupported_events_are_no_badevent(raw: Raw, events: str) -> None:
    lines = raw.command(f"NOTIFY SET (personal ({events}))")
    # RFC 5465 §3.1: NO (not BAD), BADEVENT listing the events the server supports.
    assert lines[-1].split(b" ", 2)[1:] == [
        b"NO",
        b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "
        b"MailboxMetadataChange ServerMetadataChange)] Unsupported NOTIFY events\r\n",
    ]


def test_badevent_keeps_the_earlier_notify(raw: Raw, other: imaplib.IMAP4) -> None:
    _ok(raw.command(ALL_PERSONAL))
    assert status_of(raw.command("NOTIFY SET (personal (SomethingNew))")) == b"NO"
    other.create("Kept")
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "Kept"\r\n'


def test_notify_none_and_notify_set_none_are_ok(raw: Raw) -> None:
    _ok(raw.command("NOTIFY NONE"))
    _ok(raw.command("NOTIFY SET (personal NONE) (selected NONE)"))
    _ok(raw.command('NOTIFY SET (mailboxes ("no such" Other) (MessageNew MessageExpunge))'))


# -- other mailboxes: STATUS -----------------------------------------------------------------


def test_message_events_in_other_mailboxes_push_status(raw: Raw, other: imaplib.IMAP4) -> None:
    other.create("Lists")
    _ok(raw.command("SELECT INBOX"))
    _ok(raw.command(ALL_PERSONAL))
    append(other, mailbox="Lists")
    assert _status(raw.readline()) == (b"Lists", 1, 2, 1)
    other.select("Lists")
    other.store("1", "+FLAGS", "(\\Seen)")
    assert _status(raw.readline()) == (b"Lists", 1, 2, 0)
    other.store("1", "+FLAGS", "(\\Deleted)")
    assert _status(raw.readline()) == (b"Lists", 1, 2, 0)
    other.expunge()
    assert _status(raw.readline()) == (b"Lists", 0, 2, 0)
    _quiet(raw)


def test_status_carries_highestmodseq_with_condstore(raw: Raw, other: imaplib.IMAP4) -> None:
    other.create("Box")
    _ok(raw.command("ENABLE CONDSTORE"))
    _ok(raw.command(ALL_PERSONAL))
    append(other, mailbox="Box")
    line = raw.readline()
    assert re.match(
        rb'\* STATUS "Box" \(MESSAGES 1 UIDNEXT 2 HIGHESTMODSEQ \d+ UIDVALIDITY \d+ UNSEEN 1\)',
        line,
    ), line


def test_notify_set_status_reports_every_watched_mailbox(raw: Raw, other: imaplib.IMAP4) -> None:
    other.create("A")
    other.create("B/C/D")
    other.delete("B/C")  # \Noselect now, kept for its child
    append(other, mailbox="A")
    _ok(raw.command("SELECT A"))
    lines = _ok(raw.command("NOTIFY SET STATUS (personal (MessageNew MessageExpunge))"))
    # Not the selected mailbox, not \Noselect names; each before the tagged OK.
    reported = [_status(line)[0] for line in lines]
    assert {b"INBOX", b"B", b"B/C/D", b"Trash"} <= set(reported)
    assert b"A" not in reported and b"B/C" not in reported
    assert len(reported) == len(set(reported))
    lines = _ok(raw.command("NOTIFY SET STATUS (subtree B (MessageNew MessageExpunge))"))
    assert sorted(_status(line)[0] for line in lines) == [b"B", b"B/C/D"]
    # Without message events nothing needs a STATUS.
    assert _ok(raw.command("NOTIFY SET STATUS (personal (MailboxName))")) == []


def test_filters_choose_the_mailboxes(raw: Raw, other: imaplib.IMAP4) -> None:
    for name in ("Work", "Work/Reports", "Play", "Sub"):
        other.create(name)
    other.subscribe("Sub")
    _ok(
        raw.command(
            "NOTIFY SET (subtree Work (MessageNew MessageExpunge)) "
            "(mailboxes Play (MessageNew MessageExpunge)) (subscribed (MessageNew MessageExpunge))"
        )
    )
    other.create("Unwatched")
    append(other, mailbox="Unwatched")  # watched by no filter
    append(other, mailbox="Work/Reports")
    assert _status(raw.readline())[0] == b"Work/Reports"
    append(other, mailbox="Play")
    assert _status(raw.readline())[0] == b"Play"
    append(other, mailbox="Sub")
    assert _status(raw.readline())[0] == b"Sub"
    _quiet(raw)


def test_changes_coalesce_into_one_status_per_mailbox(raw: Raw, other: imaplib.IMAP4) -> None:
    other.create("Busy")
    _ok(raw.command(ALL_PERSONAL))
    raw.send("w1 SEARCH ALL\r\n")  # no mailbox selected: NO, but a command boundary later
    assert raw.readline().startswith(b"w1 ")
    # Changes made while the session runs a long command arrive as one STATUS after it.
    raw.send("i1 IDLE\r\n")
    assert raw.readline().startswith(b"+ ")
    append(other, mailbox="Busy")
    assert _status(raw.readline())[:2] == (b"Busy", 1)
    raw.send("DONE\r\n")
    assert raw.readline().startswith(b"i1 OK")


# -- mailbox names and subscriptions: LIST ---------------------------------------------------


def test_mailbox_name_and_subscription_changes_push_list(raw: Raw, other: imaplib.IMAP4) -> None:
    _ok(raw.command(ALL_PERSONAL))
    other.create("Bar")
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "Bar"\r\n'
    other.rename("Bar", "Baz")
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "Baz" ("OLDNAME" ("Bar"))\r\n'
    other.subscribe("Baz")
    assert raw.readline() == b'* LIST (\\HasNoChildren \\Subscribed) "/" "Baz"\r\n'
    other.subscribe("Baz")  # no change, no notification
    other.unsubscribe("Baz")
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "Baz"\r\n'
    other.delete("Baz")
    assert raw.readline() == b'* LIST (\\NonExistent) "/" "Baz"\r\n'
    other.subscribe("Gone")  # a name that is no mailbox may be subscribed
    assert raw.readline() == b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n'
    other.create("P/Q")  # the parent is created too, each gets its LIST
    assert raw.readline() == b'* LIST (\\HasChildren) "/" "P"\r\n'
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "P/Q"\r\n'
    _quiet(raw)


def test_rename_with_children_lists_each_with_its_old_name(raw: Raw, other: imaplib.IMAP4
                                                           ) -> None:
    other.create("R/S")
    _ok(raw.command(ALL_PERSONAL))
    other.rename("R", "T")
    assert raw.readline() == b'* LIST (\\HasChildren) "/" "T" ("OLDNAME" ("R"))\r\n'
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "T/S" ("OLDNAME" ("R/S"))\r\n'
    # RFC 9051 §6.3.6: INBOX's messages move to the new name and a new INBOX appears.
    other.rename("INBOX", "Old")
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "Old" ("OLDNAME" ("INBOX"))\r\n'
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    _quiet(raw)


def test_own_changes_are_notified_before_the_tagged_reply(raw: Raw) -> None:
    _ok(raw.command(ALL_PERSONAL))
    assert _ok(raw.command("CREATE Mine")) == [b'* LIST (\\HasNoChildren) "/" "Mine"\r\n']


def test_notify_none_stops_notifications(raw: Raw, other: imaplib.IMAP4) -> None:
    _ok(raw.command(ALL_PERSONAL))
    _ok(raw.command("NOTIFY NONE"))
    other.create("Silent")
    append(other)
    _quiet(raw)


# -- the selected mailbox ------------------------------------------------------------------


def test_selected_pushes_exists_fetch_and_expunge(raw: Raw, other: imaplib.IMAP4) -> None:
    _ok(raw.command("SELECT INBOX"))
    _ok(raw.command("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"))
    append(other)  # between commands, no IDLE
    assert raw.readline() == b"* 1 EXISTS\r\n"
    assert raw.readline() == b"* 1 RECENT\r\n"
    assert raw.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n"
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Flagged)")
    assert raw.readline() == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    other.store("1", "+FLAGS", "(\\Deleted)")
    assert raw.readline().startswith(b"* 1 FETCH (FLAGS (")
    other.expunge()
    assert raw.readline() == b"* 1 EXPUNGE\r\n"
    assert raw.readline() == b"* 0 RECENT\r\n"
    _quiet(raw)


def test_selected_without_flagchange_keeps_flags_for_the_next_command(
    raw: Raw, other: imaplib.IMAP4
) -> None:
    append(other)
    _ok(raw.command("SELECT INBOX"))
    _ok(raw.command("NOTIFY SET (selected (MessageNew MessageExpunge))"))
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Flagged)")
    append(other)
    assert raw.readline() == b"* 2 EXISTS\r\n"
    assert raw.readline() == b"* 2 RECENT\r\n"
    # The flag change was not pushed; the next command's flush point reports it.
    assert _ok(raw.command("NOOP")) == [b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"]


def test_selected_delayed_holds_expunges_until_a_command_allows_them(
    raw: Raw, other: imaplib.IMAP4
) -> None:
    append(other)
    append(other)
    _ok(raw.command("SELECT INBOX"))
    _ok(raw.command("NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange))"))
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Deleted)")
    assert raw.readline() == b"* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
    other.expunge()
    append(other)
    assert raw.readline() == b"* 3 EXISTS\r\n"  # pushed, the expunge is not
    assert raw.readline() == b"* 3 RECENT\r\n"
    # FETCH may not report it either (RFC 9051 §7.5.1), NOOP does.
    assert _ok(raw.command("FETCH 2 UID")) == [b"* 2 FETCH (UID 2)\r\n"]
    assert _ok(raw.command("NOOP")) == [b"* 1 EXPUNGE\r\n", b"* 2 RECENT\r\n"]


def test_without_selected_filter_nothing_is_pushed_for_the_selected_mailbox(
    raw: Raw, other: imaplib.IMAP4
) -> None:
    _ok(raw.command("SELECT INBOX"))
    _ok(raw.command(ALL_PERSONAL))
    append(other)  # INBOX is selected: neither pushed nor reported by STATUS
    other.create("Elsewhere")
    assert raw.readline() == b'* LIST (\\HasNoChildren) "/" "Elsewhere"\r\n'
    # The command boundary still tells what the base protocol tells (RFC 9051 §7).
    assert _ok(raw.command("NOOP")) == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"]


def test_idle_with_notify_sends_what_notify_asked(raw: Raw, other: imaplib.IMAP4) -> None:
    other.create("Side")
    _ok(raw.command("SELECT INBOX"))
    _ok(
        raw.command(
            "NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) "
            "(personal (MessageNew MessageExpunge))"
        )
    )
    raw.send("i1 IDLE\r\n")
    assert raw.readline().startswith(b"+ ")
    uid = append(other)
    assert raw.readline() == b"* 1 EXISTS\r\n"
    assert raw.readline() == b"* 1 RECENT\r\n"
    append(other, mailbox="Side")
    assert _status(raw.readline())[0] == b"Side"
    other.select("INBOX")
    other.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")  # no FlagChange: not pushed
    other.expunge()
    # IDLE allows expunges, even with selected-delayed (RFC 5465 §6.1.2).
    assert raw.readline() == b"* 1 EXPUNGE\r\n"
    assert raw.readline() == b"* 0 RECENT\r\n"
    raw.send("DONE\r\n")
    assert raw.readline().startswith(b"i1 OK")


def test_selected_mailbox_deleted_while_notifying(raw: Raw, other: imaplib.IMAP4) -> None:
    other.create("Doomed")
    _ok(raw.command("SELECT Doomed"))
    _ok(raw.command("NOTIFY SET (selected (MessageNew MessageExpunge))"))
    other.delete("Doomed")
    assert raw.readline() == b"* BYE Selected mailbox was deleted\r\n"
    with pytest.raises((ConnectionError, OSError)):
        raw.readline()


# -- overflow --------------------------------------------------------------------------------

BIG = SIMPLE_MESSAGE + b"x" * (1024 * 1024) + b"\r\n"


def test_a_client_that_falls_behind_gets_notificationoverflow(
    server: ServerThread, account: str, other: imaplib.IMAP4
) -> None:
    # A client that reads nothing while its server pushes megabytes: the push waits for
    # it, the changes behind it pile up past the backlog (50 in this module), and NOTIFY
    # ends with one untagged OK (RFC 5465 §5.8) instead of queueing without bound.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port("imap")))
    raw = Raw.over(sock, login=account)
    try:
        _ok(raw.command("SELECT INBOX"))
        _ok(
            raw.command(
                "NOTIFY SET (selected (MessageNew (BODY.PEEK[]) MessageExpunge)) "
                "(personal (MailboxName))"
            )
        )
        for _ in range(8):
            other.append("INBOX", None, None, BIG)
        for n in range(120):
            other.create(f"Flood{n}")
        seen: list[bytes] = []
        while not seen or b"NOTIFICATIONOVERFLOW" not in seen[-1]:
            seen.append(raw.readline())
        assert seen[-1] == (
            b"* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off\r\n"
        )
        assert not [line for line in seen if line.startswith(b"* LIST")]
        # As after NOTIFY NONE: nothing is pushed any more; the next command reports what
        # the base protocol reports for the selected mailbox.
        other.create("After")
        lines = raw.command("NOOP")
        assert status_of(lines) == b"OK"
        assert not [line for line in lines if line.startswith((b"* LIST", b"* STATUS"))]
    finally:
        raw.close()


def test_names_follow_the_clients_hierarchy_separator(tmp_path_factory: pytest.TempPathFactory
                                                      ) -> None:
    config = {**imap_config(), "imap": {"hierarchy_separator": "."}}
    with ServerThread(tmp_path_factory.mktemp("imap-notify-dot"), config) as srv:
        address = "dotted@example.com"
        srv.add_user(address, "correct horse")
        other = connect(srv, address)
        raw = Raw(srv.port("imap"), login=address)
        try:
            other.create("W.X")
            _ok(raw.command("NOTIFY SET (mailboxes W.X (MessageNew MessageExpunge)) "
                            "(subtree W (MailboxName))"))
            append(other, mailbox="W.X")
            assert _status(raw.readline())[0] == b"W.X"
            other.rename("W.X", "W.Y")
            assert raw.readline() == b'* LIST (\\HasNoChildren) "." "W.Y" ("OLDNAME" ("W.X"))\r\n'
            other.create("Elsewhere.Z")
            _quiet(raw)
        finally:
            raw.close()
            other.logout()


# -- metadata (RFC 5465 §5.9, §5.10) --------------------------------------------------------


@pytest.fixture
def writer(server: ServerThread, account: str) -> Iterator[Raw]:
    """A second session that makes the changes, at the line level (imaplib has no
    SETMETADATA)."""
    r = Raw(server.port("imap"), login=account)
    yield r
    r.close()


def test_a_watched_mailbox_s_metadata_change_is_announced(raw: Raw, writer: Raw) -> None:
    """§5.9: an unsolicited METADATA response (RFC 5464 §4.4.2) naming the entries set or
    removed, without their values; a mailbox no filter watches for it says nothing."""
    _ok(writer.command("CREATE Notes"))
    _ok(raw.command("NOTIFY SET (mailboxes INBOX (MailboxMetadataChange))"))
    _ok(writer.command('SETMETADATA INBOX (/private/comment "hello" /shared/comment "all")'))
    assert raw.readline() == b"* METADATA \"INBOX\" /private/comment /shared/comment\r\n"
    _ok(writer.command('SETMETADATA Notes (/private/comment "elsewhere")'))
    _ok(writer.command("SETMETADATA INBOX (/private/comment NIL)"))
    assert raw.readline() == b"* METADATA \"INBOX\" /private/comment\r\n"  # a removal too
    _quiet(raw)


def test_a_server_metadata_change_is_announced(raw: Raw, writer: Raw) -> None:
    """§5.10: the server's entries, as the mailbox ``""``."""
    _ok(raw.command("NOTIFY SET (personal (ServerMetadataChange))"))
    _ok(writer.command('SETMETADATA "" (/private/vendor/mailstead/x "1")'))
    assert raw.readline() == b'* METADATA "" /private/vendor/mailstead/x\r\n'
    _quiet(raw)
