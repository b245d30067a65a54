"""The sans-I/O wire format: commands, parameters, xtext, BDAT, and DATA decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailstead.smtp.codes import Reply
from mailstead.smtp.protocol import (
    DataDecoder,
    ProtocolError,
    Unstuffer,
    parse_command,
    parse_params,
)


def test_parse_command() -> None:
    assert parse_command(b"mail FROM:<a@b>\r\n").verb == "MAIL"
    assert parse_command(b"mail FROM:<a@b>\r\n").argument == b"FROM:<a@b>"
    assert parse_command(b"QUIT\n").verb == "QUIT"
    assert parse_command(b"\xff\xfe x\r\n").verb == ""
    assert parse_command(b"\r\n").verb == ""


def test_reply_encoding() -> None:
    assert Reply(250, "2.0.0", "OK").encode() == b"250 2.0.0 OK\r\n"
    assert Reply(250, "", ("host", "PIPELINING")).encode() == b"250-host\r\n250 PIPELINING\r\n"
    assert Reply(550, "5.1.1", "a\r\nb").encode() == b"550 5.1.1 a  b\r\n"


def test_parse_params() -> None:
    assert parse_params("SIZE=100 body=8BITMIME SMTPUTF8") == {
        "SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": None,
    }
    with pytest.raises(ProtocolError):
        parse_params("SIZE=1 SIZE=2")
    with pytest.raises(ProtocolError):
        parse_params("-X=1")
    with pytest.raises(ProtocolError):
        parse_params("ORCPT=rfc822;ü@x")
    assert parse_params("ORCPT=rfc822;ü@x", utf8=True)["ORCPT"] == "rfc822;ü@x"


@dataclass
class Decoded:
    """A decoder fed to the end, the unstuffer that made the message of what it gave out
    piece by piece, and that message."""

    decoder: DataDecoder
    unstuffer: Unstuffer
    message: bytes
    pieces: int

    @property
    def bare_lf(self) -> bool:
        return self.unstuffer.bare_lf

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoder, name)


def decode(data: bytes, *, split: int = 0, reject_bare_lf: bool = True, **kw: Any) -> Decoded:
    """Feed ``data`` (whole, or in pieces of ``split`` bytes), taking what the decoder gives
    out after each feed as the session does, and unstuff that; it must end exactly at the
    end marker."""
    decoder = DataDecoder(**kw)
    pieces = [data[i : i + split] for i in range(0, len(data), split)] if split else [data]
    out: list[bytes] = []
    for index, piece in enumerate(pieces):
        used = decoder.feed(piece)
        if decoder.keeping:
            out += decoder.take()
        else:
            assert decoder.take() == []  # nothing of a refused message is given out
            out.clear()
        if used >= 0:
            assert index == len(pieces) - 1 and used == len(piece), "data continued after the end"
            unstuffer = Unstuffer(reject_bare_lf)
            message = b"".join([unstuffer.feed(p) for p in out] + [unstuffer.end()])
            return Decoded(decoder, unstuffer, message, len(out))
    raise AssertionError("no end of data")


def test_dot_unstuffing() -> None:
    decoder = decode(b"Subject: x\r\n\r\n..leading dot\r\n.single\r\n.\r\n")
    assert decoder.message == b"Subject: x\r\n\r\n.leading dot\r\nsingle\r\n"
    assert decode(b"..first line\r\n.\r\n").message == b".first line\r\n"


def test_empty_message() -> None:
    assert decode(b".\r\n").message == b""


def test_bytes_after_the_end_are_left_for_the_next_command() -> None:
    decoder = DataDecoder()
    assert decoder.feed(b"a\r\n.\r\nQUIT\r\n") == 6
    assert decoder.take() == [b"a\r\n"]
    assert decoder.size == 3


def test_end_marker_split_across_every_boundary() -> None:
    data = b"Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\n"
    for split in range(1, len(data) + 1):
        assert decode(data, split=split).message == b"Subject: x\r\n\r\nbody\r\n.dot\r\n"


@pytest.mark.parametrize(
    "smuggled",
    [
        b"a\n.\nMAIL FROM:<x@y>\n",  # LF . LF
        b"a\n.\r\nMAIL FROM:<x@y>\r\n",  # LF . CRLF
        b"a\r\n.\nMAIL FROM:<x@y>\r\n",  # CRLF . LF
        b"a\r.\rMAIL FROM:<x@y>\r\n",  # CR . CR
        b"a\r\n.\r MAIL FROM:<x@y>\r\n",
    ],
)
def test_smuggling_sequences_do_not_end_data(smuggled: bytes) -> None:
    for split in (0, 1, 3):
        decoder = decode(smuggled + b"tail\r\n.\r\n", split=split)
        assert decoder.bare_lf == (b"\n" in smuggled.replace(b"\r\n", b""))


def test_bare_lf_is_flagged_or_normalised() -> None:
    strict = decode(b"a\nb\r\n.\r\n")
    assert strict.bare_lf
    lenient = decode(b"a\nb\r\n.\r\n", reject_bare_lf=False)
    assert lenient.message == b"a\r\nb\r\n"


def test_bare_cr_is_data() -> None:
    assert decode(b"a\rb\r\n.\r\n").message == b"a\rb\r\n"


def test_size_limit_stops_keeping_bytes() -> None:
    decoder = decode(b"x" * 50 + b"\r\n" + b"y" * 50 + b"\r\n.\r\n", max_size=60, split=7)
    assert decoder.oversized
    assert decoder.message == b""
    assert decoder.size == 104
    exact = decode(b"x" * 58 + b"\r\n.\r\n", max_size=60, split=5)
    assert not exact.oversized and exact.size == 60


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))),
    st.integers(min_value=0, max_value=17),
)
def test_stuffing_round_trip(lines: list[bytes], split: int) -> None:
    original = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join(
        (b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines
    )
    assert decode(stuffed + b".\r\n", split=split).message == original


@example(b".", 1, True)  # a lone dot as the message: stuffed, it is not the end marker
@given(st.binary(max_size=300).map(lambda b: b.replace(b"\r\n.", b"\r\n..")),
       st.integers(min_value=1, max_value=23), st.booleans())
def test_any_split_decodes_as_the_whole(data: bytes, split: int, reject: bool) -> None:
    """The message comes out in pieces as it arrives (to be spooled), the same octets and
    the same bare-LF verdict however the data was split."""
    if data.startswith(b"."):  # the first line is stuffed too (b"." alone would end it)
        data = b"." + data
    wire = data + (b"" if data.endswith(b"\r\n") or not data else b"\r\n") + b".\r\n"
    whole = decode(wire, reject_bare_lf=reject)
    split_up = decode(wire, split=split, reject_bare_lf=reject)
    assert split_up.bare_lf == whole.bare_lf
    if not (whole.bare_lf and reject):  # a refused message's octets do not matter
        assert split_up.message == whole.message


@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=9), min_size=1),
       st.booleans())
def test_unstuffing_in_any_split_is_unstuffing_whole(
        data: bytes, cuts: list[int], reject: bool) -> None:
    """The spooled message is unstuffed in the pieces it is read back in: the same octets
    and the same bare-LF verdict as unstuffing it whole, a CR and its LF never apart."""
    whole = Unstuffer(reject)
    expected = whole.feed(data) + whole.end()
    split = Unstuffer(reject)
    out, position, n = [], 0, 0
    while position < len(data):
        size = cuts[n % len(cuts)]
        out.append(split.feed(data[position : position + size]))
        position, n = position + size, n + 1
    out.append(split.end())
    assert split.bare_lf == whole.bare_lf
    if not (whole.bare_lf and reject):  # a refused message's octets do not matter
        assert b"".join(out) == expected


def test_a_long_message_is_given_out_as_it_arrives() -> None:
    line = b"x" * 70 + b"\r\n"
    decoded = decode(line * 1000 + b".\r\n", split=4096)
    assert decoded.message == line * 1000
    assert decoded.pieces >= 1000 * 72 // 4096  # not one piece at the end
