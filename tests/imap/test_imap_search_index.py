"""The SEARCH full-text index (decision 0027): index-backed answers equal the scan's, and the
index row of a body exists exactly while a message references it.

The property test stores random messages (encoded-word headers, quoted-printable and base64
bodies in several charsets, HTML-only mail, attachments, non-ASCII case pairs) and asks
random needles of every text key, at an indexed-text limit small enough that some rows are
cut: the answers with the index must be the scan's, message for message. Messages the index
settles are evaluated without their data loaded, as SEARCH does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import quopri
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailstead.auth.passwords import hash_password
from mailstead.cli.serve import parse_structure, text_indexer
from mailstead.core.errors import QuotaExceeded
from mailstead.core.types import FlagMode
from mailstead.imap import search_index
from mailstead.imap.parse.search import Header, Not, Or, SearchKey, Text, TextField
from mailstead.imap.search import Candidate, matcher
from mailstead.mime import searchtext
from mailstead.mime.stored import StoredStructure
from mailstead.store.models import (
    SEARCH_COLUMNS,
    Mailbox,
    NewMessage,
    Recipient,
    TextQuery,
    User,
)
from mailstead.store.sql.schema import MIGRATIONS, statements
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import TEST_PASSWORD_POLICY, ServerThread, SubprocessServer
from mailstead.testing.waiting import poll_until

# Letters with awkward case folding (ß, dotted/dotless i, final sigma, ligature), a few
# ASCII letters so that short needles hit often, separators, and a quote for FTS5 quoting.
ALPHABET = "abcxyzABCXYZ ßẞİıIiΣσςﬁé.@-\"'<>&;"  # noqa: RUF001 - the point
words = st.text(alphabet=ALPHABET, min_size=0, max_size=30)


def _encoded_word(text: str, kind: str) -> str:
    if kind == "b":
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="
    raw = quopri.encodestring(text.encode(), header=True).decode().replace("?", "=3F")
    return "=?utf-8?q?" + raw.replace("\r", "").replace("\n", "") + "?="


def _header(text: str, kind: str) -> str:
    if kind == "plain" and text.isascii():
        return text.replace("\r", " ").replace("\n", " ")
    return _encoded_word(text, "b" if kind == "plain" else kind)


def _body(text: str, encoding: str, charset: str) -> tuple[str, bytes]:
    data = text.encode(charset, "replace")
    if encoding == "base64":
        return "base64", base64.encodebytes(data)
    if encoding == "quoted-printable":
        return "quoted-printable", quopri.encodestring(data)
    return "8bit", data.replace(b"\r", b"").replace(b"\n", b" ")


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    subject = draw(words)
    name, local, domain = (
        draw(words),
        draw(st.from_regex(r"[a-z.]{1,8}", fullmatch=True)),
        draw(st.from_regex(r"[a-z]{1,6}\.[a-z]{2,3}", fullmatch=True)),
    )
    kind = draw(st.sampled_from(["plain", "b", "q"]))
    encoding = draw(st.sampled_from(["8bit", "base64", "quoted-printable"]))
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1"]))
    content_type = draw(st.sampled_from(["text/plain", "text/html", "application/pdf"]))
    text = draw(words)
    if content_type == "text/html":
        text = f'<p class="{draw(words)}">{text} &amp; </p>'
    cte, body = _body(text, encoding, charset)
    head = (
        f"From: {_header(name, kind)} <{local}@{domain}>\r\n"
        f"To: {_header(draw(words), kind)} <bob@{domain}>\r\n"
        f"Subject: {_header(subject, kind)}\r\n"
        f"X-Extra: {_header(draw(words), kind)}\r\n"
        "MIME-Version: 1.0\r\n"
    )
    part = (
        (
            f"Content-Type: {content_type}; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n"
        ).encode()
        + body
        + b"\r\n"
    )
    if draw(st.booleans()):
        attached = _body(draw(words), "base64", "utf-8")[1]
        return head.encode() + (
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
            + part
            + b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + attached + b"\r\n--B--\r\n"
        )
    return head.encode() + part


def _sources(message: bytes, key: str) -> list[str]:
    """The texts a key of this kind compares with in the message."""
    structure = StoredStructure(parse_structure(message))
    body = searchtext.body_text(message, structure)
    headers = searchtext.header_text(message, structure)
    match key:
        case "BODY":
            return [body]
        case "TEXT":
            return [body, headers]
        case "SUBJECT":
            return [structure.subject or ""]
        case "FROM":
            return [*structure.from_addrs, headers]
        case "TO":
            return [*structure.to, headers]
        case "CC" | "BCC":
            return [headers]
    return [*searchtext.header_values(message, structure, key), headers]


@st.composite
def needles(draw: st.DrawFn, sources: list[str]) -> str:
    """Mostly a piece of what the key compares with, in random case (so that most needles
    hit, some in rows cut to the limit); sometimes a random short string."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.text(alphabet=ALPHABET, min_size=0, max_size=5))
    source = draw(st.sampled_from(sources))
    start = draw(st.integers(0, max(0, len(source) - 1)))
    end = draw(st.integers(start, min(len(source), start + 10)))
    piece = source[start:end]
    if draw(st.booleans()):
        piece = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in piece)
    return piece


@st.composite
def programs(draw: st.DrawFn, stored: list[bytes]) -> SearchKey:
    kind = draw(
        st.sampled_from(
            [
                "BODY",
                "BODY",
                "TEXT",
                "TEXT",
                "SUBJECT",
                "FROM",
                "TO",
                "CC",
                "BCC",
                "subject",
                "x-extra",
                "from",
            ]
        )
    )
    needle = draw(needles(_sources(draw(st.sampled_from(stored)), kind)))
    key: SearchKey = Text(TextField(kind), needle) if kind.isupper() else Header(kind, needle)
    if draw(st.integers(0, 4)) == 0:
        return Not(key)
    if draw(st.integers(0, 4)) == 0:
        return Or(key, Text(TextField.BODY, draw(words)))
    return key


async def _store(path: Path, limit: int) -> tuple[SQLiteStore, User, Mailbox]:
    store = SQLiteStore(path, parse=parse_structure, indexer=text_indexer(limit))
    await store.open()
    await store.add_domain("example.org")
    user = await store.add_user("alice@example.org", "hash")
    return store, user, await store.get_mailbox(user.id, "INBOX")


async def _answers(store: SQLiteStore, box: Mailbox, program: SearchKey) -> tuple[set, set]:
    """(UIDs the scan alone finds, UIDs found with the index's help)."""
    metas = await store.list_messages(box.id)
    structures = await store.get_structures([m.blob_id for m in metas])
    index = await search_index.ask(store, box.id, program)
    keys = search_index.text_keys(program)
    scan = matcher(program, lambda n: set())
    helped = matcher(program, lambda n: set(), 0, index)
    by_scan, by_index = set(), set()
    for i, meta in enumerate(metas):
        full = Candidate(
            meta,
            i + 1,
            False,
            StoredStructure(structures[meta.blob_id]),
            await store.read_blob(meta.blob_id),
        )
        if scan(full):
            by_scan.add(int(meta.uid))
        settled = (
            index is not None and not index.unanswerable and index.settles(keys, int(meta.uid))
        )
        # What SEARCH does: a message the index settles is not read at all.
        bare = Candidate(meta, i + 1, False) if settled else full
        if helped(bare):
            by_index.add(int(meta.uid))
    return by_scan, by_index


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    batch=st.lists(messages(), min_size=1, max_size=4),
    limit=st.sampled_from([1024, 40]),
)
def test_index_backed_search_equals_the_scan(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    batch: list[bytes],
    limit: int,
) -> None:
    path = tmp_path_factory.mktemp("fts") / "data"

    async def run() -> None:
        store, _user, box = await _store(path, limit)
        try:
            for message in batch:
                await store.append(box.id, message)
            for _ in range(6):
                program = data.draw(programs(batch))
                by_scan, by_index = await _answers(store, box, program)
                assert by_index == by_scan, program
        finally:
            await store.close()

    asyncio.run(run())


async def test_a_long_needle_is_narrowed_by_its_start(
    indexed: tuple[SQLiteStore, User, Mailbox],
) -> None:
    """A needle longer than the index is asked for: its first characters find candidates,
    the scan decides (the two messages share the first 256 characters)."""
    store, _user, box = indexed
    start = "x" * search_index.MAX_NEEDLE
    for tail in ("yes", "no"):
        await store.append(box.id, f"Subject: s\r\n\r\n{start}{tail}\r\n".encode())
    by_scan, by_index = await _answers(store, box, Text(TextField.BODY, start + "yes"))
    assert by_index == by_scan == {1}
    by_scan, by_index = await _answers(store, box, Not(Text(TextField.BODY, start + "z")))
    assert by_index == by_scan == {1, 2}


def test_index_columns_are_the_stores() -> None:
    assert searchtext.COLUMNS == SEARCH_COLUMNS


# -- the index row exists exactly while a message references its body ----------------------


@pytest.fixture
async def indexed(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, User, Mailbox]]:
    store, user, box = await _store(tmp_path / "data", 1024 * 1024)
    yield store, user, box
    await store.close()


def rows(path: Path) -> tuple[set[str], set[str], int]:
    """(bodies messages reference, bodies with an index row, FTS rows), read directly."""
    with sqlite3.connect(path / "mailstead.db") as conn:
        referenced = {r[0] for r in conn.execute("SELECT blob_id FROM messages")}
        indexed = {r[0] for r in conn.execute("SELECT blob_id FROM search_bodies")}
        fts = conn.execute("SELECT count(*) FROM search_text").fetchone()[0]
    return referenced, indexed, fts


def assert_row_iff_message(path: Path) -> None:
    """Every body a message references has its row; a row no message references is noted
    for the purge (its last message went in the same transaction as the note)."""
    referenced, indexed, fts = rows(path)
    with sqlite3.connect(path / "mailstead.db") as conn:
        gone = {r[0] for r in conn.execute("SELECT blob_id FROM search_gone")}
    assert referenced <= indexed
    assert indexed - referenced <= gone
    assert fts == len(indexed)


async def purged(store: SQLiteStore) -> None:
    """Run the background purge to the end, as the server does every few seconds."""
    while await store.purge_index(batch=2):
        pass


def _mail(n: int) -> bytes:
    return f"From: x@example.net\r\nSubject: note {n}\r\n\r\nword{n} here\r\n".encode()


async def test_row_follows_every_write(indexed: tuple[SQLiteStore, User, Mailbox]) -> None:
    store, user, inbox = indexed
    path = store.data_dir
    other = await store.create_mailbox(user.id, "Other")
    first = await store.append(inbox.id, _mail(1))
    await store.append_many(inbox.id, [NewMessage(_mail(2)), NewMessage(_mail(3))])
    assert_row_iff_message(path)
    await store.copy(inbox.id, [first.uid], other.id)
    await store.delete_messages(inbox.id, [first.uid])
    assert_row_iff_message(path)  # the copy still references the body
    assert len(rows(path)[1]) == 3
    await store.move(other.id, [(await store.list_messages(other.id))[0].uid], inbox.id)
    assert_row_iff_message(path)
    await store.store_flags(
        inbox.id, [m.uid for m in await store.list_messages(inbox.id)], FlagMode.ADD, ["\\Deleted"]
    )
    await store.expunge(inbox.id)
    assert_row_iff_message(path)
    await purged(store)
    assert rows(path) == (set(), set(), 0)
    # The same content delivered again after its last message went: indexed again.
    await store.append(inbox.id, _mail(1))
    await store.deliver(_mail(5), [Recipient(user.id)])
    await store.replace(
        other.id, NewMessage(_mail(6)), inbox.id, (await store.list_messages(inbox.id))[0].uid
    )
    assert_row_iff_message(path)
    await purged(store)
    assert len(rows(path)[1]) == 2
    await store.delete_mailbox(user.id, "Other")
    assert_row_iff_message(path)
    await store.remove_user(user.address)  # every mailbox goes, by cascade
    assert_row_iff_message(path)
    await purged(store)
    assert rows(path) == (set(), set(), 0)


async def test_failed_append_leaves_no_row(indexed: tuple[SQLiteStore, User, Mailbox]) -> None:
    """The row is written in the append's transaction: an append the quota refuses rolls
    back the row with the message."""
    store, user, inbox = indexed
    await store.set_quota(user.address, 10)
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, _mail(1))
    assert rows(store.data_dir) == (set(), set(), 0)


async def test_search_text_answers(indexed: tuple[SQLiteStore, User, Mailbox]) -> None:
    store, _user, inbox = indexed
    a = await store.append(inbox.id, _mail(1))
    b = await store.append(
        inbox.id, b"From: y@sub.example.com\r\nSubject: Stra\xc3\x9fe\r\n\r\nx\r\n"
    )
    found = await store.search_text(
        inbox.id,
        [
            TextQuery(("body",), "word1"),
            TextQuery(("addr_from",), "xample.co"),
            TextQuery(("subject",), "strasse"),
            TextQuery(("subject", "body"), "note"),
        ],
    )
    assert found.hits == (
        frozenset({int(a.uid)}),
        frozenset({int(b.uid)}),
        frozenset({int(b.uid)}),
        frozenset({int(a.uid)}),
    )
    assert found.unindexed == found.incomplete == frozenset()


# -- crash and start-up --------------------------------------------------------------------

PASSWORD = "index password"


async def _account(data_dir: Path) -> None:
    async with SQLiteStore(data_dir, parse=parse_structure) as store:
        await store.add_domain("example.org")
        await store.add_user("ann@example.org", hash_password(PASSWORD, TEST_PASSWORD_POLICY))


def test_kill_9_keeps_every_row_with_its_message(tmp_path: Path) -> None:
    """SIGKILL while a client appends and expunges: afterwards every message has its index
    row and every row its message (they commit together), and acknowledged messages are
    found through the index."""
    asyncio.run(_account(tmp_path / "data"))
    server = SubprocessServer(tmp_path, {"auth": {"allow_plaintext": True}}).start()
    acked: list[int] = []
    stop = threading.Event()

    def client() -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
            imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
            imap.login("ann@example.org", PASSWORD)
            imap.select("INBOX")
            n = 0
            while not stop.is_set():
                assert imap.append("INBOX", "", None, _mail(n))[0] == "OK"
                acked.append(n)
                if n % 3 == 2:  # drop the oldest: rows must go with their messages
                    imap.store("1", "+FLAGS", "\\Deleted")
                    imap.expunge()
                n += 1

    worker = threading.Thread(target=client)
    worker.start()
    try:
        poll_until(
            lambda: True if len(acked) >= 30 else None,
            timeout=120,
            failure=lambda: f"only {len(acked)} appends acknowledged",
        )
        server.kill()
    finally:
        stop.set()
        server.kill()
        worker.join(timeout=60)
    assert_row_iff_message(tmp_path / "data")
    referenced, _, _ = rows(tmp_path / "data")
    assert referenced

    async def find_last() -> frozenset[int]:
        async with SQLiteStore(tmp_path / "data", parse=parse_structure) as store:
            user = await store.find_user("ann@example.org")
            assert user is not None
            inbox = await store.get_mailbox(user.id, "INBOX")
            found = await store.search_text(inbox.id, [TextQuery(("body",), f"word{acked[-1]} ")])
            return found.hits[0]

    assert len(asyncio.run(find_last())) == 1


def test_a_store_from_before_the_index_is_indexed_at_start(tmp_path: Path) -> None:
    """A database from before the index (its last migration not applied, its messages
    without rows) gets the tables by migration and its rows from the server's background
    pass at start; SEARCH answers exactly meanwhile and after."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "mailstead.db") as conn:
        for number, script in enumerate(MIGRATIONS[:14], start=1):  # before FTS (15)
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    asyncio.run(_account(data_dir))

    async def old_messages() -> None:
        async with SQLiteStore(data_dir, parse=parse_structure) as store:  # no indexer
            user = await store.find_user("ann@example.org")
            assert user is not None
            inbox = await store.get_mailbox(user.id, "INBOX")
            for n in range(5):
                await store.append(inbox.id, _mail(n))

    asyncio.run(old_messages())
    referenced, indexed, _ = rows(data_dir)
    assert len(referenced) == 5 and not indexed
    with ServerThread(tmp_path, {"auth": {"allow_plaintext": True}}) as server:
        poll_until(
            lambda: True if rows(data_dir)[1] == referenced else None,
            timeout=60,
            failure=lambda: f"indexed {rows(data_dir)[1]} of {referenced}",
        )
        with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
            imap.login("ann@example.org", PASSWORD)
            imap.select("INBOX")
            assert imap.search(None, "BODY word3")[1] == [b"4"]
            assert imap.search(None, "TEXT NOTE")[1] == [b"1 2 3 4 5"]
    assert_row_iff_message(data_dir)


async def test_a_body_delivered_again_before_the_purge_keeps_its_row(
    indexed: tuple[SQLiteStore, User, Mailbox],
) -> None:
    """The note is per body, and bodies are content-addressed: the same bytes stored again
    before the purge ran make the old row right again, and the purge leaves it."""
    store, _user, inbox = indexed
    first = await store.append(inbox.id, _mail(7))
    await store.delete_messages(inbox.id, [first.uid])
    again = await store.append(inbox.id, _mail(7))
    await purged(store)
    assert_row_iff_message(store.data_dir)
    referenced, with_row, _ = rows(store.data_dir)
    assert referenced == with_row == {(await store.list_messages(inbox.id))[0].blob_id}
    found = await store.search_text(inbox.id, [TextQuery(("body",), "word7 ")])
    assert found.hits[0] == frozenset({again.uid})
