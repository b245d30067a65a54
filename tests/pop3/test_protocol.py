"""The sans-I/O wire format: command parsing and the streaming multi-line encoders."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.pop3 import protocol as wire
from mailstead.pop3.errors import CommandError, ResponseCode
from mailstead.pop3.protocol import (
    Command,
    DotStuffer,
    LineLimiter,
    find_header_end,
    parse_command,
    parse_number,
)


def unstuff(response_body: bytes) -> bytes:
    """What a client recovers from a multi-line body (RFC 1939 §3), terminator included."""
    assert response_body.endswith(b"\r\n.\r\n") or response_body == b".\r\n"
    lines = response_body.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    out = [line[1:] if line.startswith(b".") else line for line in lines[:-2]]
    return b"".join(line + b"\r\n" for line in out)


def encode(chunks: list[bytes]) -> bytes:
    stuffer = DotStuffer()
    return b"".join(stuffer.feed(c) for c in chunks) + stuffer.finish()


def canonical(data: bytes) -> bytes:
    """The message as a client should see it: bare LF as CRLF, last line terminated."""
    data = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if data and not data.endswith(b"\n"):
        data += b"\n" if data.endswith(b"\r") else b"\r\n"
    return data


# -- commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"STAT\r\n", Command("STAT")),
        (b"stat\r\n", Command("STAT")),
        (b"LIST 1\r\n", Command("LIST", ("1",), "1")),
        (b"TOP 1 10\n", Command("TOP", ("1", "10"), "1 10")),
        (b"PASS secret with spaces\r\n", Command("PASS", ("secret", "with", "spaces"),
                                                 "secret with spaces")),
        (b"USER j\xc3\xb6rg@example.org\r\n", Command("USER", ("jörg@example.org",),
                                                      "jörg@example.org")),
    ],
)
def test_parse_command(line: bytes, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line", [b"\r\n", b" STAT\r\n", b"STATUS\r\n", b"ST\x00T\r\n", b"USER a\x01b\r\n",
             b"USER \xff\r\n", b"\xe2\x82\xac\r\n"],
)
def test_parse_command_rejects(line: bytes) -> None:
    with pytest.raises(CommandError):
        parse_command(line)


@given(st.binary(max_size=300))
def test_parse_command_only_raises_command_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except CommandError as exc:
        assert exc.text
    else:
        assert 1 <= len(command.name) <= 4 and command.name == command.name.upper()


@pytest.mark.parametrize("text", ["0", "-1", "1.0", "", "\u0661", "12345678901", " 1"])
def test_parse_number_rejects(text: str) -> None:
    with pytest.raises(CommandError):
        parse_number(text)


def test_parse_number() -> None:
    assert parse_number("42") == 42
    assert parse_number("0", allow_zero=True) == 0


def test_responses() -> None:
    assert wire.ok() == b"+OK\r\n"
    assert wire.ok("2 320") == b"+OK 2 320\r\n"
    assert wire.err("locked", ResponseCode.IN_USE) == b"-ERR [IN-USE] locked\r\n"
    assert wire.err("a\r\nb") == b"-ERR a  b\r\n"  # no response splitting
    assert wire.continuation(b"") == b"+ \r\n"
    assert wire.multiline(b"+OK\r\n", [b"TOP", b".x"]) == b"+OK\r\nTOP\r\n..x\r\n.\r\n"


# -- multi-line encoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "wire_form"),
    [
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
        (b"a\n.b\n", b"a\r\n..b\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n"),
        (b"a\rb\r\n", b"a\rb\r\n.\r\n"),  # a lone CR is data, not a line end
    ],
)
def test_dot_stuffer_examples(raw: bytes, wire_form: bytes) -> None:
    assert encode([raw]) == wire_form


_message_bytes = st.lists(
    st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"\r\n.\r\n", b"x.y", b" "]),
    max_size=40,
).map(b"".join)


@given(_message_bytes, st.data())
def test_dot_stuffer_split_anywhere(raw: bytes, data: st.DataObject) -> None:
    """Same output whatever the chunking, and the client recovers the canonical message."""
    whole = encode([raw])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert encode(pieces) == whole
    assert unstuff(whole) == canonical(raw)


@given(_message_bytes)
def test_dot_stuffer_every_byte_split(raw: bytes) -> None:
    assert encode([raw[i : i + 1] for i in range(len(raw))]) == encode([raw])


def test_dot_stuffer_canonical_message_is_byte_exact() -> None:
    raw = b"Subject: x\r\n\r\n.leading dot\r\nend\r\n"
    assert unstuff(encode([raw[:17], raw[17:]])) == raw


# -- TOP helpers --------------------------------------------------------------------------


@given(_message_bytes, st.integers(0, 12), st.integers(1, 7))
def test_line_limiter_matches_reference(body: bytes, limit: int, size: int) -> None:
    limiter = LineLimiter(limit)
    out = b""
    for i in range(0, len(body), size):
        out += limiter.feed(body[i : i + size])
    # Only LF ends a line (a lone CR is data); an unterminated last line still counts.
    lines = re.findall(rb"[^\n]*\n|[^\n]+$", body)
    assert out == b"".join(lines[:limit])


def test_line_limiter_done() -> None:
    limiter = LineLimiter(1)
    assert limiter.feed(b"one\r\ntwo\r\n") == b"one\r\n"
    assert limiter.done
    assert limiter.feed(b"three\r\n") == b""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"A: b\r\n\r\nbody", 8),
        (b"A: b\n\nbody", 6),
        (b"\r\nbody", 2),
        (b"A: b\r\nC: d\r\n", None),
    ],
)
def test_find_header_end(data: bytes, expected: int | None) -> None:
    assert find_header_end(data) == expected
