"""Property tests of the SMTP wire format: the reply parser reads back what Reply.encode
writes however the bytes are split, and anything else is a WireError, never a crash."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailstead.smtp.protocol import DataDecoder, Unstuffer
from mailstead.wire.smtp import (
    Reply,
    ReplyParser,
    WireError,
    canonical_lines,
    dot_stuff,
    xtext_decode,
    xtext_encode,
)

_SETTINGS = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

# RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39
_codes = st.builds(lambda a, b, c: a * 100 + b * 10 + c,
                   st.integers(2, 5), st.integers(0, 5), st.integers(0, 9))
# Reply text: anything but line breaks, not starting like an enhanced code (a digit).
_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
                max_size=40).filter(
    lambda t: not t[:1].isdigit())


@st.composite
def _replies(draw: st.DrawFn) -> Reply:
    code = draw(_codes)
    enhanced = ""
    if code // 100 in (2, 4, 5) and draw(st.booleans()):
        enhanced = f"{code // 100}.{draw(st.integers(0, 999))}.{draw(st.integers(0, 999))}"
    lines = draw(st.lists(_text, min_size=1, max_size=5))
    return Reply(code, enhanced, lines[0] if len(lines) == 1 else tuple(lines))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@_SETTINGS
@given(st.lists(_replies(), min_size=1, max_size=6), st.lists(st.integers(0, 10_000)))
def test_encoded_replies_read_back_however_split(replies: list[Reply], cuts: list[int]) -> None:
    wire = b"".join(r.encode() for r in replies)
    parser = ReplyParser()
    got = [reply for piece in _split(wire, cuts) for reply in parser.feed(piece)]
    assert got == replies
    assert not parser.pending


@_SETTINGS
@given(st.lists(_replies(), min_size=1, max_size=6))
def test_replies_fed_one_line_at_a_time(replies: list[Reply]) -> None:
    wire = b"".join(r.encode() for r in replies)
    parser = ReplyParser()
    got = [reply for line in wire.splitlines(keepends=True) for reply in parser.feed(line)]
    assert got == replies


_junk_lines = st.lists(st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"250-", b"250 ", b"354", b"421 4.4.2 ", b"250-2.1.0 x", b"5", b"\xff",
                     b"220", b"250-x\r", b"999 ", b"250\t", b"x" * 200]),
    # long replies, to meet the limit on lines
    st.integers(1, 10).map(lambda n: b"250-more\r\n" * n + b"250 end"),
).map(lambda part: part + b"\r\n" if part[-1:] != b"\n" else part), max_size=20)


@_SETTINGS
@given(_junk_lines, st.lists(st.integers(0, 10_000)), st.integers(8, 120),
       st.integers(1, 6))
def test_anything_else_is_a_wire_error_and_memory_stays_bounded(
        lines: list[bytes], cuts: list[int], max_line: int, max_lines: int) -> None:
    parser = ReplyParser(max_line_length=max_line, max_lines=max_lines)
    wire = b"".join(lines)
    for piece in _split(wire, cuts):
        try:
            for reply in parser.feed(piece):
                assert 200 <= reply.code < 600 and len(reply.lines) <= max_lines
        except WireError:
            parser.reset()
        assert len(parser._buffer) < max_line  # never more than one unfinished line


@_SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000)))
def test_random_bytes_never_raise_anything_but_wire_error(data: bytes, cuts: list[int]) -> None:
    parser = ReplyParser()
    for piece in _split(data, cuts):
        try:
            parser.feed(piece)
        except WireError:
            parser.reset()


@_SETTINGS
@given(st.text())
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert all(33 <= ord(ch) <= 126 and ch != "=" for ch in encoded)
    assert xtext_decode(encoded) == text


@_SETTINGS
@given(st.text(max_size=30))
def test_xtext_decode_accepts_or_raises_wire_error(text: str) -> None:
    with contextlib.suppress(WireError):
        xtext_decode(text)


@_SETTINGS
@given(st.lists(st.tuples(st.sampled_from([b"", b".", b"..", b"x", b". ", b"a.b"]),
                          st.sampled_from([b"\r\n", b"\n", b"\r"])), max_size=20),
       st.binary(max_size=5).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_dot_stuffed_data_is_what_our_server_reads_back(
        lines: list[tuple[bytes, bytes]], tail: bytes) -> None:
    """The server's DATA decoder (RFC 5321 §4.5.2) undoes dot_stuff exactly."""
    data = b"".join(text + end for text, end in lines) + tail
    decoder = DataDecoder()
    wire = dot_stuff(data)
    assert decoder.feed(wire) == len(wire)
    unstuffer = Unstuffer(reject_bare_lf=True)
    message = b"".join(unstuffer.feed(p) for p in decoder.take()) + unstuffer.end()
    assert not unstuffer.bare_lf
    assert message == canonical_lines(data)
