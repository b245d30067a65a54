"""ESORT and CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267) against the real server: SORT with
RETURN options answered in ESEARCH, and live results whose ADDTO/REMOVEFROM one session
receives while another appends, flags and expunges, with imaplib, imapclient and the raw
line client."""

from __future__ import annotations

import imaplib
import re

import pytest
from imapclient import IMAPClient

from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, Raw, append, connect, status_of


def _message(i: int, subject: str) -> bytes:
    return (
        f"From: a{i}@example.org\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
        f"Date: Mon, {i + 1} Jan 2024 10:00:00 +0000\r\nMessage-ID: <m{i}@example.org>\r\n"
        f"\r\nbody {i}\r\n"
    ).encode()


#: Subjects in mailbox order; by SUBJECT the order is 2, 4, 3, 5, 1.
SUBJECTS = ["zeta", "alpha", "mid", "beta", "omega"]


@pytest.fixture
def filled(server: ServerThread, account: str) -> str:
    c = connect(server, account)
    for i, subject in enumerate(SUBJECTS):
        append(c, _message(i, subject))
    c.logout()
    return account


@pytest.fixture
def watcher(server: ServerThread, filled: str) -> Raw:
    """The session that keeps live results; the tests change the mailbox elsewhere."""
    r = Raw(server.port("imap"), login=filled)
    assert status_of(r.command("SELECT INBOX")) == b"OK"
    return r


@pytest.fixture
def changer(server: ServerThread, filled: str) -> imaplib.IMAP4:
    c = connect(server, filled)
    c.select("INBOX")
    return c


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [line.rstrip(b"\r\n") for line in lines if line.startswith(b"* ")]


def _esearch(lines: list[bytes]) -> list[bytes]:
    return [line for line in _untagged(lines) if line.startswith(b"* ESEARCH")]


# -- capabilities -------------------------------------------------------------------------
def test_capabilities_are_advertised(server: ServerThread, account: str) -> None:
    c = connect(server, account)
    caps = c.capabilities
    assert {"ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT", "SORT", "ESEARCH"} <= set(caps)
    c.logout()


# -- ESORT --------------------------------------------------------------------------------
def test_esort_min_max_count_all_in_sort_order(watcher: Raw) -> None:
    lines = watcher.command("SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL", "s1")
    # RFC 5267 §3.1: MIN and MAX are the first and last in the sort order (Dovecot agrees).
    assert _esearch(lines) == [b'* ESEARCH (TAG "s1") MIN 2 MAX 1 ALL 2,4,3,5,1 COUNT 5']
    assert status_of(lines) == b"OK"


def test_esort_empty_return_is_all_and_uid(watcher: Raw) -> None:
    lines = watcher.command("UID SORT RETURN () (SUBJECT) UTF-8 ALL", "s2")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s2") UID ALL 2,4,3,5,1']
    assert not any(line.startswith(b"* SORT") for line in lines)


def test_esort_ascending_runs_are_ranges(watcher: Raw) -> None:
    # RFC 5267 §3.2: a range only where the sort order ascends.
    lines = watcher.command("SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 ALL", "s3")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s3") ALL 1,5,3:4,2']
    lines = watcher.command("SORT RETURN (ALL) (DATE) UTF-8 ALL", "s4")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s4") ALL 1:5']


def test_esort_partial_pages_the_sort_order(watcher: Raw) -> None:
    lines = watcher.command("SORT RETURN (PARTIAL 2:3) (SUBJECT) UTF-8 ALL", "s5")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s5") PARTIAL (2:3 4,3)']
    lines = watcher.command("SORT RETURN (PARTIAL -1:-2 COUNT) (SUBJECT) UTF-8 ALL", "s6")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s6") PARTIAL (-1:-2 5,1) COUNT 5']
    lines = watcher.command("SORT RETURN (PARTIAL 9:10) (SUBJECT) UTF-8 ALL", "s7")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s7") PARTIAL (9:10 NIL)']


def test_esort_nothing_found(watcher: Raw) -> None:
    lines = watcher.command("SORT RETURN (MIN MAX ALL COUNT) (SUBJECT) UTF-8 NOT ALL", "s8")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s8") COUNT 0']


def test_esort_save_keeps_the_min(watcher: Raw) -> None:
    lines = watcher.command("SORT RETURN (SAVE MIN) (SUBJECT) UTF-8 ALL", "s9")
    assert _esearch(lines) == [b'* ESEARCH (TAG "s9") MIN 2']
    lines = watcher.command("UID SEARCH $", "s10")
    assert _untagged(lines) == [b"* SEARCH 2"]


def test_esort_errors(watcher: Raw) -> None:
    assert status_of(watcher.command("SORT RETURN (ALL PARTIAL 1:2) (SUBJECT) UTF-8 ALL")) == b"BAD"
    assert status_of(watcher.command("SORT RETURN (NEWEST) (SUBJECT) UTF-8 ALL")) == b"BAD"
    assert status_of(watcher.command("SORT RETURN (ALL (SUBJECT) UTF-8 ALL")) == b"BAD"


def test_esort_with_imaplib(server: ServerThread, filled: str) -> None:
    c = connect(server, filled)
    c.select("INBOX")
    typ, data = c.uid("SORT", "RETURN (MIN ALL)", "(SUBJECT)", "UTF-8", "ALL")
    assert (typ, data) == ("OK", [None])  # no * SORT line: the answer is ESEARCH
    _, esearch = c.response("ESEARCH")
    assert re.fullmatch(rb'\(TAG "\w+"\) UID MIN 2 ALL 2,4,3,5,1', esearch[0])
    c.logout()


def test_live_result_with_imapclient_idle(server: ServerThread, filled: str) -> None:
    """imapclient parses the ADDTO a live result sends while it idles (RFC 5267 §4.3.2)."""
    with IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=30) as c:
        c.login(filled, PASSWORD)
        c.select_folder("INBOX")
        typ, _ = c._imap.uid("SEARCH", "RETURN", "(UPDATE)", "FLAGGED")
        assert typ == "OK"
        _, answer = c._imap.response("ESEARCH")
        tag = re.match(rb'\(TAG "(\w+)"\)', answer[0])
        assert tag is not None
        other = connect(server, filled)
        other.select("INBOX")
        c.idle()
        other.store("5", "+FLAGS", "(\\Flagged)")
        seen: list[object] = []
        while not any(isinstance(r, tuple) and r[:1] == (b"ESEARCH",) for r in seen):
            got = c.idle_check(timeout=20)
            assert got, "no update while idling"
            seen += got
        c.idle_done()
        other.logout()
    update = next(r for r in seen if isinstance(r, tuple) and r[:1] == (b"ESEARCH",))
    assert update == (b"ESEARCH", (b"TAG", tag[1]), b"UID", b"ADDTO", (0, 5))


# -- CONTEXT=SEARCH -----------------------------------------------------------------------
def test_search_update_follows_flags_arrivals_and_expunges(
    watcher: Raw, changer: imaplib.IMAP4
) -> None:
    assert _esearch(watcher.command("SEARCH RETURN (UPDATE) UNSEEN", "c1")) == [
        b'* ESEARCH (TAG "c1")'
    ]
    assert _esearch(watcher.command("UID SEARCH RETURN (UPDATE COUNT) FLAGGED", "c2")) == [
        b'* ESEARCH (TAG "c2") UID COUNT 0'
    ]
    changer.store("2", "+FLAGS", "(\\Seen)")
    changer.store("3", "+FLAGS", "(\\Flagged)")
    lines = _untagged(watcher.command("NOOP"))
    assert lines[-2:] == [
        b'* ESEARCH (TAG "c1") REMOVEFROM (0 2)',
        b'* ESEARCH (TAG "c2") UID ADDTO (0 3)',
    ]
    append(changer, _message(9, "aaa"))
    lines = _untagged(watcher.command("NOOP"))
    assert lines == [b"* 6 EXISTS", b'* ESEARCH (TAG "c1") ADDTO (0 6)']
    changer.store("1", "+FLAGS", "(\\Deleted)")
    changer.expunge()
    lines = _untagged(watcher.command("NOOP"))
    # RFC 5267 §4.3.4: REMOVEFROM before the EXPUNGE, while message 1 is still 1.
    assert lines[:2] == [b'* ESEARCH (TAG "c1") REMOVEFROM (0 1)', b"* 1 EXPUNGE"]


def test_own_changes_update_too(watcher: Raw) -> None:
    watcher.command("UID SEARCH RETURN (UPDATE) SEEN", "o1")
    lines = _untagged(watcher.command("STORE 1,2 +FLAGS (\\Seen)"))
    assert lines[-1] == b'* ESEARCH (TAG "o1") UID ADDTO (0 1:2)'
    lines = _untagged(watcher.command("STORE 1 -FLAGS (\\Seen)"))
    assert lines[-1] == b'* ESEARCH (TAG "o1") UID REMOVEFROM (0 1)'


def test_text_programs_read_only_the_new_message(watcher: Raw, changer: imaplib.IMAP4) -> None:
    watcher.command("UID SEARCH RETURN (UPDATE) SUBJECT aaa", "t1")
    append(changer, _message(9, "aaa bbb"))
    append(changer, _message(10, "ccc"))
    lines = _untagged(watcher.command("NOOP"))
    assert lines == [b"* 7 EXISTS", b'* ESEARCH (TAG "t1") UID ADDTO (0 6)']


def test_updates_reach_an_idle_session(
    server: ServerThread, filled: str, changer: imaplib.IMAP4
) -> None:
    w = Raw(server.port("imap"), login=filled)
    w.command("SELECT INBOX")
    w.command("UID SEARCH RETURN (UPDATE) FLAGGED", "i1")
    w.send(b"i2 IDLE\r\n")
    assert w.readline().startswith(b"+")
    changer.store("4", "+FLAGS", "(\\Flagged)")
    got = []
    while not got or not got[-1].startswith(b"* ESEARCH"):
        got.append(w.readline().rstrip(b"\r\n"))
    assert got[-1] == b'* ESEARCH (TAG "i1") UID ADDTO (0 4)'
    w.send(b"DONE\r\n")
    assert status_of(w.read_until_tag("i2")) == b"OK"
    w.close()


def test_tag_reuse_is_bad_and_cancelupdate(watcher: Raw, changer: imaplib.IMAP4) -> None:
    watcher.command("SEARCH RETURN (UPDATE) FLAGGED", "x1")
    lines = watcher.command("SEARCH RETURN (UPDATE) ALL", "x1")
    assert status_of(lines) == b"BAD"
    assert status_of(watcher.command('CANCELUPDATE "x1"')) == b"OK"
    changer.store("1", "+FLAGS", "(\\Flagged)")
    assert _esearch(watcher.command("NOOP")) == []
    assert status_of(watcher.command('CANCELUPDATE "x1"')) == b"NO"
    assert status_of(watcher.command("CANCELUPDATE x1")) == b"BAD"  # quoted only
    assert status_of(watcher.command("CANCELUPDATE")) == b"BAD"


def test_limit_answers_noupdate(watcher: Raw, changer: imaplib.IMAP4) -> None:
    from mailstead.imap.live import MAX_LIVE_RESULTS

    for i in range(MAX_LIVE_RESULTS):
        assert not any(
            b"NOUPDATE" in line
            for line in watcher.command("UID SEARCH RETURN (UPDATE) FLAGGED", f"l{i}")
        )
    lines = watcher.command("UID SEARCH RETURN (UPDATE COUNT) ALL", "over")
    # RFC 5267 §4.3.1: an untagged NO [NOUPDATE], the other options honoured, OK.
    assert _untagged(lines) == [
        b'* NO [NOUPDATE "over"] Too many live results',
        b'* ESEARCH (TAG "over") UID COUNT 5',
    ]
    assert status_of(lines) == b"OK"
    changer.store("1", "+FLAGS", "(\\Flagged)")
    assert len(_esearch(watcher.command("NOOP"))) == MAX_LIVE_RESULTS


def test_contexts_end_with_the_selection(watcher: Raw, changer: imaplib.IMAP4) -> None:
    watcher.command("UID SEARCH RETURN (UPDATE) FLAGGED", "e1")
    watcher.command("UNSELECT")
    watcher.command("SELECT INBOX")
    changer.store("1", "+FLAGS", "(\\Flagged)")
    assert _esearch(watcher.command("NOOP")) == []
    # the tag is free again in the new selection
    assert status_of(watcher.command("UID SEARCH RETURN (UPDATE) FLAGGED", "e1")) == b"OK"


def test_cancelupdate_needs_a_selection(server: ServerThread, account: str) -> None:
    r = Raw(server.port("imap"), login=account)
    assert status_of(r.command('CANCELUPDATE "a"')) == b"NO"
    r.close()


# -- CONTEXT=SORT -------------------------------------------------------------------------
def test_sort_update_tells_positions(watcher: Raw, changer: imaplib.IMAP4) -> None:
    lines = watcher.command("UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNSEEN", "r1")
    assert _esearch(lines) == [b'* ESEARCH (TAG "r1") UID ALL 2,4,3,5,1']
    append(changer, _message(9, "apple"))  # UID 6 sorts between alpha and beta: place 2
    append(changer, _message(10, "zzz"))  # UID 7 sorts last: place 7
    lines = _untagged(watcher.command("NOOP"))
    assert lines == [b"* 7 EXISTS", b'* ESEARCH (TAG "r1") UID ADDTO (2 6 7 7)']
    changer.store("3,4", "+FLAGS", "(\\Seen)")  # mid (place 5) and beta (place 3)
    lines = _esearch(watcher.command("NOOP"))
    # alpha apple beta mid omega zeta zzz: beta and mid are places 3 and 4, one run
    assert lines == [b'* ESEARCH (TAG "r1") UID REMOVEFROM (3 4,3)']
    changer.store("1", "+FLAGS", "(\\Deleted)")
    changer.expunge()
    lines = _untagged(watcher.command("NOOP"))
    # zeta (UID 1) is at place 4 of alpha, apple, omega, zeta, zzz
    assert lines[:2] == [b'* ESEARCH (TAG "r1") UID REMOVEFROM (4 1)', b"* 1 EXPUNGE"]


def test_sort_update_by_sequence_number(watcher: Raw, changer: imaplib.IMAP4) -> None:
    watcher.command("SORT RETURN (UPDATE) (REVERSE SUBJECT) UTF-8 NOT DELETED", "q1")
    changer.store("2", "+FLAGS", "(\\Deleted)")  # alpha: last in reverse order, place 5
    assert _esearch(watcher.command("NOOP")) == [b'* ESEARCH (TAG "q1") REMOVEFROM (5 2)']
    changer.expunge()
    lines = _untagged(watcher.command("NOOP"))
    assert lines[0] == b"* 2 EXPUNGE"
    assert not _esearch(lines)  # already told when it stopped matching
    changer.store("2", "-FLAGS", "(\\Deleted)")  # no change: mid is a member already
    assert _esearch(watcher.command("NOOP")) == []
    append(changer, _message(9, "nnn"))  # seq 5 now; reverse: zeta omega nnn mid beta
    assert _esearch(watcher.command("NOOP")) == [b'* ESEARCH (TAG "q1") ADDTO (3 5)']


def test_removefrom_comes_before_vanished(
    server: ServerThread, filled: str, changer: imaplib.IMAP4
) -> None:
    w = Raw(server.port("imap"), login=filled)
    w.command("ENABLE QRESYNC")
    w.command("SELECT INBOX")
    w.command("UID SEARCH RETURN (UPDATE) UNDELETED", "v1")
    w.command("UID SEARCH RETURN (UPDATE) ALL", "v2")
    changer.store("2:3", "+FLAGS", "(\\Deleted)")
    assert _esearch(w.command("NOOP")) == [b'* ESEARCH (TAG "v1") UID REMOVEFROM (0 2:3)']
    changer.store("2", "-FLAGS", "(\\Deleted)")
    changer.expunge()  # UID 3
    lines = [line for line in _untagged(w.command("NOOP")) if b"FETCH" not in line]
    # RFC 5267 §4.3.4 with QRESYNC: the member's REMOVEFROM, then VANISHED, then what the
    # flag change did.
    assert lines == [
        b'* ESEARCH (TAG "v2") UID REMOVEFROM (0 3)',
        b"* VANISHED 3",
        b'* ESEARCH (TAG "v1") UID ADDTO (0 2)',
    ]
    w.close()


def test_partial_and_update_do_not_interact(watcher: Raw, changer: imaplib.IMAP4) -> None:
    # RFC 5267 §4.4: "the UPDATE will provide notifications for all matching results",
    # not only for the page asked.
    lines = watcher.command("SEARCH RETURN (UPDATE PARTIAL 1:2 COUNT) UNFLAGGED", "p1")
    assert _esearch(lines) == [b'* ESEARCH (TAG "p1") PARTIAL (1:2 1:2) COUNT 5']
    changer.store("5", "+FLAGS", "(\\Flagged)")
    assert _esearch(watcher.command("NOOP")) == [b'* ESEARCH (TAG "p1") REMOVEFROM (0 5)']
    lines = watcher.command("SORT RETURN (UPDATE PARTIAL -1:-2) (SUBJECT) UTF-8 UNFLAGGED", "p2")
    assert _esearch(lines) == [b'* ESEARCH (TAG "p2") PARTIAL (-1:-2 3,1)']
    changer.store("2", "+FLAGS", "(\\Flagged)")  # alpha, first in the sort order
    assert _esearch(watcher.command("NOOP")) == [
        b'* ESEARCH (TAG "p1") REMOVEFROM (0 2)',
        b'* ESEARCH (TAG "p2") REMOVEFROM (1 2)',
    ]


def test_only_the_changed_messages_are_read(
    server: ServerThread, watcher: Raw, changer: imaplib.IMAP4, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path (decision record 0022): a flag change makes the session read that one
    message's metadata and structure, never the mailbox's."""
    watcher.command("UID SEARCH RETURN (UPDATE) SUBJECT a NOT SEEN", "f1")
    changer.store("2", "+FLAGS", "(\\Seen)")
    store = server.store
    listed: list[object] = []
    structures: list[int] = []
    list_messages, get_structures = store.list_messages, store.get_structures

    async def spy_list(mailbox_id: int, uid_ranges: object = None, **kw: object) -> object:
        listed.append(uid_ranges)
        return await list_messages(mailbox_id, uid_ranges, **kw)  # type: ignore[arg-type]

    async def spy_structures(blob_ids: list[str]) -> object:
        structures.append(len(blob_ids))
        return await get_structures(blob_ids)

    monkeypatch.setattr(store, "list_messages", spy_list)
    monkeypatch.setattr(store, "get_structures", spy_structures)
    assert _esearch(watcher.command("NOOP")) == [b'* ESEARCH (TAG "f1") UID REMOVEFROM (0 2)']
    assert listed == [[(2, 2)]]
    assert structures == [1]


def test_deleted_mailbox_still_says_bye(server: ServerThread, filled: str) -> None:
    c = connect(server, filled)
    c.create("other")
    w = Raw(server.port("imap"), login=filled)
    w.command("SELECT other")
    w.command("UID SEARCH RETURN (UPDATE) ALL", "d1")
    append(c, _message(9, "late"), "other")  # a message the live result has to judge
    c.delete("other")
    w.send(b"d2 NOOP\r\n")
    assert w.readline().startswith(b"* BYE")
    w.close()
    c.logout()


def test_sort_with_a_modseq_key_tells_the_modseq(watcher: Raw, changer: imaplib.IMAP4) -> None:
    changer.store("3", "+FLAGS", "(\\Seen)")  # mid: now the highest mod-sequence
    watcher.command("NOOP")
    fetched = b"".join(watcher.command("FETCH 1:5 (MODSEQ)"))
    modseq = {int(n): int(m) for n, m in re.findall(rb"\* (\d) FETCH \(MODSEQ \((\d+)\)", fetched)}
    top = max(modseq.values())
    assert modseq[3] == top
    # RFC 7162 §3.1.5, §7: SORT too ends with the highest mod-sequence found.
    lines = _untagged(watcher.command("SORT (SUBJECT) UTF-8 MODSEQ 1"))
    assert lines == [f"* SORT 2 4 3 5 1 (MODSEQ {top})".encode()]
    lines = _esearch(watcher.command("SORT RETURN (ALL) (SUBJECT) UTF-8 MODSEQ 1", "m1"))
    assert lines == [f'* ESEARCH (TAG "m1") ALL 2,4,3,5,1 MODSEQ {top}'.encode()]
    # RFC 4731 §3.2: with MIN alone, that message's mod-sequence.
    lines = _esearch(watcher.command("SORT RETURN (MIN) (SUBJECT) UTF-8 MODSEQ 1", "m2"))
    assert lines == [f'* ESEARCH (TAG "m2") MIN 2 MODSEQ {modseq[2]}'.encode()]
