"""The SMTP wire format on its own: replies parsed and encoded, EHLO keywords, xtext, data."""

from __future__ import annotations

import pytest

from mailstead.smtp import codes
from mailstead.wire.smtp import (
    MAX_REPLY_LINE,
    Extensions,
    Reply,
    ReplyParser,
    WireError,
    canonical_lines,
    dot_stuff,
    xtext_decode,
    xtext_encode,
)


def parse(data: bytes) -> list[Reply]:
    return ReplyParser().feed(data)


def test_one_line_reply_with_an_enhanced_code() -> None:
    [reply] = parse(b"250 2.1.0 Sender OK\r\n")
    assert reply == Reply(250, "2.1.0", "Sender OK")
    assert reply.is_positive and not reply.is_error and reply.status == "2.1.0"
    assert str(reply) == "250 2.1.0 Sender OK"


def test_multi_line_reply_is_one_reply_with_the_enhanced_code_once() -> None:
    """RFC 5321 §4.2.1 continuation lines; RFC 2034 §4 repeats the code on each line."""
    [reply] = parse(b"550-5.1.1 The email account that you tried to reach\r\n"
                    b"550-5.1.1 does not exist.\r\n"
                    b"550 5.1.1 Please check.\r\n")
    assert reply.code == 550 and reply.enhanced == "5.1.1"
    assert reply.lines == ("The email account that you tried to reach", "does not exist.",
                           "Please check.")
    assert reply.is_permanent and not reply.is_temporary
    assert str(reply) == ("550 5.1.1 The email account that you tried to reach "
                          "does not exist. Please check.")


def test_pipelined_replies_come_out_in_order_and_fragments_wait() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go") == [
        Reply(250, "2.1.0", "ok"), Reply(250, "2.1.5", "ok")]
    assert parser.pending
    assert parser.feed(b" ahead\r\n") == [Reply(354, "", "go ahead")]
    assert not parser.pending


def test_a_reply_split_at_every_byte_is_the_same_reply() -> None:
    wire = b"250-mx.b.test Hello\r\n250-PIPELINING\r\n250 CHUNKING\r\n451 4.3.0 later\r\n"
    parser = ReplyParser()
    got = [reply for byte in wire for reply in parser.feed(bytes([byte]))]
    assert got == parse(wire)
    assert got[0].lines == ("mx.b.test Hello", "PIPELINING", "CHUNKING")
    assert got[1].is_temporary and got[1].status == "4.3.0"


def test_status_falls_back_to_the_class_when_the_enhanced_code_is_missing_or_wrong() -> None:
    """RFC 3463 §2: the enhanced code's class must agree with the reply code."""
    [missing, wrong, bare] = parse(b"451 try later\r\n550 4.1.1 inconsistent\r\n250\r\n")
    assert (missing.enhanced, missing.status) == ("", "4.0.0")
    assert (wrong.enhanced, wrong.status, wrong.text) == ("", "5.0.0", "4.1.1 inconsistent")
    assert bare == Reply(250, "", "") and str(bare) == "250"


def test_bare_lf_line_endings_are_taken() -> None:
    assert parse(b"220 mx ESMTP\n") == [Reply(220, "", "mx ESMTP")]


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 400 Bad Request\r\n",  # a web server on port 25
    b"25O ok\r\n",
    b"650 nonsense\r\n",  # RFC 5321 §4.2: the first digit is 2 to 5
    b"199 nonsense\r\n",
    b"260 nonsense\r\n",  # and the second 0 to 5
    b"250_ok\r\n",
    b"\r\n",
    b"250-first\r\n251 second\r\n",  # a reply's code cannot change
])
def test_malformed_replies_raise_wire_error(wire: bytes) -> None:
    parser = ReplyParser()
    with pytest.raises(WireError):
        parser.feed(wire)
    assert not parser.pending  # reset: nothing half-parsed stays behind


def test_replies_before_bad_bytes_come_first_and_the_error_next() -> None:
    """A real answer stays an answer; the garbage after it fails the next read."""
    parser = ReplyParser()
    assert parser.feed(b"250 2.0.0 queued\r\nHTTP/1.1 400\r\n") == [
        Reply(250, "2.0.0", "queued")]
    assert parser.pending  # after a 220 to STARTTLS, the caller drops this
    with pytest.raises(WireError, match="not an SMTP reply"):
        parser.feed(b"")
    assert not parser.pending and parser.feed(b"250 ok\r\n") == [Reply(250, "", "ok")]


def test_over_long_line_is_refused_before_its_end_arrives() -> None:
    parser = ReplyParser(max_line_length=100)
    assert parser.feed(b"250 " + b"x" * 94 + b"\r\n")  # exactly 100 with the CRLF
    with pytest.raises(WireError, match="longer than 100"):
        parser.feed(b"250 " + b"x" * 96)  # no line ending yet: already too long
    with pytest.raises(WireError, match="longer than 100"):
        parser.feed(b"250 " + b"x" * 95 + b"\r\n")
    assert ReplyParser().max_line_length == MAX_REPLY_LINE


def test_a_reply_that_never_ends_is_cut_off() -> None:
    parser = ReplyParser(max_lines=3)
    assert parser.feed(b"250-a\r\n250-b\r\n") == []
    with pytest.raises(WireError, match="more than 3 lines"):
        parser.feed(b"250-c\r\n250 d\r\n")


def test_encode_is_what_the_parser_reads_back() -> None:
    reply = Reply(250, "2.0.0", ("first", "second"))
    assert reply.encode() == b"250-2.0.0 first\r\n250 2.0.0 second\r\n"
    assert parse(reply.encode()) == [reply]
    ehlo = Reply(250, "", ("mx.b.test Hello", "PIPELINING"))
    assert parse(ehlo.encode()) == [ehlo]


def test_the_server_uses_the_same_reply_type() -> None:
    assert codes.Reply is Reply
    assert codes.SIZE_EXCEEDED.encode() == b"552 5.3.4 Message size exceeds fixed maximum " \
                                           b"message size\r\n"


def test_ehlo_keywords_and_their_parameters() -> None:
    [reply] = parse(b"250-mx.b.test Hello a.test\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
                    b"250-AUTH PLAIN LOGIN\r\n250-AUTH=LOGIN\r\n250-chunking\r\n"
                    b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
    extensions = Extensions.from_ehlo(reply)
    assert "PIPELINING" in extensions and "CHUNKING" in extensions
    assert "STARTTLS" not in extensions and "mx.b.test" not in extensions
    assert extensions.size_limit == 35882577
    assert extensions.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert "pipelining" in extensions  # RFC 5321 §2.4: keywords are case-insensitive


def test_old_style_auth_and_sizes_without_a_limit() -> None:
    [reply] = parse(b"250-mx\r\n250-AUTH=LOGIN PLAIN\r\n250 SIZE\r\n")
    extensions = Extensions.from_ehlo(reply)
    assert extensions.auth_mechanisms == {"LOGIN", "PLAIN"}
    assert extensions.size_limit == 0
    assert Extensions().size_limit == 0 and not Extensions().auth_mechanisms  # after HELO


def test_xtext() -> None:
    """RFC 3461 §4: "+" and "=" and everything outside ! to ~ as +XX."""
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_encode("bøb") == "b+C3+B8b"
    assert xtext_decode("a+2Bb+3Dc+20d") == "a+b=c d"
    assert xtext_decode("b+C3+B8b") == "bøb"
    assert xtext_decode("x+2b") == "x+"  # lower-case hex taken
    for bad in ("a=b", "a+2", "a+ZZ", "a b", "+"):
        with pytest.raises(WireError):
            xtext_decode(bad)


def test_dot_stuffing_and_canonical_lines() -> None:
    """RFC 5321 §4.5.2 for DATA; RFC 3030 §2 BDAT sends canonical_lines as they are."""
    assert dot_stuff(b"a\n.b") == b"a\r\n..b\r\n.\r\n"
    assert dot_stuff(b".first\r\n..second\r\n") == b"..first\r\n...second\r\n.\r\n"
    assert dot_stuff(b"") == b"\r\n.\r\n"
    assert canonical_lines(b"a\rb\nc\r\nd") == b"a\r\nb\r\nc\r\nd\r\n"
    message = b"Subject: x\r\n\r\nbody\r\n"
    assert canonical_lines(message) is message  # the stored form costs nothing
