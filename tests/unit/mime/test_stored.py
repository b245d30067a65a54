"""The stored structure: its layout, its fast readers, and the version 1 rows it still reads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mime_checks import check_stored

from mailstead.mime import ParsedMessage, Part, parse_message, presented, stored
from mailstead.mime.stored import StoredStructure
from mailstead.testing.paths import SHARED

MIME = SHARED / "corpus" / "mime"
MESSAGES = sorted(p for p in MIME.rglob("*") if p.is_file()) if MIME.is_dir() else []
DATA = Path(__file__).parent / "data"
#: A message and the structure mailstead stored for it before layout version 2 (written by
#: the version 1 writer, ParsedMessage.to_json, and kept byte for byte as users' rows are).
V1_MESSAGE = (DATA / "stored-v1.eml").read_bytes()
V1_ROW = (DATA / "stored-v1.json").read_bytes()

SMALL = b"Subject: hi\r\nFrom: Ann <a@x.org>\r\n\r\nbody\r\n"


def _v1_part(part: Part) -> dict[str, Any]:
    """Part.to_dict of the version 1 writer (the tree format is the same in version 2)."""
    d: dict[str, Any] = {
        "hs": part.header_start,
        "he": part.header_end,
        "bs": part.body_start,
        "be": part.body_end,
        "type": part.content_type,
        "subtype": part.content_subtype,
        "enc": part.encoding,
        "lines": part.lines,
        "headers": [list(h) for h in part.headers],
    }
    if part.params:
        d["params"] = [list(p) for p in part.params]
    if part.multipart:
        d["multipart"] = True
    if part.children:
        d["children"] = [_v1_part(c) for c in part.children]
    if part.disposition is not None:
        d["disp"] = part.disposition
    if part.disposition_params:
        d["disp_params"] = [list(p) for p in part.disposition_params]
    if part.language:
        d["lang"] = list(part.language)
    for key, value in (
        ("loc", part.location),
        ("id", part.content_id),
        ("desc", part.description),
        ("md5", part.md5),
    ):
        if value is not None:
            d[key] = value
    return d


def _v1_row(parsed: ParsedMessage) -> bytes:
    """What the version 1 writer (ParsedMessage.to_json) stored: one JSON document."""
    doc = {
        "v": 1,
        "size": parsed.size,
        "envelope": parsed.envelope,
        "body": parsed.body,
        "bodystructure": parsed.bodystructure,
        "message_id": parsed.message_id,
        "subject": parsed.subject,
        "date": parsed.date.isoformat() if parsed.date is not None else None,
        "from": list(parsed.from_addrs),
        "to": list(parsed.to),
        "cc": list(parsed.cc),
        "bcc": list(parsed.bcc),
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "root": _v1_part(parsed.root),
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _fields(s: StoredStructure | ParsedMessage) -> tuple[object, ...]:
    """Every field the fast readers answer, in one comparable tuple."""
    if isinstance(s, ParsedMessage):
        header_end, top = s.root.header_end, [list(h) for h in s.root.headers]
    else:
        header_end, top = s.header_end, s.top_headers
    return (
        s.envelope, s.body, s.bodystructure, header_end, top,
        s.subject, s.from_addrs, s.to, s.cc, s.bcc, s.date,
    )


@pytest.fixture
def document_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts whole-document decodes (``stored._load_document``): the slow path."""
    calls: list[int] = []
    real: Callable[[bytes], dict[str, Any]] = stored._load_document

    def spy(data: bytes) -> dict[str, Any]:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(stored, "_load_document", spy)
    return calls


# --- layout versions 3 and 2 ------------------------------------------------------------------

#: SMALL as the version 2 writer stored it (before PREVIEW): rows like it are still read.
SMALL_V2 = (
        b"v2 0000000000000024 00000000000000d5 000000000000010f 0000000000000159"
        b" 000000000000017a 00000000000001c8\n"
        b'(NIL "hi" (("Ann" NIL "a" "x.org")) (("Ann" NIL "a" "x.org"))'
        b' (("Ann" NIL "a" "x.org")) NIL NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)'
        b'[["subject",0,13],["from",13,34]]'
        b'{"subject":"hi","from":["Ann <a@x.org>"],"to":[],"cc":[],"bcc":[],"date":null}'
        b'{"size":42,"message_id":null,"in_reply_to":null,"references":null,"root":'
        b'{"hs":0,"he":36,"bs":36,"be":42,"type":"text","subtype":"plain","enc":"7bit",'
        b'"lines":1}}'
)


def test_layout_version_3_octet_for_octet() -> None:
    """The layout the module docstring describes: a fixed-length first line of offsets, the
    wire strings as they are, the small JSON segments, the part tree, and the preview text
    last: version 2's segments, each where it was, and one more."""
    v2_first_line = 105
    assert stored.encode(parse_message(SMALL)) == (
        b"v3 0000000000000024 00000000000000e6 0000000000000120 000000000000016a"
        b" 000000000000018b 00000000000001d9 000000000000027a\n"
        + SMALL_V2[v2_first_line:] + b"body"
    )


def test_version_2_rows_still_read_without_a_preview(document_decodes: list[int]) -> None:
    old = StoredStructure(SMALL_V2)
    assert old.version == 2
    assert old.preview is None  # made from the body when asked for (FETCH PREVIEW)
    assert _fields(old) == _fields(parse_message(SMALL))
    assert old.has_nul_parts is False
    assert document_decodes == []
    assert old.parsed == dataclasses.replace(parse_message(SMALL), preview=None)


def test_the_preview_is_sliced_from_its_segment(document_decodes: list[int]) -> None:
    raw = "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße  aus\r\n  Köln\r\n"
    fresh = StoredStructure(stored.encode(parse_message(raw.encode())))
    assert fresh.version == 3
    assert fresh.preview == "Grüße aus Köln"
    assert document_decodes == []


def test_fast_fields_of_a_fresh_structure_skip_the_document(document_decodes: list[int]) -> None:
    data = stored.encode(parse_message(V1_MESSAGE))
    fresh = StoredStructure(data)
    assert _fields(fresh) == _fields(parse_message(V1_MESSAGE))
    assert document_decodes == []  # envelope ... date: all sliced from their own segments
    assert fresh.parsed == parse_message(V1_MESSAGE)
    assert len(document_decodes) == 1  # the tree is decoded only when asked for


def test_8bit_and_literal_wire_strings_keep_their_octets() -> None:
    raw = "Subject: grüße\r\nFrom: Jörg <j@x.de>\r\nTo: \"a\\\"b\" <c@d>\r\n\r\nx".encode()
    parsed = parse_message(raw)
    data = stored.encode(parsed)
    assert b'{7}\r\ngr\xc3\xbc\xc3\x9fe' in data  # the literal as it goes on the wire
    check_stored(parsed)


@given(subject=st.text(), name=st.text(max_size=30))
def test_any_header_text(subject: str, name: str) -> None:
    """Quotes, backslashes, line breaks, control characters and 8-bit text in the strings."""
    raw = (f'From: "{name}" <a@example.org>\r\nSubject: {subject}\r\n\r\nbody\r\n'
           .encode("utf-8", "surrogateescape"))
    check_stored(parse_message(raw))


_LINE = b"v2 " + b" ".join(b"%016x" % n for n in (0, 105, 106, 107, 108, 109)) + b"\n"
_LINE3 = b"v3 " + b" ".join(b"%016x" % n for n in (0, 122, 123, 124, 125, 126, 127)) + b"\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"v1 {}",
        b"v2 1 2 3\n",
        _LINE[:-1] + b" ",  # no newline where the first line ends
        _LINE.replace(b"0000000000000069", b"000000000000006g") + b"xxxxx",  # not hex
        _LINE.replace(b" 0000000000000069", b"0 000000000000069") + b"xxxxx",  # moved
        _LINE.replace(b"000000000000006b", b"0000000000000068") + b"xxxxx",  # going back
        _LINE + b"xxx",  # truncated: the segments end at 109, after the 108 octets stored
        _LINE3[:-1] + b" ",
        _LINE3.replace(b"000000000000007f", b"000000000000007x") + b"xxxxxx",  # not hex
        _LINE3.replace(b"000000000000007e", b"0000000000000079") + b"xxxxxx",  # going back
        _LINE3 + b"xxxx",  # truncated
        b"v2" + _LINE3[2:],  # a version 3 line under the version 2 magic
    ],
    ids=["empty", "other-magic", "short-line", "no-newline", "not-hex", "misaligned",
         "backwards", "truncated", "v3-no-newline", "v3-not-hex", "v3-backwards",
         "v3-truncated", "v3-line-as-v2"],
)
def test_octets_in_no_known_layout_are_refused(data: bytes) -> None:
    assert StoredStructure(_LINE + b"BSTs").bodystructure == "S"  # the line before breaking
    with pytest.raises(ValueError):
        _ = StoredStructure(data).envelope
    with pytest.raises(ValueError):
        stored.decode(data)


# --- version 1 rows (stored before version 2) ------------------------------------------------


def test_the_version_1_writer_kept_here_is_the_one_that_wrote_users_rows() -> None:
    assert _v1_row(parse_message(V1_MESSAGE)) == V1_ROW


def test_version_1_rows_still_read(document_decodes: list[int]) -> None:
    old = StoredStructure(V1_ROW)
    assert old.version == 1
    assert _fields(old) == _fields(parse_message(V1_MESSAGE))
    assert document_decodes == [len(V1_ROW)]  # the whole document, once, for every field
    expected = dataclasses.replace(parse_message(V1_MESSAGE), preview=None)  # before PREVIEW
    assert old.preview is None
    assert old.parsed == expected
    assert stored.decode(V1_ROW) == expected


def test_version_1_message_list_fields_skip_the_document(document_decodes: list[int]) -> None:
    """What a client's message list asks of every message (ENVELOPE, BODYSTRUCTURE, header
    fields) reads a version 1 row at the offsets its writer used, as it did before version
    2, so mail stored before the upgrade does not list slower."""
    old = StoredStructure(V1_ROW)
    expected = parse_message(V1_MESSAGE)
    assert (old.envelope, old.body, old.bodystructure) == (
        expected.envelope, expected.body, expected.bodystructure)
    assert old.header_end == expected.root.header_end
    assert old.top_headers == [list(h) for h in expected.root.headers]
    assert document_decodes == []


def test_version_1_with_its_keys_in_another_order_still_reads() -> None:
    parsed = parse_message(SMALL)
    doc = json.loads(_v1_row(parsed))
    shuffled = json.dumps(dict(reversed(list(doc.items())))).encode()
    assert _fields(StoredStructure(shuffled)) == _fields(parsed)
    assert stored.decode(shuffled) == dataclasses.replace(parsed, preview=None)


def _without_nul_flags(part: Part) -> Part:
    """The part tree as a version 1 row holds it: written before ``Part.nul`` existed."""
    children = tuple(_without_nul_flags(c) for c in part.children)
    return dataclasses.replace(part, nul=False, children=children)


@pytest.mark.skipif(not MESSAGES, reason="shared/corpus/mime not present")
def test_every_corpus_message_reads_the_same_from_either_version() -> None:
    with_nul = 0
    for path in MESSAGES:
        parsed = parse_message(path.read_bytes())
        old = dataclasses.replace(parsed, root=_without_nul_flags(parsed.root), preview=None)
        for data, expected in ((_v1_row(parsed), old), (stored.encode(parsed), parsed)):
            s = StoredStructure(data)
            assert _fields(s) == _fields(parsed), (path, s.version)
            assert s.parsed == expected, (path, s.version)
            assert s.has_nul_parts == (s.version == 3 and presented.has_nul_parts(
                parsed.root)), (path, s.version)
        with_nul += presented.has_nul_parts(parsed.root)
    assert with_nul  # the corpus has parts holding a NUL: the flag is exercised


# --- THREAD's reference fields ---------------------------------------------------------------

THREADED = (
    b"Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <r@x>\r\n <a@x>\r\n"
    b"Subject: Re: \"quoted\" \\ text\r\n\r\nbody\r\n"
)


def test_reference_fields_skip_the_part_tree(document_decodes: list[int]) -> None:
    """THREAD reads Message-ID, In-Reply-To and References of every message it threads:
    from the front of the tree segment, never by decoding the part tree."""
    parsed = parse_message(THREADED)
    fresh = StoredStructure(stored.encode(parsed))
    assert fresh.references_fields == (
        parsed.message_id, parsed.in_reply_to, parsed.references
    )
    assert fresh.references_fields[0] == "<b@x>"
    assert document_decodes == []


def test_reference_fields_of_a_version_1_row() -> None:
    old = StoredStructure(V1_ROW)
    parsed = old.parsed
    assert old.references_fields == (parsed.message_id, parsed.in_reply_to, parsed.references)
