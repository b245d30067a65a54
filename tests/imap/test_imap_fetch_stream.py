"""A large message's body sections are sent from the store piece by piece, byte for byte
what reading it whole gives."""

from __future__ import annotations

import base64
import imaplib

import pytest

from mailstead.imap.commands import fetch as fetch_module
from mailstead.testing.server import ServerThread
from tests.imap.conftest import append, connect

ATTACHMENT = base64.encodebytes(bytes(range(256)) * 6000).replace(b"\n", b"\r\n")
LARGE = (b"From: a@example.org\r\nSubject: large\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
         b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64"
         b"\r\n\r\n" + ATTACHMENT + b"--b--\r\n")
ITEMS = ["BODY.PEEK[]", "BODY.PEEK[TEXT]", "BODY.PEEK[2]", "BODY.PEEK[2.MIME]",
         "BODY.PEEK[HEADER]", "BODY.PEEK[]<1000.70000>", "BODY.PEEK[9]", "RFC822.TEXT",
         "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]


def _fetch(client: imaplib.IMAP4, items: str) -> list[bytes]:
    typ, data = client.fetch("1", f"({items})")
    assert typ == "OK"
    return [part[1] for part in data if isinstance(part, tuple)]


def test_streamed_sections_equal_what_reading_it_whole_gives(
        server: ServerThread, account: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(LARGE) > fetch_module._STREAM_FROM
    sent: list[int] = []
    send_span = fetch_module._send_span

    async def counted(session, store, blob_id, span):  # type: ignore[no-untyped-def]
        sent.append(len(span))
        await send_span(session, store, blob_id, span)

    monkeypatch.setattr(fetch_module, "_send_span", counted)
    client = connect(server, account)
    try:
        append(client, LARGE)
        client.select("INBOX")
        streamed = _fetch(client, " ".join(ITEMS))
        assert sum(sent) == sum(len(part) for part in streamed[:8])  # all but the fields
        sent.clear()
        # The same items with BINARY.SIZE beside them: not streamable, read whole.
        whole = _fetch(client, " ".join(ITEMS) + " BINARY.SIZE[2]")
        assert sent == []
        assert streamed == whole
        assert streamed[0] == LARGE
        assert streamed[5] == LARGE[1000:71000]
        assert streamed[6] == b""  # no part 9: empty (RFC 9051 §6.4.5)
        # And the pieces: a smaller piece size sends the same bytes in more pieces.
        monkeypatch.setattr(fetch_module, "_STREAM_PIECE", 64 * 1024 + 7)
        assert _fetch(client, " ".join(ITEMS)) == whole
    finally:
        client.logout()
