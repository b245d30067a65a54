"""``mailstead message import``: real mbox files and a Maildir, checked in the store."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Invoke, one_error_line

from mailstead.admin.importer import (
    BATCH_OCTETS,
    ImportItem,
    decode_mutf7,
    from_line_date,
    import_items,
    maildir_info_flags,
    read_maildir,
    read_mbox,
    to_crlf,
)
from mailstead.core.message_data import READ_PIECE
from mailstead.core.types import SEEN
from mailstead.store.models import Mailbox, MessageMeta
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.paths import SHARED

CORPUS = SHARED / "corpus"
SPAMASSASSIN = CORPUS / "bulk/spamassassin-public-corpus/data/easy-ham-1"
CPYTHON_MBOX = CORPUS / "mime/cpython-test_email/Lib/test/test_email/data/mailbox_01.mbox"
needs_corpus = pytest.mark.skipif(not SPAMASSASSIN.is_dir(), reason="corpus not available")


@pytest.fixture
def bob(mailstead: Invoke) -> str:
    mailstead("domain", "add", "example.org")
    result = mailstead("user", "add", "bob@example.org", "--password-stdin", input="tulip-fox-9\n")
    assert result.exit_code == 0, result.output
    return "bob@example.org"


def stored(data_dir: Path, address: str, folder: str) -> list[tuple[MessageMeta, bytes]]:
    async def read() -> list[tuple[MessageMeta, bytes]]:
        store = SQLiteStore(data_dir)
        await store.open()
        try:
            user = await store.find_user(address)
            assert user is not None
            mailbox = await store.get_mailbox(user.id, folder)
            metas = await store.list_messages(mailbox.id)
            found = [(meta, await store.read_blob(meta.blob_id)) for meta in metas]
        finally:
            await store.close()
        # Appends run concurrently in batches, so UID order within a batch may differ from
        # the source order; compare in (internal date, bytes) order instead.
        return sorted(found, key=lambda item: (item[0].internaldate, item[1]))

    return asyncio.run(read())


@needs_corpus
def test_import_spamassassin_mbox(
    mailstead: Invoke, bob: str, data_dir: Path, tmp_path: Path
) -> None:
    sources = sorted(SPAMASSASSIN.iterdir())[:40]
    mbox = tmp_path / "ham.mbox"
    mbox.write_bytes(b"\n".join(path.read_bytes() for path in sources))
    result = mailstead("message", "import", bob, str(mbox), "--folder", "Old/Ham")
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 40 messages into Old/Ham\n"

    messages = {body: meta for meta, body in stored(data_dir, bob, "Old/Ham")}
    assert len(messages) == 40
    for source in sources:
        from_line, _, original = source.read_bytes().partition(b"\n")
        if source == sources[-1] and original.endswith(b"\n\n"):
            original = original[:-1]  # a final blank line in an mbox is the separator
        # The corpus is mboxrd-escaped (">>From the September 2002 issue"): one ">" goes.
        body = to_crlf(re.sub(rb"(?m)^>(>*From )", rb"\1", original))
        assert b"\n" not in body.replace(b"\r\n", b"")
        meta = messages[body]
        assert meta.size == len(body)
        assert meta.internaldate == from_line_date(from_line.decode())
    listing = mailstead("mailbox", "list", bob).stdout
    assert any(line.split()[:3] == ["Old/Ham", "-", "40"] for line in listing.splitlines())


@needs_corpus
def test_import_cpython_mbox_keeps_unquoted_from_in_body(
    mailstead: Invoke, bob: str, data_dir: Path
) -> None:
    result = mailstead("message", "import", bob, str(CPYTHON_MBOX))
    assert result.stdout == "imported 1 message into INBOX\n", result.output
    [(meta, body)] = stored(data_dir, bob, "INBOX")
    assert body.endswith(b"Hello\r\n\r\nFrom time to time\r\n")
    assert meta.internaldate == datetime(2022, 8, 7, 11, 40, 37, tzinfo=UTC)


def test_mbox_flags_and_mboxrd_unescaping(
    mailstead: Invoke, bob: str, data_dir: Path, tmp_path: Path
) -> None:
    mbox = tmp_path / "box"
    mbox.write_bytes(
        b"From a@b.test Mon Jan  6 10:00:00 2020\n"
        b"Subject: one\nStatus: RO\nX-Status: AF\n\n>From the start\n>>From quoted\n\n"
        b"From c@d.test Tue Jan  7 10:00:00 2020\n"
        b"Subject: two\n\nbody\n"
    )
    result = mailstead("message", "import", bob, str(mbox), "-f", "Imported")
    assert result.stdout == "imported 2 messages into Imported\n", result.output
    (first, body1), (second, body2) = stored(data_dir, bob, "Imported")
    assert body1 == (
        b"Subject: one\r\nStatus: RO\r\nX-Status: AF\r\n\r\nFrom the start\r\n>From quoted\r\n"
    )
    assert first.flags == {"\\Seen", "\\Answered", "\\Flagged"}
    assert second.flags == frozenset()
    assert second.internaldate == datetime(2020, 1, 7, 10, 0, tzinfo=UTC)
    assert body2 == b"Subject: two\r\n\r\nbody\r\n"


def make_maildir(root: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    files = {
        "new/1000.1.host": b"Subject: fresh\n\nnew mail\n",
        "cur/1001.2.host:2,S": b"Subject: seen\r\n\r\nalready CRLF\r\n",
        "cur/1002.3.host:2,FRS": b"Subject: flagged\n\nx\n",
        "cur/1003.4.host:2,DT": b"Subject: draft trashed\n\ny\n",
        ".Work.Projects/cur/1004.5.host:2,S": b"Subject: project\n\nz\n",
        ".Entw&APw-rfe/new/1005.6.host": b"Subject: umlaut\n\nw\n",
    }
    for offset, (name, data) in enumerate(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (1_600_000_000 + offset, 1_600_000_000 + offset))


def test_import_whole_maildir_tree(
    mailstead: Invoke, bob: str, data_dir: Path, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    make_maildir(maildir)
    result = mailstead("message", "import", bob, str(maildir))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "imported 4 messages into INBOX",
        "imported 1 message into Entwürfe",
        "imported 1 message into Work/Projects",
    ]
    inbox = stored(data_dir, bob, "INBOX")
    assert [(set(meta.flags), body) for meta, body in inbox] == [
        (set(), b"Subject: fresh\r\n\r\nnew mail\r\n"),
        ({"\\Seen"}, b"Subject: seen\r\n\r\nalready CRLF\r\n"),
        ({"\\Flagged", "\\Answered", "\\Seen"}, b"Subject: flagged\r\n\r\nx\r\n"),
        ({"\\Draft", "\\Deleted"}, b"Subject: draft trashed\r\n\r\ny\r\n"),
    ]
    assert inbox[0][0].internaldate == datetime.fromtimestamp(1_600_000_000, tz=UTC)
    [(meta, body)] = stored(data_dir, bob, "Work/Projects")
    assert meta.flags == {"\\Seen"}
    assert body == b"Subject: project\r\n\r\nz\r\n"
    listing = mailstead("mailbox", "list", bob).stdout
    assert "Work/Projects" in listing and "Entwürfe" in listing


def test_import_maildir_with_folder_takes_only_the_top_level(
    mailstead: Invoke, bob: str, data_dir: Path, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    make_maildir(maildir)
    result = mailstead("message", "import", bob, str(maildir), "--folder", "Archive/2020")
    assert result.stdout == "imported 4 messages into Archive/2020\n", result.output
    assert "Work" not in mailstead("mailbox", "list", bob).stdout


def test_import_skips_with_reasons(
    mailstead: Invoke, bob: str, config_file: Path, tmp_path: Path
) -> None:
    config_file.write_text(config_file.read_text() + '[limits]\nmax_message_size = "1K"\n')
    mbox = tmp_path / "box"
    mbox.write_bytes(
        b"From a@b Mon Jan  6 10:00:00 2020\nSubject: small\n\nok\n\n"
        b"From a@b Mon Jan  6 10:00:00 2020\nSubject: big\n\n" + b"x" * 2000 + b"\n\n"
        b"From a@b Mon Jan  6 10:00:00 2020\n"
    )
    result = mailstead("message", "import", bob, str(mbox))
    assert result.stdout == (
        "imported 1 message into INBOX "
        "(2 skipped: 1 larger than limits.max_message_size, 1 empty)\n"
    ), result.output


def test_import_over_quota_is_reported(
    mailstead: Invoke, bob: str, data_dir: Path, tmp_path: Path
) -> None:
    mailstead("user", "quota", bob, "1K")
    mbox = tmp_path / "box"
    message = b"Subject: s\n\n" + b"y" * 300 + b"\n"
    mbox.write_bytes(b"\n".join(b"From a@b Mon Jan  6 10:00:00 2020\n" + message for _ in range(5)))
    result = mailstead("message", "import", bob, str(mbox))
    assert result.exit_code == 0, result.output
    imported = len(stored(data_dir, bob, "INBOX"))
    assert 1 <= imported < 5
    assert f"({5 - imported} skipped: {5 - imported} over quota)" in result.stdout


def test_import_errors(mailstead: Invoke, bob: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    line = one_error_line(mailstead("message", "import", bob, str(text)))
    assert line.startswith(f"error: {text} is neither an mbox file")
    line = one_error_line(mailstead("message", "import", "zed@example.org", str(text)))
    assert line == "error: user zed@example.org does not exist"
    assert mailstead("message", "import", bob, str(tmp_path / "missing")).exit_code == 2


def test_read_mbox_large_file_is_lazy(tmp_path: Path) -> None:
    mbox = tmp_path / "big"
    mbox.write_bytes(
        b"".join(b"From x Mon Jan  6 10:00:00 2020\n\nm%d\n\n" % i for i in range(500))
    )
    items = list(read_mbox(mbox))
    assert len(items) == 500
    assert items[499].data == b"\r\nm499\r\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("From a@b  Thu Aug 22 12:36:23 2002", datetime(2002, 8, 22, 12, 36, 23, tzinfo=UTC)),
        (
            "From MAILER-DAEMON Sun Aug  7 11:40:37 2022 extra",
            datetime(2022, 8, 7, 11, 40, 37, tzinfo=UTC),
        ),
        ("From a@b Mon Jan  6 10:00 2020", datetime(2020, 1, 6, 10, 0, tzinfo=UTC)),
        ("From a@b Mon Jan  6 10:00:00 +0100 2020", datetime(2020, 1, 6, 10, 0, tzinfo=UTC)),
        ("From a@b Mon Feb 30 10:00:00 2020", None),
        ("From time to time", None),
    ],
)
def test_from_line_date(line: str, expected: datetime | None) -> None:
    assert from_line_date(line) == expected


def test_small_pieces() -> None:
    assert to_crlf(b"a\nb\r\nc\rd\n") == b"a\r\nb\r\nc\rd\r\n"
    assert maildir_info_flags("123.host:2,DFRST") == {
        "\\Draft",
        "\\Flagged",
        "\\Answered",
        "\\Seen",
        "\\Deleted",
    }
    assert maildir_info_flags("123.host!2,S") == {"\\Seen"}
    assert maildir_info_flags("123.host") == frozenset()
    assert decode_mutf7("Entw&APw-rfe") == "Entwürfe"
    assert decode_mutf7("R&-D") == "R&D"


def test_a_maildir_file_over_the_limit_is_skipped_unread(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1.big:2,S").write_bytes(b"Subject: big\n\n" + b"x" * 5000)
    (maildir / "cur" / "2.small:2,").write_bytes(b"Subject: small\n\nok\n")
    items = list(read_maildir(maildir, max_size=1000))
    assert [(it.data, it.unread_size) for it in items] == [
        (b"", 5014), (b"Subject: small\r\n\r\nok\r\n", 0)]


class _CountingStore:
    """Just what import_items calls, recording the most octets appended at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.appended = 0

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        return Mailbox(7, user_id, name, 1, 1, 0, None, True)

    async def append(self, mailbox_id: int, data: bytes, flags: object, when: object) -> None:
        self.in_flight += len(data)
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0)  # the batch's appends all start before any ends
        self.in_flight -= len(data)
        self.appended += 1


def test_a_batch_is_bounded_in_octets_as_well_as_messages() -> None:
    big = ImportItem(b"Subject: big\r\n\r\n" + b"y" * (6 * 1024 * 1024), frozenset(), None)
    store = _CountingStore()
    report = asyncio.run(import_items(store, 1, "INBOX", [big] * 10,  # type: ignore[arg-type]
                                      max_size=0))
    assert report.imported == store.appended == 10
    assert store.peak <= BATCH_OCTETS  # 10 of them at once would be 60 MiB


def test_a_large_maildir_message_passes_through_a_spool_file(
    mailstead: Invoke, bob: str, data_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Maildir file of SPOOL_FROM or more is converted to CRLF piece by piece into a
    spool file, never read whole: stored exactly as converting it whole gives, with mixed
    line ends and a CRLF split across two pieces, and the spool file is gone after."""
    maildir = tmp_path / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    line = b"Subject: big\n\n" + b"l" * (READ_PIECE - 15) + b"\r\nmore\n"  # CR|LF split
    body = line + b"text with LF\n" * 100_000 + b"and CRLF\r\n" * 1000 + b"last"
    (maildir / "cur" / "1.big:2,S").write_bytes(body)
    reads: list[int] = []
    real_read_bytes = Path.read_bytes

    def counting(self: Path) -> bytes:
        data = real_read_bytes(self)
        reads.append(len(data))
        return data

    monkeypatch.setattr(Path, "read_bytes", counting)
    result = mailstead("message", "import", bob, str(maildir))
    assert result.stdout == "imported 1 message into INBOX\n", result.output
    assert not reads  # the message was never read whole
    [(meta, data)] = stored(data_dir, bob, "INBOX")
    assert data == to_crlf(body) and meta.flags == {SEEN}
    assert list((data_dir / "spool").iterdir()) == []
