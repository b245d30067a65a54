"""The sort keys stored per body (decision 0031) give the same records, and so the same
SORT and THREAD answers, as the stored structures they are derived from: over every
corpus message, over random messages, for mail stored before the keys were (filled the
first time a SORT needs them), and through COPY, MOVE and EXPUNGE."""

from __future__ import annotations

import asyncio
import imaplib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailstead.auth.passwords import hash_password
from mailstead.cli.serve import parse_structure
from mailstead.core import sanity
from mailstead.core.types import UID, ModSeq
from mailstead.imap.basesubject import BaseSubject, ascii_casemap
from mailstead.imap.parse.sort import Criterion, SortKey
from mailstead.imap.sort import (
    KEYS_VERSION,
    Field,
    Sortable,
    keys_of,
    ordered_subject,
    record,
    references,
    render_threads,
    sort_messages,
    stored_sort_keys,
)
from mailstead.mime.parse import parse_message
from mailstead.mime.stored import StoredStructure, encode
from mailstead.store.models import MessageMeta, SortKeyField
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.paths import SHARED
from mailstead.testing.server import TEST_PASSWORD_POLICY, ServerThread
from tests.imap.conftest import PASSWORD, imap_config
from tests.imap.test_imap_sort import ARRIVALS, MESSAGES, SORTS

CORPUS = SHARED / "corpus"
ALL_FIELDS = frozenset(Field)
EVERY_KEY = frozenset(SortKeyField)


def _meta(uid: int, arrival: datetime, size: int = 10) -> MessageMeta:
    return MessageMeta(1, UID(uid), ModSeq(1), frozenset(), arrival, size, f"blob{uid}")


def _structure(raw: bytes) -> StoredStructure:
    return StoredStructure(encode(parse_message(raw)))


def _as_compared(s: Sortable) -> Sortable:
    """The structure path's record with its base subject case-mapped, as the keys keep it
    (every comparison case-maps it anyway)."""
    return s._replace(subject=BaseSubject(ascii_casemap(s.subject.text), s.subject.reply))


def _corpus_files() -> list[Path]:
    skip_names = {"SOURCE.txt", "LICENSE", "NOTICE", "COPYING", "README", "README.md"}
    skip_suffixes = {".json", ".xml", ".png", ".golden", ".bin", ".out"}
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file()
        and p.name not in skip_names
        and p.suffix not in skip_suffixes
        and "LICENSES" not in p.parts
    )


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not present")
def test_keys_give_the_structure_records_for_every_corpus_message() -> None:
    meta = _meta(7, datetime(2020, 5, 1, tzinfo=UTC))
    files = _corpus_files()
    assert len(files) > 1000
    wrong: list[str] = []
    for path in files:
        raw = path.read_bytes()
        if raw.startswith(b"From "):  # an mbox From_ line
            raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
        data = encode(parse_message(raw))
        structure = StoredStructure(data)
        keys = keys_of(structure)
        assert stored_sort_keys(data) == keys
        if record(meta, 3, keys) != _as_compared(Sortable.of(meta, 3, structure, ALL_FIELDS)):
            wrong.append(str(path.relative_to(CORPUS)))
    assert wrong == []


def test_keys_keep_the_fallbacks_of_decision_0019() -> None:
    """No Date:, and a Date: before 1970, fall back to the INTERNALDATE of each message
    (the keys are per body, so the fallback is applied when the record is made)."""
    arrival = datetime(2024, 3, 1, tzinfo=UTC)
    for date in (None, "Mon, 1 Jan 0102 10:00:00 +0000", "not a date"):
        head = f"Date: {date}\r\n" if date is not None else ""
        keys = keys_of(_structure(f"{head}Subject: x\r\n\r\nx\r\n".encode()))
        assert keys.sent is None
        assert record(_meta(1, arrival), 1, keys).sent == arrival.timestamp()
    keys = keys_of(_structure(b"Subject: [l] Re: Lunch (fwd)\r\nFrom: A <Al@X.org>\r\n\r\n"))
    assert (keys.subject, keys.reply, keys.from_key) == ("LUNCH", True, "AL")
    assert keys.version == KEYS_VERSION


# -- random messages: the keyed path answers as the structure path -----------------------

_SUBJECTS = st.lists(
    st.sampled_from(
        [
            "Re: ",
            "RE:",
            "Fwd: ",
            "fw: ",
            "[list] ",
            "[Fwd: ",
            "]",
            " (fwd)",
            "Lunch",
            "lunch",
            "=?utf-8?q?Caf=C3=A9?=",
            " ",
            "\t",
            "Re[2]: ",
            "a",
        ]
    ),
    max_size=5,
).map("".join)
_DATES = st.sampled_from(
    [
        None,
        "Mon, 1 Jan 2024 12:00:00 +0000",
        "Mon, 1 Jan 2024 13:00:00 +0100",
        "Sun, 31 Dec 2023 23:59:59 -0800",
        "Thu, 1 Jan 1970 00:00:00 +0000",
        "Mon, 1 Jan 0102 10:00:00 +0000",
        "garbage",
        "1 Jan 2024 12:00 GMT",
    ]
)
_ADDRESSES = st.sampled_from(
    [
        None,
        "Zoe <zoe@example.org>",
        "adam@example.org",
        '"Bob, Jr" <BOB@x.org>',
        "Friends: a@x.org, b@x.org;",
        "undisclosed-recipients:;",
        "<@route:c@x.org>",
        "mia",
    ]
)
_IDS = st.sampled_from(["a@x", "b@x", "c@x", "d@x", "e@x"])


@st.composite
def _message(draw: st.DrawFn) -> bytes:
    head: list[str] = []
    subject = draw(_SUBJECTS)
    if subject or draw(st.booleans()):
        head.append(f"Subject: {subject}")
    if (date := draw(_DATES)) is not None:
        head.append(f"Date: {date}")
    for name in ("From", "To", "Cc"):
        if (address := draw(_ADDRESSES)) is not None:
            head.append(f"{name}: {address}")
    if draw(st.booleans()):
        head.append(f"Message-ID: <{draw(_IDS)}>")
    if refs := draw(st.lists(_IDS, max_size=3)):
        head.append("References: " + " ".join(f"<{r}>" for r in refs))
    if draw(st.booleans()):
        head.append(f"In-Reply-To: <{draw(_IDS)}> junk")
    return ("\r\n".join(head) + "\r\n\r\nbody\r\n").encode()


_CRITERIA = st.lists(
    st.builds(Criterion, st.sampled_from(list(SortKey)), st.booleans()), min_size=1, max_size=3
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(st.tuples(_message(), st.integers(0, 10**6)), min_size=1, max_size=8),
    criteria=_CRITERIA,
)
def test_the_keyed_path_answers_as_the_structure_path(
    messages: list[tuple[bytes, int]], criteria: list[Criterion]
) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    by_keys: list[Sortable] = []
    by_structure: list[Sortable] = []
    for n, (raw, minutes) in enumerate(messages, 1):
        meta = _meta(n, base + timedelta(minutes=minutes), size=len(raw) + minutes % 7)
        structure = _structure(raw)
        by_keys.append(record(meta, n, keys_of(structure)))
        by_structure.append(Sortable.of(meta, n, structure, ALL_FIELDS))
    assert by_keys == [_as_compared(s) for s in by_structure]
    assert [m.seq for m in sort_messages(by_keys, criteria)] == [
        m.seq for m in sort_messages(by_structure, criteria)
    ]
    for algorithm in (references, ordered_subject):
        assert render_threads(algorithm(by_keys), lambda m: m.seq) == render_threads(
            algorithm(by_structure), lambda m: m.seq
        )


# -- mail stored before the keys were ------------------------------------------------------


async def _fill_without_keys(data_dir: Path, address: str) -> int:
    """The test messages stored as a server from before the keys stored them: the
    structure, and no keys."""
    async with SQLiteStore(data_dir, parse=parse_structure) as store:
        await store.add_domain("example.org")
        user = await store.add_user(address, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        inbox = await store.get_mailbox(user.id, "INBOX")
        for message, arrival in zip(MESSAGES, ARRIVALS, strict=True):
            await store.append(inbox.id, message, internaldate=arrival)
        assert await store.sort_keys(inbox.id, EVERY_KEY, KEYS_VERSION) == {}
        return inbox.id


async def _stored_keys(data_dir: Path, mailbox_id: int) -> dict[UID, object]:
    async with SQLiteStore(data_dir) as store:
        return dict(await store.sort_keys(mailbox_id, EVERY_KEY, KEYS_VERSION))


def test_mail_stored_before_the_keys_gets_them_from_the_first_sort(tmp_path: Path) -> None:
    address = "old@example.org"
    inbox = asyncio.run(_fill_without_keys(tmp_path / "data", address))
    with ServerThread(tmp_path, imap_config()) as server:
        c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
        try:
            c.login(address, PASSWORD)
            c.select("INBOX", readonly=True)
            # THREAD first: it reads every field, so all the keys are derived here.
            typ, data = c._simple_command("THREAD", "REFERENCES", "UTF-8", "ALL")
            assert typ == "OK"
            assert c._untagged_response(typ, data, "THREAD")[1] == [b"(2)(4)(1 3 5)"]
            for criteria, expected in SORTS:
                assert c.sort(criteria, "UTF-8", "ALL")[1] == [expected.encode()], criteria
        finally:
            c.logout()
    kept = asyncio.run(_stored_keys(tmp_path / "data", inbox))
    assert sorted(kept) == [1, 2, 3, 4, 5]
    structures = (
        sqlite3.connect(tmp_path / "data" / "mailstead.db")
        .execute(
            "SELECT m.uid, b.structure FROM messages m JOIN blobs b ON b.id = m.blob_id"
            " WHERE m.mailbox_id = ?",
            (inbox,),
        )
        .fetchall()
    )
    for uid, structure in structures:
        assert kept[uid] == keys_of(StoredStructure(bytes(structure)))


def test_keys_of_an_older_version_are_derived_again(tmp_path: Path) -> None:
    """Keys of another version are taken as missing: the answer does not use them, and
    they are replaced by keys of this version."""
    address = "older@example.org"
    inbox = asyncio.run(_fill_without_keys(tmp_path / "data", address))
    db = sqlite3.connect(tmp_path / "data" / "mailstead.db")
    with db:
        db.execute(
            "INSERT INTO sort_keys SELECT m.blob_id, ?, 0, 'zzz', 'zzz', 'zzz', 'zzz', 0,"
            " NULL, '' FROM messages m WHERE m.mailbox_id = ?",
            (KEYS_VERSION - 1, inbox),
        )
    db.close()
    with ServerThread(tmp_path, imap_config()) as server:
        c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
        try:
            c.login(address, PASSWORD)
            c.select("INBOX", readonly=True)
            assert c.sort("(FROM)", "UTF-8", "ALL")[1] == [b"2 3 4 1 5"]
        finally:
            c.logout()
    versions = (
        sqlite3.connect(tmp_path / "data" / "mailstead.db")
        .execute("SELECT DISTINCT k.version FROM sort_keys k")
        .fetchall()
    )
    assert versions == [(KEYS_VERSION,)]


# -- the keys follow the messages ----------------------------------------------------------


def test_copy_move_and_expunge_keep_the_answers(server: ServerThread, account: str) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        c.login(account, PASSWORD)
        for message, arrival in zip(MESSAGES, ARRIVALS, strict=True):
            assert c.append("INBOX", None, imaplib.Time2Internaldate(arrival), message)[0] == "OK"
        c.create("Copied")
        c.create("Moved")
        c.select("INBOX")
        assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"2 4 1 3 5"]
        assert c.copy("1:5", "Copied")[0] == "OK"
        # MOVE 2 and 4 away (the oldest Date:, and the one without: its INTERNALDATE).
        assert c._simple_command("MOVE", "2,4", "Moved")[0] == "OK"
        c.noop()
        assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"1 2 3"]  # were 1 3 5
        assert c.sort("(SUBJECT)", "UTF-8", "ALL")[1] == [b"1 2 3"]
        c.store("2", "+FLAGS", "\\Deleted")
        c.expunge()
        assert c.sort("(REVERSE DATE)", "UTF-8", "ALL")[1] == [b"2 1"]  # 5 then 1
        c.select("Copied", readonly=True)
        for criteria, expected in SORTS:
            assert c.sort(criteria, "UTF-8", "ALL")[1] == [expected.encode()], criteria
        c.select("Moved", readonly=True)
        assert c.sort("(REVERSE DATE)", "UTF-8", "ALL")[1] == [b"2 1"]  # 4 after apples
        assert c.sort("(FROM)", "UTF-8", "ALL")[1] == [b"1 2"]  # adam, mia
    finally:
        c.logout()


def test_a_kept_answer_is_not_used_once_the_messages_change(
    server: ServerThread, account: str
) -> None:
    """The same command again is answered from the kept answer; a delivery, an expunge
    (announced or still pending in this session) or a flag that changes what the program
    finds gives a new one."""
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    other = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        c.login(account, PASSWORD)
        other.login(account, PASSWORD)
        for message, arrival in zip(MESSAGES, ARRIVALS, strict=True):
            c.append("INBOX", None, imaplib.Time2Internaldate(arrival), message)
        c.select("INBOX")
        for _ in range(2):
            assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"2 4 1 3 5"]
            assert c.uid("SORT", "(DATE)", "UTF-8", "ALL")[1] == [b"2 4 1 3 5"]
        # A delivery: the new message (no Date:, arrived last) is in the answer.
        other.append("INBOX", None, None, b"Subject: new\r\n\r\nx\r\n")
        assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"2 4 1 3 5 6"]
        # A flag: UNDELETED finds one less.
        c.store("1", "+FLAGS", "\\Deleted")
        assert c.sort("(DATE)", "UTF-8", "UNDELETED")[1] == [b"2 4 3 5 6"]
        assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"2 4 1 3 5 6"]
        # Another session's expunge, not announced here: left out, in the numbers the
        # client still has (the EXPUNGEISSUED code is test_imap_sort.py's to check).
        # The other session's answer over the messages left is kept, in its numbers.
        other.select("INBOX")
        other.expunge()
        assert other.sort("(DATE)", "UTF-8", "ALL")[1] == [b"1 3 2 4 5"]
        assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"2 4 3 5 6"]
        c.noop()  # announced: the numbers move up
        assert c.sort("(DATE)", "UTF-8", "ALL")[1] == [b"1 3 2 4 5"]
        assert c.uid("SORT", "(DATE)", "UTF-8", "ALL")[1] == [b"2 4 3 5 6"]
    finally:
        other.logout()
        c.logout()


def test_keys_that_cannot_be_made_never_refuse_a_delivery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A structure the keys cannot be made of gives no keys (the first SORT derives them
    from the structure again), logged; under test, with the sanity flag on, it raises."""
    with pytest.raises(Exception):  # noqa: B017 - whatever the decoder raises
        stored_sort_keys(b"\x00not a stored structure")
    monkeypatch.setenv(sanity.ENV_VAR, "0")
    assert stored_sort_keys(b"\x00not a stored structure") is None
    assert "sort keys failed" in caplog.text


def test_the_server_stores_the_keys_at_delivery(server: ServerThread, account: str) -> None:
    """The composition root gives the store the maker: an APPENDed message has its keys
    before any SORT, equal to those its structure gives."""
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        c.login(account, PASSWORD)
        marker = f"<keys-at-delivery-{account}>"
        message = f"Subject: Re: stored\r\nMessage-ID: {marker}\r\n\r\nx\r\n".encode()
        assert c.append("INBOX", None, None, message)[0] == "OK"
    finally:
        c.logout()
    with sqlite3.connect(server.data_dir / "mailstead.db") as db:
        rows = db.execute(
            "SELECT b.structure, k.version, k.subject, k.reply, k.message_id FROM blobs b"
            " JOIN sort_keys k ON k.blob_id = b.id WHERE k.message_id = ?",
            (marker[1:-1],),
        ).fetchall()
    assert len(rows) == 1
    structure, version, subject, reply, message_id = rows[0]
    keys = keys_of(StoredStructure(bytes(structure)))
    assert (version, subject, bool(reply), message_id) == (
        keys.version,
        keys.subject,
        keys.reply,
        keys.message_id,
    )
    assert (subject, bool(reply)) == ("STORED", True)
