"""A large message's body sections are sent from the store piece by piece, byte for byte
what reading it whole gives."""

from __future__ import annotations

import base64
import binascii
import imaplib
import quopri

import pytest

from mailstead.imap.commands import fetch as fetch_module
from mailstead.testing.server import ServerThread
from tests.imap.conftest import Raw, append, connect, status_of

ATTACHMENT = base64.encodebytes(bytes(range(256)) * 6000).replace(b"\n", b"\r\n")
LARGE = (b"From: a@example.org\r\nSubject: large\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
         b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64"
         b"\r\n\r\n" + ATTACHMENT + b"--b--\r\n")
QP_BODY = quopri.encodestring(("caf\u00e9 \u2014 " * 5000).encode() + b"\nend = \nlast"
                               ).replace(b"\n", b"\r\n")
QP_TEXT = binascii.a2b_qp(QP_BODY)  # what decoding it whole gives
MIXED = (b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n" + ATTACHMENT +
         b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
         + QP_BODY + b"\r\n"
         b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
         b"Subject: inner\r\n\r\ninner body\r\n"
         b"--b--\r\n")
BINARY_ITEMS = ["BINARY.PEEK[1]", "BINARY.SIZE[1]", "BINARY.PEEK[1]<100.5000>",
                "BINARY.PEEK[1]<0.3>", "BINARY.PEEK[1]<1.1>", "BINARY.PEEK[2]",
                "BINARY.SIZE[2]", "BINARY.PEEK[2]<7.20>", "BINARY.PEEK[3]", "BINARY.SIZE[3]",
                "BINARY.PEEK[1]<99999999.10>", "BINARY.PEEK[]"]
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
        # The same items with a field selection of a part beside them: read whole.
        whole = _fetch(client, " ".join(ITEMS) + " BODY.PEEK[2.HEADER.FIELDS (X)]")
        assert sent == []
        assert streamed == whole[: len(streamed)]
        assert streamed[0] == LARGE
        assert streamed[5] == LARGE[1000:71000]
        assert streamed[6] == b""  # no part 9: empty (RFC 9051 §6.4.5)
        # And the pieces: a smaller piece size sends the same bytes in more pieces.
        monkeypatch.setattr(fetch_module, "_STREAM_PIECE", 64 * 1024 + 7)
        assert _fetch(client, " ".join(ITEMS)) == streamed
    finally:
        client.logout()


def test_binary_of_a_large_part_is_decoded_as_it_is_sent(
        server: ServerThread, account: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """BINARY of a part of a large message is decoded while it is read from the store, in
    pieces: the same octets as decoding it whole, with a literal8 exactly when a NUL is
    among the octets sent, and never a read of more than one piece."""
    assert len(MIXED) > fetch_module._STREAM_FROM
    decoded: list[int] = []
    send_decoded = fetch_module._send_decoded

    async def counted(session, store, blob_id, item):  # type: ignore[no-untyped-def]
        decoded.append(len(item))
        await send_decoded(session, store, blob_id, item)

    monkeypatch.setattr(fetch_module, "_send_decoded", counted)
    reads: list[int] = []
    store = server.store
    read_blob = store.read_blob

    async def read_counted(blob_id, start=0, end=None):  # type: ignore[no-untyped-def]
        data = await read_blob(blob_id, start, end)
        reads.append(len(data))
        return data

    monkeypatch.setattr(store, "read_blob", read_counted)
    client = connect(server, account)
    try:
        append(client, MIXED)
        client.select("INBOX")
        typ, data = client.fetch("1", f"({' '.join(BINARY_ITEMS)})")
        assert typ == "OK"
        assert len(decoded) == len(BINARY_ITEMS)
        assert reads and max(reads) <= fetch_module._STREAM_PIECE
        streamed = data
        # The same items beside a field selection of a part: the message is read whole.
        typ, whole = client.fetch(
            "1", f"({' '.join(BINARY_ITEMS)} BODY.PEEK[2.HEADER.FIELDS (X)])")
        assert len(decoded) == len(BINARY_ITEMS)  # no more streamed
        assert _parts(streamed) == _parts(whole)[: len(_parts(streamed))]
        literals = _parts(streamed)
        assert literals[0] == bytes(range(256)) * 6000
        assert literals[1] == literals[0][100:5100]
        assert literals[2] == b"\x00\x01\x02"
        assert literals[3] == b"\x01"
        assert literals[4] == QP_TEXT
        assert literals[5] == QP_TEXT[7:27]
        assert literals[6] == b"Subject: inner\r\n\r\ninner body"
        assert literals[7] == b""
        assert literals[8] == MIXED  # BINARY[] of a multipart: the whole message as it is
        line = b"".join(p[0] if isinstance(p, tuple) else p for p in streamed)
        assert b"BINARY[1] ~{1536000}" in line and b"BINARY[1]<1> {1}" in line  # NUL or not
        assert b"BINARY[2] {%d}" % len(QP_TEXT) in line
        assert b"BINARY.SIZE[1] 1536000" in line
        assert b"BINARY.SIZE[2] %d" % len(QP_TEXT) in line
        assert b"BINARY[1]<99999999> {0}" in line
    finally:
        client.logout()


def _parts(data: list[object]) -> list[bytes]:
    return [part[1] for part in data if isinstance(part, tuple)]


SINGLE_HEADER = (b"From: a@example.org\r\nSubject: one part\r\nMIME-Version: 1.0\r\n"
                 b"Content-Transfer-Encoding: base64\r\n"
                 b"Content-Type: application/octet-stream\r\n\r\n")
SINGLE = SINGLE_HEADER + ATTACHMENT


def test_binary_of_a_whole_large_single_part_message_has_its_header(
        server: ServerThread, account: str) -> None:
    """RFC 3516 §4.2 with RFC 9051 §6.4.5's sections: BINARY[] is the whole message, header
    included, the body decoded and the header saying so; streamed from the store or read
    whole, the same octets, a <partial> window across the header's end included."""
    assert len(SINGLE) > fetch_module._STREAM_FROM
    header = SINGLE_HEADER.replace(b"Transfer-Encoding: base64", b"Transfer-Encoding: binary")
    expected = header + bytes(range(256)) * 6000
    items = "BINARY.PEEK[] BINARY.SIZE[] BINARY.PEEK[]<10.20> BINARY.PEEK[]<150.20>"
    client = connect(server, account)
    try:
        append(client, SINGLE)
        client.select("INBOX")
        typ, streamed = client.fetch("1", f"({items})")
        assert typ == "OK"
        typ, whole = client.fetch("1", f"({items} BODY.PEEK[1.HEADER.FIELDS (X)])")
        assert typ == "OK"
        for data in (streamed, whole):
            literals = _parts(data)
            assert literals[0] == expected
            assert literals[1] == expected[10:30]
            assert literals[2] == expected[150:170]
            line = b"".join(p[0] if isinstance(p, tuple) else p for p in data)
            assert b"BINARY.SIZE[] %d" % len(expected) in line
            assert b"BINARY[] ~{%d}" % len(expected) in line
    finally:
        client.logout()


NUL_PAYLOAD = bytes(range(256)) * 6000
LARGE_NUL = (b"From: a@example.org\r\nSubject: large binary\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
             b"--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
             b"--b\r\nContent-Type: application/octet-stream\r\n"
             b"Content-Transfer-Encoding: binary\r\n\r\n" + NUL_PAYLOAD + b"\r\n--b--\r\n")


def test_a_large_message_with_nul_parts_is_presented_not_streamed(
        server: ServerThread, account: str) -> None:
    """A large message whose part holds NULs: BODY sections come from the presented form
    (the part in base64, decision 0017), read whole rather than streamed as stored, while
    BINARY still streams the stored octets."""
    assert len(LARGE_NUL) > fetch_module._STREAM_FROM
    encoded = base64.encodebytes(NUL_PAYLOAD).rstrip(b"\n").replace(b"\n", b"\r\n")
    shown = LARGE_NUL.replace(b"Transfer-Encoding: binary", b"Transfer-Encoding: base64"
                              ).replace(NUL_PAYLOAD, encoded)
    raw = Raw(server.port("imap"), login=account)
    try:
        raw.send(b"a1 APPEND INBOX ~{%d+}\r\n" % len(LARGE_NUL) + LARGE_NUL + b"\r\n")
        assert status_of(raw.read_until_tag("a1")) == b"OK"
        raw.command("EXAMINE INBOX")
        text = b"".join(raw.command("FETCH 1 (BODY.PEEK[] BODY.PEEK[2]<0.10> RFC822.SIZE)"))
        assert b"BODY[] {%d}\r\n" % len(shown) + shown in text
        assert b"BODY[2]<0> {10}\r\nAAECAwQFBg" in text
        assert b"RFC822.SIZE %d" % len(LARGE_NUL) in text  # the stored size (decision 0017)
        text = b"".join(raw.command("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])"))
        assert b"BINARY[2] ~{%d}\r\n" % len(NUL_PAYLOAD) + NUL_PAYLOAD in text
        assert b"BINARY.SIZE[2] %d" % len(NUL_PAYLOAD) in text
    finally:
        raw.close()
