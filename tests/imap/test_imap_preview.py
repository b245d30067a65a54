"""PREVIEW (RFC 8970) against the real server, with imaplib, imapclient and the raw client:
the capability, the FETCH item and its LAZY modifier, previews served from the stored
structure without reading the body, and messages stored before previews were."""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest

from mailstead.mime import stored
from mailstead.mime.parse import parse_message
from mailstead.mime.preview import MAX_CHARS, MAX_SOURCE
from mailstead.testing.paths import SHARED
from mailstead.testing.server import ServerThread
from tests.imap.conftest import (
    MULTIPART_MESSAGE,
    PASSWORD,
    SIMPLE_MESSAGE,
    Raw,
    append,
    status_of,
)

HTML_MESSAGE = (
    b"From: news@example.org\r\nTo: bob@example.com\r\nSubject: news\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><title>Weekly</title><style>p{margin:0}</style></head>"
    b"<body><p>Hello &amp; welcome</p><p>to the <b>weekly</b> news</p></body></html>\r\n"
)
IMAGE_ONLY = (
    b"From: cam@example.org\r\nSubject: photo\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
)
CORPUS = SHARED / "corpus" / "mime"
#: Corpus messages of many shapes: plain, HTML only, alternative, charsets, broken MIME.
CORPUS_SAMPLE = sorted(
    p for pattern in ("mailpit/*.eml", "stalwart-mail-parser/*.eml",
                      "apache-spamassassin-tdata/*")
    for p in CORPUS.glob(pattern) if p.is_file() and p.stat().st_size < 2_000_000
)[::4]


def _previews(raw: Raw, command: str = "FETCH 1:* (PREVIEW)") -> dict[int, bytes | None]:
    """Sequence number -> the PREVIEW value as the server sent it (a literal's octets, a
    quoted string's content), None for NIL."""
    lines = raw.command(command)
    assert status_of(lines) == b"OK", lines
    out: dict[int, bytes | None] = {}
    for line in lines[:-1]:
        m = re.match(rb'\* (\d+) FETCH \(.*PREVIEW (NIL|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n)',
                     line, re.DOTALL)
        assert m is not None, line
        if m.group(2) == b"NIL":
            value = None
        elif m.group(4) is not None:
            start = m.end()
            value = line[start : start + int(m.group(4))]
        else:
            value = re.sub(rb"\\(.)", rb"\1", m.group(3))
        out[int(m.group(1))] = value
    return out


def _downgrade(data_dir: Path) -> int:
    """Rewrite every stored structure as the version 2 writer stored it, before previews
    existed: what an upgraded server finds in its database. Returns how many rows it
    rewrote. (Version 1 rows read the same way: ``tests/unit/mime/test_stored.py``.)"""
    with contextlib.closing(sqlite3.connect(data_dir / "mailstead.db")) as conn, conn:
        rows = conn.execute("SELECT id, structure FROM blobs WHERE structure IS NOT NULL")
        changed = [(_v2_row(bytes(data)), blob_id) for blob_id, data in rows]
        conn.executemany("UPDATE blobs SET structure = ? WHERE id = ?", changed)
    return len(changed)


def _v2_row(data: bytes) -> bytes:
    """Version 3 octets as the version 2 writer laid them out: the same segments without the
    PREVIEW one at the end, under a first line of six numbers (17 octets shorter)."""
    assert stored.StoredStructure(data).version == 3
    numbers = [int(n, 16) for n in data[3:121].split()]
    header_end, ends = numbers[0], numbers[1:]
    line = b"v2 " + b" ".join(b"%016x" % n for n in (header_end, *(e - 17 for e in ends[:5])))
    old = line + b"\n" + data[122 : ends[5]]
    assert stored.decode(old) == dataclasses.replace(stored.decode(data), preview=None)
    return old


@pytest.fixture
def raw_client(server: ServerThread, account: str) -> Iterator[Raw]:
    client = Raw(server.port("imap"), login=account)
    yield client
    client.close()


@pytest.fixture
def reads(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every body read the store is asked for while the test runs."""
    calls: list[tuple[Any, ...]] = []
    store = server.store
    read_blob, read_blobs = store.read_blob, store.read_blobs

    async def spy_blob(blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        calls.append(("read_blob", start, end))
        return await read_blob(blob_id, start, end)

    async def spy_blobs(requests: Any) -> list[bytes | None]:
        calls.append(("read_blobs", *requests))
        return await read_blobs(requests)

    monkeypatch.setattr(store, "read_blob", spy_blob)
    monkeypatch.setattr(store, "read_blobs", spy_blobs)
    return calls


def test_capability_and_previews_with_imaplib(client: imaplib.IMAP4) -> None:
    typ, caps = client.capability()
    assert typ == "OK" and b"PREVIEW" in caps[0].split()
    for message in (SIMPLE_MESSAGE, MULTIPART_MESSAGE, HTML_MESSAGE, IMAGE_ONLY):
        append(client, message)
    client.select("INBOX")
    typ, data = client.fetch("1:4", "(PREVIEW)")
    assert typ == "OK"
    assert data[0] == b'1 (PREVIEW "Shall we meet at noon?")'
    # Non-ASCII text goes in a literal to an IMAP4rev1 client (RFC 9051 §4.3).
    assert data[1] == (b"2 (PREVIEW {25}", "The café numbers are in.".encode())
    assert data[3] == b'3 (PREVIEW "Hello & welcome to the weekly news")'
    assert data[4] == b'4 (PREVIEW "")'  # no text part: empty, not NIL (RFC 8970)
    typ, data = client.fetch("1", "(UID PREVIEW (LAZY) FLAGS)")
    assert typ == "OK" and b'PREVIEW "Shall we meet at noon?"' in data[0]
    assert b"\\Seen" not in data[0]  # PREVIEW is no body fetch: \Seen stays unset


def test_previews_with_imapclient(server: ServerThread, account: str) -> None:
    c = imapclient.IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=30)
    try:
        c.login(account, PASSWORD)
        assert b"PREVIEW" in c.capabilities()
        c.append("INBOX", HTML_MESSAGE)
        c.append("INBOX", MULTIPART_MESSAGE)
        c.select_folder("INBOX", readonly=True)
        fetched = c.fetch(c.search("ALL"), ["PREVIEW"])
        assert [fetched[n][b"PREVIEW"] for n in sorted(fetched)] == [
            b"Hello & welcome to the weekly news", "The café numbers are in.".encode()]
    finally:
        c.logout()


def test_utf8_clients_get_quoted_strings(raw_client: Raw) -> None:
    raw_client.send(f"a APPEND INBOX {{{len(MULTIPART_MESSAGE)}+}}\r\n".encode()
                    + MULTIPART_MESSAGE + b"\r\n")
    assert status_of(raw_client.read_until_tag("a")) == b"OK"
    assert status_of(raw_client.command("ENABLE UTF8=ACCEPT")) == b"OK"
    raw_client.command("SELECT INBOX")
    lines = raw_client.command("FETCH 1 PREVIEW")
    assert lines[0] == '* 1 FETCH (PREVIEW "The café numbers are in.")\r\n'.encode()


def test_previews_come_from_the_structure_not_the_body(
    client: imaplib.IMAP4, reads: list[tuple[Any, ...]]
) -> None:
    """New messages: PREVIEW, with or without LAZY, reads no body octet."""
    for message in (SIMPLE_MESSAGE, HTML_MESSAGE):
        append(client, message)
    client.select("INBOX", readonly=True)
    reads.clear()
    typ, data = client.fetch("1:*", "(PREVIEW ENVELOPE)")
    assert typ == "OK" and b"PREVIEW" in data[0]
    typ, data = client.fetch("1:*", "(PREVIEW (LAZY))")
    assert typ == "OK" and b"NIL" not in data[0]
    assert reads == []


def test_messages_stored_before_previews(
    server: ServerThread, raw_client: Raw, reads: list[tuple[Any, ...]]
) -> None:
    """A structure stored before previews were: LAZY answers NIL (RFC 8970: the
    preview is not at hand); without LAZY it is made from the part of the body it needs."""
    messages = (SIMPLE_MESSAGE, MULTIPART_MESSAGE, IMAGE_ONLY)
    for message in messages:
        raw_client.send(f"a APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
        assert status_of(raw_client.read_until_tag("a")) == b"OK"
    raw_client.command("SELECT INBOX")
    fresh = _previews(raw_client)
    assert _downgrade(server.data_dir) >= len(messages)
    reads.clear()
    assert _previews(raw_client, "FETCH 1:* (PREVIEW (LAZY))") == {1: None, 2: None, 3: None}
    assert reads == []
    assert _previews(raw_client) == fresh
    # Read: each text message up to its text part's end, the image-only one not at all.
    body_end = [len(m) for m in messages[:2]]
    assert sorted(end for _, _, end in reads) == sorted(
        min(parse_message(m).root.body_end, MAX_SOURCE) if i == 0 else
        min(parse_message(m).root.children[0].body_end, MAX_SOURCE)
        for i, m in enumerate(messages[:2]))
    assert all(end is not None and end <= size for (_, _, end), size in zip(
        sorted(reads), sorted(body_end), strict=True))
    # Both in one request: LAZY gets the preview the other made.
    lines = raw_client.command("UID FETCH 1 (PREVIEW (LAZY) PREVIEW)")
    assert lines[0].startswith(b'* 1 FETCH (PREVIEW "Shall we meet at noon?" PREVIEW "Shall')


@pytest.mark.skipif(not CORPUS_SAMPLE, reason="shared/corpus/mime not present")
def test_corpus_previews_are_what_the_parser_made(server: ServerThread, account: str) -> None:
    """Corpus messages appended and fetched: each preview is the one ``parse_message``
    makes, within the RFC's limits, and served in a form imaplib reads back."""
    raw = Raw(server.port("imap"), login=account)
    try:
        expected = []
        for path in CORPUS_SAMPLE:
            message = path.read_bytes()
            raw.send(f"a APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
            assert status_of(raw.read_until_tag("a")) == b"OK", path
            preview = parse_message(message).preview
            assert preview is not None
            expected.append(preview.encode())
        raw.command("EXAMINE INBOX")
        got = _previews(raw)
        assert [got[n] for n in sorted(got)] == expected
        assert sum(1 for p in expected if p) > len(expected) // 2  # mostly text: exercised
        for value in expected:
            text = value.decode()
            assert len(text) <= MAX_CHARS
            assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)
            assert not re.search(r"<(?:p|div|br|html|body|span|td|a)\b", text, re.IGNORECASE)
    finally:
        raw.close()


def test_bad_preview_modifiers(client: imaplib.IMAP4, raw_client: Raw) -> None:
    append(client, SIMPLE_MESSAGE)
    raw_client.command("SELECT INBOX")
    lines = raw_client.command("FETCH 1 (PREVIEW (FAST))")
    assert status_of(lines) == b"BAD" and len(lines) == 1
    lines = raw_client.command("FETCH 1 (PREVIEW (LAZY LAZY))")
    assert status_of(lines) == b"OK"  # repeated LAZY: allowed by the grammar
