"""Many devices, one mailbox: untagged EXISTS / FETCH / EXPUNGE across sessions, IDLE push,
and RFC 9051 §7.5.1 (no EXPUNGE during FETCH, STORE or SEARCH)."""

from __future__ import annotations

import imaplib
import poplib

from mailstead.store.models import Recipient
from mailstead.testing.server import ServerThread
from tests.imap.conftest import SIMPLE_MESSAGE, Raw, append, connect, status_of


def _selected(server: ServerThread, account: str, count: int = 0) -> tuple[Raw, imaplib.IMAP4]:
    other = connect(server, account)
    for _ in range(count):
        append(other)
    raw = Raw(server.port("imap"), login=account)
    raw.command("SELECT INBOX")
    other.select("INBOX")
    return raw, other


def test_new_mail_reaches_other_session_at_next_command(
    server: ServerThread, account: str
) -> None:
    raw, other = _selected(server, account)
    append(other)
    lines = raw.command("NOOP")
    # \Recent went to whichever session saw the message first (RFC 3501 §2.3.2).
    assert lines[0] == b"* 1 EXISTS\r\n"
    assert len(raw.command("NOOP")) == 1
    other.logout()


def test_flag_changes_arrive_as_fetch_once(server: ServerThread, account: str) -> None:
    raw, other = _selected(server, account, 3)
    other.store("2", "+FLAGS", "(\\Flagged)")
    assert raw.command("NOOP")[0] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    # Our own STORE answers once; its echo from the change bus stays quiet.
    lines = raw.command("STORE 1 +FLAGS (\\Seen)")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n" and len(lines) == 2
    assert len(raw.command("NOOP")) == 1
    other.logout()


def test_expunge_is_held_back_during_fetch_store_search(
    server: ServerThread, account: str
) -> None:
    raw, other = _selected(server, account, 3)
    other.store("2", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = raw.command("FETCH 1:3 UID")
    assert not any(b"EXPUNGE" in line for line in lines[:-1])
    assert b"* 1 FETCH (UID 1)\r\n" in lines and b"* 3 FETCH (UID 3)\r\n" in lines
    assert b"[EXPUNGEISSUED]" in lines[-1]
    lines = raw.command("SEARCH ALL")
    assert b"* SEARCH 1 3\r\n" in lines and not any(b"EXPUNGE " in x for x in lines)
    assert b" OK [EXPUNGEISSUED] " in lines[-1]  # as FETCH, per docs/imap.md
    lines = raw.command("STORE 3 +FLAGS (\\Answered)")
    assert not any(b"EXPUNGE" in x for x in lines[:-1])
    assert b"* 3 FETCH (FLAGS (\\Answered \\Recent))\r\n" in lines
    lines = raw.command("NOOP")
    assert lines[0] == b"* 2 EXPUNGE\r\n"
    assert raw.command("FETCH 2 UID")[0] == b"* 2 FETCH (UID 3)\r\n"
    other.logout()


def test_search_says_expungeissued_in_every_form(server: ServerThread, account: str) -> None:
    """RFC 9051 §7.1 EXPUNGEISSUED: a SEARCH that left out messages another session
    expunged, whose EXPUNGE it may not send yet, says so -- whatever the result form."""
    raw, other = _selected(server, account, 4)
    assert raw.command("SEARCH ALL")[-1].split()[1:3] == [b"OK", b"SEARCH"]
    other.store("2:3", "+FLAGS", "(\\Deleted)")
    other.expunge()
    for command, answer in (
        ("SEARCH ALL", b"* SEARCH 1 4\r\n"),
        ("SEARCH UNSEEN", b"* SEARCH 1 4\r\n"),
        ("SEARCH BODY noon", b"* SEARCH 1 4\r\n"),  # reads the bodies too
        ("SEARCH RETURN (COUNT) ALL", b'* ESEARCH (TAG "{tag}") COUNT 2\r\n'),
        ("SEARCH RETURN (SAVE) ALL", None),
    ):
        lines = raw.command(command, tag="s1")
        assert b"OK [EXPUNGEISSUED]" in lines[-1], (command, lines)
        assert not any(b" EXPUNGE" in line for line in lines), (command, lines)
        if answer is not None:
            assert answer.replace(b"{tag}", b"s1") in lines, (command, lines)
    # UID SEARCH may send the EXPUNGEs (§7.5.1), after its result, as UID FETCH does;
    # then nothing the client counts is missing any more.
    lines = raw.command("UID SEARCH ALL")
    assert lines[:3] == [b"* SEARCH 1 4\r\n", b"* 2 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    assert raw.command("SEARCH ALL")[-1].split()[1:3] == [b"OK", b"SEARCH"]
    other.logout()


def test_uid_fetch_may_report_expunge(server: ServerThread, account: str) -> None:
    raw, other = _selected(server, account, 2)
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = raw.command("UID FETCH 1:* FLAGS")
    assert b"* 1 EXPUNGE\r\n" in lines
    other.logout()


def test_idle_pushes_exists_flags_and_expunge(server: ServerThread, account: str) -> None:
    raw, other = _selected(server, account, 1)
    raw.send("i1 IDLE\r\n")
    assert raw.readline().startswith(b"+ ")
    append(other)
    assert raw.readline() == b"* 2 EXISTS\r\n"
    # The idle session hears of the commit first, so it claims \Recent for the new message
    # (RFC 3501 §2.3.2.1 leaves open which of several sessions gets it).
    assert raw.readline() == b"* 2 RECENT\r\n"
    other.store("1", "+FLAGS", "(\\Flagged)")
    assert raw.readline() == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    other.store("1", "+FLAGS", "(\\Deleted)")
    assert raw.readline().startswith(b"* 1 FETCH")
    other.expunge()
    assert raw.readline() == b"* 1 EXPUNGE\r\n"
    assert raw.readline() == b"* 1 RECENT\r\n"  # message 1 was recent, the new one still is
    raw.send("DONE\r\n")
    assert raw.readline().startswith(b"i1 OK")
    other.logout()


def test_idle_sees_smtp_style_delivery(server: ServerThread, account: str) -> None:
    raw, other = _selected(server, account)
    user = server.call(server.store.find_user(account))
    assert user is not None
    raw.send("i1 IDLE\r\n")
    assert raw.readline().startswith(b"+ ")
    server.call(server.store.deliver(SIMPLE_MESSAGE, [Recipient(user.id)]))
    assert raw.readline() == b"* 1 EXISTS\r\n"
    raw.send("DONE\r\n")
    raw.read_until_tag("i1")
    other.logout()


def test_idle_bad_continuation_and_auth_state_idle(raw: Raw) -> None:
    raw.send("i1 IDLE\r\n")
    assert raw.readline().startswith(b"+ ")
    raw.send("NOPE\r\n")
    assert raw.readline().startswith(b"i1 BAD")
    assert status_of(raw.command("NOOP")) == b"OK"


def test_three_sessions_pop3_delete_is_seen(server: ServerThread, account: str) -> None:
    raw, other = _selected(server, account, 2)
    third = Raw(server.port("imap"), login=account)
    third.command("EXAMINE INBOX")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=30)
    pop.user(account)
    pop.pass_("correct horse")
    pop.dele(1)
    pop.quit()
    for session in (raw, third):
        lines = session.command("NOOP")
        assert lines[0] == b"* 1 EXPUNGE\r\n", lines
    assert other.noop()[0] == "OK"
    third.close()
    other.logout()


def test_selected_mailbox_deleted_elsewhere(server: ServerThread, account: str) -> None:
    other = connect(server, account)
    other.create("Doomed")
    raw = Raw(server.port("imap"), login=account)
    raw.command("SELECT Doomed")
    other.delete("Doomed")
    raw.send("n NOOP\r\n")
    assert raw.readline().startswith(b"* BYE")
    other.logout()


def test_close_or_select_of_a_mailbox_deleted_elsewhere_just_leaves_it(
    server: ServerThread, account: str
) -> None:
    other = connect(server, account)
    other.create("Doomed")
    other.create("Doomed2")
    raw = Raw(server.port("imap"), login=account)
    raw.command("SELECT Doomed")
    other.delete("Doomed")
    assert status_of(raw.command("CLOSE")) == b"OK"
    raw.command("SELECT Doomed2")
    other.delete("Doomed2")
    lines = raw.command("SELECT INBOX")
    assert lines[-1].split()[1] == b"OK" and not any(b"BYE" in x for x in lines)
    assert status_of(raw.command("NOOP")) == b"OK"
    raw.close()
    other.logout()


def test_leaving_a_mailbox_drops_its_pending_updates(server: ServerThread, account: str) -> None:
    """CLOSE, UNSELECT, SELECT and EXAMINE send no untagged FETCH or EXPUNGE for the mailbox
    being left (as Dovecot and James): the client is done with it."""
    raw, other = _selected(server, account, 3)
    for leave in ("CLOSE", "UNSELECT", "SELECT Sent", "EXAMINE INBOX"):
        other.store("1", "+FLAGS", "(\\Flagged)" if "S" in leave else "(\\Answered)")
        lines = raw.command(leave)
        assert not any(b"FETCH" in x for x in lines), (leave, lines)
        raw.command("SELECT INBOX")
        other.store("1", "-FLAGS", "(\\Flagged \\Answered)")
        raw.command("NOOP")
    other.store("3", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = raw.command("SELECT Sent")
    assert not any(b"EXPUNGE" in x for x in lines), lines
    raw.close()
    other.logout()


def test_move_to_trash_seen_everywhere(server: ServerThread, account: str) -> None:
    raw, other = _selected(server, account, 2)
    other.uid("MOVE", "1", "Trash")
    assert raw.command("NOOP")[0] == b"* 1 EXPUNGE\r\n"
    assert b"(MESSAGES 1)" in raw.command("STATUS Trash (MESSAGES)")[0]
    other.logout()


def test_move_and_copy_into_the_selected_mailbox(server: ServerThread, account: str) -> None:
    """Decision 0018, as Dovecot: the messages get new UIDs in the same mailbox; the mover
    gets COPYUID, the EXPUNGE of the old and then the EXISTS of the new, and so does
    every other session with the mailbox selected (at its next command)."""
    raw, other = _selected(server, account, 3)
    other.untagged_responses.clear()  # what SELECT left
    typ, data = other.uid("MOVE", "1:2", "INBOX")
    assert typ == "OK", data
    codes = [line for line in other.untagged_responses.pop("OK", []) if b"COPYUID" in line]
    assert len(codes) == 1 and codes[0].split()[2:4] == [b"1:2", b"4:5]"]
    assert other.untagged_responses.pop("EXPUNGE") == [b"1", b"1"]
    assert other.untagged_responses.pop("EXISTS") == [b"3"]
    typ, data = other.uid("FETCH", "1:*", "(UID)")
    assert typ == "OK" and [d.split()[-1] for d in data] == [b"3)", b"4)", b"5)"]
    lines = raw.command("NOOP")
    assert lines[:3] == [b"* 1 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n", b"* 3 EXISTS\r\n"]
    typ, data = other.copy("1", "INBOX")
    assert typ == "OK" and b"[COPYUID " in data[0] and data[0].split()[2:4] == [b"3", b"6]"]
    assert raw.command("NOOP")[0] == b"* 4 EXISTS\r\n"
    raw.close()
    other.logout()
