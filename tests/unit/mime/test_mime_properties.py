"""Property tests: parse_message never fails and its views stay consistent.

"Never fails" can fail: parse_message's last-resort fallback raises under test (the sanity
flag, ``tests/conftest.py``), so a parser bug that these inputs reach fails the test."""

from __future__ import annotations

import binascii
import quopri

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mime_checks import check_message

from mailstead.mime import Part, parse_message, presented
from mailstead.mime.imap_views import (
    PartDecoder,
    decode_part_body,
    decode_quoted_printable,
    section_bytes,
)
from mailstead.mime.sections import Section, SectionText

HEADER = Section(text=SectionText.HEADER)
TEXT = Section(text=SectionText.TEXT)

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_line_end = st.sampled_from([b"\r\n", b"\n", b"\r"])
_fragments = st.sampled_from(
    [
        b"Content-Type: multipart/mixed; boundary=a",
        b'Content-Type: multipart/digest; boundary="a"',
        b"Content-Type: message/rfc822",
        b"Content-Type: text/plain; charset*=utf-8''%C3%A9",
        b"Content-Transfer-Encoding: base64",
        b"MIME-Version: 1.0",
        b'From: "x" <a@b>, g: c@d;',
        b"Subject: =?utf-8?b?w6k=?=",
        b"--a",
        b"--a--",
        b"--ab",
        b"",
        b" folded",
        b"body \x00\xff",
    ]
)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_fragments, _line_end), max_size=40))
    return b"".join(text + end for text, end in lines)


@st.composite
def _structured(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A well-formed multipart tree with random boundaries and content."""
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    if depth >= 3 or draw(st.booleans()):
        text = draw(st.binary(max_size=40)).replace(b"\n--", b"\n -")
        return b"Content-Type: text/plain" + nl + nl + text
    boundary = draw(st.text("abcXYZ0123'()+_,-./:=?", min_size=1, max_size=12)).encode()
    children = draw(st.lists(_structured(depth + 1), min_size=0, max_size=4))
    out = [b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + nl + nl]
    for child in children:
        out.append(b"--" + boundary + nl + child + nl)
    out.append(b"--" + boundary + b"--" + nl)
    return b"".join(out)


@_SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    check_message(raw, parse_message(raw))


@_SETTINGS
@given(_messages())
# Always tried, whatever the draw: a boundary line that continues past the boundary, a
# folded header, an embedded message, a close delimiter, and the same without a blank line.
@example(
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--ab\r\n--a\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n folded\r\n\r\nbody\r\n--a--\r\n"
)
@example(b"Content-Type: multipart/digest; boundary=a\n--a\nSubject: y\n--a--")
def test_mime_like_noise_never_crashes(raw: bytes) -> None:
    parsed = parse_message(raw)
    check_message(raw, parsed)
    for section in (
        Section((1,)), Section((1, 1)), Section((2,), SectionText.HEADER),
        Section((1,), SectionText.MIME), TEXT,
    ):
        assert section_bytes(raw, parsed, section) in raw  # a slice of the message, or b""
    # RFC 9051 §6.4.5: the named fields in their original order, then the blank line.
    from_fields = Section((), SectionText.HEADER_FIELDS, ("FROM",))
    assert section_bytes(raw, parsed, from_fields) == b"".join(
        raw[start:end] for name, start, end in parsed.root.headers if name == "from"
    ) + b"\r\n"
    body = raw[parsed.root.body_start : parsed.root.body_end]
    decoded = decode_part_body(raw, parsed.root)
    if parsed.root.encoding in ("base64", "quoted-printable"):
        assert len(decoded) <= len(body)  # decoding never adds octets
    else:
        assert decoded == body  # 7bit, 8bit, binary and unknown encodings: as stored


@_SETTINGS
@given(_structured())
def test_structured_multipart(raw: bytes) -> None:
    parsed = parse_message(raw)
    check_message(raw, parsed)
    header_and_text = section_bytes(raw, parsed, HEADER) + section_bytes(raw, parsed, TEXT)
    assert header_and_text == raw


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["base64", "quoted-printable", "7bit", "binary"]),
    st.lists(st.one_of(
        st.binary(max_size=30),
        st.sampled_from([b"=", b"=\r\n", b"=\n", b"=\r", b"==", b"=3D", b"=4", b"\r\n", b"\n",
                         b"QUJD", b"QQ==", b"  \r\n", b"\x00"]),
    ), max_size=40),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=10),
)
def test_a_body_decoded_in_pieces_is_the_body_decoded_whole(
        encoding: str, parts: list[bytes], splits: list[int]) -> None:
    """BINARY of a large part is decoded as it is read from the store: whatever the split,
    the pieces are exactly what the whole body decodes to."""
    body = b"".join(parts)
    whole = PartDecoder(encoding)
    expected = whole.feed(body) + whole.end()
    assert _decode_in_pieces(encoding, body, splits) == expected
    if encoding == "quoted-printable":
        assert expected == decode_quoted_printable(body, final=True)
    elif encoding == "base64":  # as it was decoded whole before: junk out, pad, decode
        clean = bytes(c for c in body if c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      b"abcdefghijklmnopqrstuvwxyz0123456789+/")
        clean = clean[:-1] if len(clean) % 4 == 1 else clean
        assert expected == binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
    else:
        assert expected == body


def _decode_in_pieces(encoding: str, body: bytes, splits: list[int]) -> bytes:
    decoder = PartDecoder(encoding)
    out, position, n = [], 0, 0
    while position < len(body):
        size = splits[n % len(splits)]
        out.append(decoder.feed(body[position : position + size]))
        position += size
        n += 1
    out.append(decoder.end())
    return b"".join(out)


# Text lines without line ends of their own: quopri turns a CR LF in its input into a line
# break, so the lines are joined here, with LF or CRLF.
_qp_lines = st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(
    b"\n", b"")), min_size=1, max_size=8)
_padding = st.lists(st.sampled_from([b"", b" ", b"\t", b"  \t ", b"\t\t"]), min_size=1)


@settings(max_examples=300, deadline=None)
@given(_qp_lines, st.booleans(), st.booleans(), _padding,
       st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10))
def test_quoted_printable_decodes_what_encoders_write_and_ignores_transport_padding(
        lines: list[bytes], crlf: bool, quotetabs: bool, padding: list[bytes],
        splits: list[int]) -> None:
    """RFC 2045 §6.7: what Python's encoder writes (soft breaks in lines over 76 characters,
    trailing white space as =20/=09) decodes to the original; white space added at the end
    of any encoded line (rule 3, transport padding, also after a soft-break "=", rule 5)
    changes nothing; and decoding in pieces, a padded line end split anywhere, gives the
    same octets."""
    eol = b"\r\n" if crlf else b"\n"
    original = eol.join(lines)
    encoded = quopri.encodestring(original, quotetabs=quotetabs)
    if not original.endswith(b"\n") and encoded.endswith(b"\n"):
        encoded = encoded[:-1]  # quopri ends its output with a line end the text lacks
    encoded_lines = encoded.split(b"\n")
    if crlf:
        encoded_lines = [line.removesuffix(b"\r") for line in encoded_lines]
    assert decode_quoted_printable(eol.join(encoded_lines), final=True) == original
    padded = eol.join(
        line + padding[i % len(padding)] for i, line in enumerate(encoded_lines)
    )
    assert decode_quoted_printable(padded, final=True) == original
    assert _decode_in_pieces("quoted-printable", padded, splits) == original


@example(b"soft\nbreak", [6, 1])
@example(b"a\n", [2, 1, 1])
@given(st.binary(max_size=80).map(lambda b: b.replace(b"=", b"").replace(b"\r", b"")),
       st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5))
def test_quoted_printable_padding_split_across_pieces(text: bytes, splits: list[int]) -> None:
    """Every line of literal text ends in a soft break with padding on both sides of the
    "=": the padding before the "=" is text, the padding after it goes, and the lines join,
    whatever piece boundaries cut them; the last line loses its own trailing white space."""
    body = text.replace(b"\n", b" \t =  \r\n")
    head, newline, tail = text.rpartition(b"\n")
    expected = (head + newline).replace(b"\n", b" \t ") + tail.rstrip(b" \t")
    assert decode_quoted_printable(body, final=True) == expected
    assert _decode_in_pieces("quoted-printable", body, splits) == expected


def test_quoted_printable_as_dovecot_decodes_it() -> None:
    """The same body Dovecot 2.3 answers BINARY[1] with ``trailing\\r\\nsoftbreak...``."""
    body = b"trailing   \r\nsoft= \t\r\nbreak\r\nend=\r\n=41  \t\r\nlast line  "
    decoded = b"trailing\r\nsoftbreak\r\nendA\r\nlast line"
    assert decode_quoted_printable(body, final=True) == decoded
    for cut in range(1, len(body)):
        assert _decode_in_pieces("quoted-printable", body, [cut]) == decoded


def _leaves(part: Part) -> list[Part]:
    return [leaf for c in part.children for leaf in _leaves(c)] if part.children else [part]


@_SETTINGS
@given(st.one_of(_structured(), _messages()))
def test_parts_with_nul_are_presented_in_base64_and_decode_back(raw: bytes) -> None:
    """RFC 9051 §4.3 / RFC 3516 §6: in the presented message no part body holds a NUL, the
    parts are the same parts in the same order, each presented part decodes back to the
    stored octets, the others are untouched, and BODY/BODYSTRUCTURE describe that form."""
    parsed = parse_message(raw)
    stored_leaves = _leaves(parsed.root)
    if not presented.has_nul_parts(parsed.root):
        # (A multipart's own body, preamble and epilogue, is no part: it stays as it is.)
        assert not any(raw.find(b"\x00", p.body_start, p.body_end) >= 0
                       for p in stored_leaves if not p.multipart)
        return
    shown = presented.present(raw, parsed.root)
    again = parse_message(shown)
    assert (again.body, again.bodystructure) == (parsed.body, parsed.bodystructure)
    shown_leaves = _leaves(again.root)
    assert len(shown_leaves) == len(stored_leaves)
    for old, new in zip(stored_leaves, shown_leaves, strict=True):
        old_body = raw[old.body_start : old.body_end]
        new_body = shown[new.body_start : new.body_end]
        assert b"\x00" not in new_body and not new.nul
        if old.nul:
            assert new.encoding == "base64"
            assert binascii.a2b_base64(new_body.replace(b"\r\n", b"")) == old_body
            assert all(len(line) <= 76 for line in new_body.split(b"\r\n"))
        else:
            assert new_body == old_body
