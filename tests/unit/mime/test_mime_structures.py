"""Hand-written messages with exact ENVELOPE / BODYSTRUCTURE / section expectations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mime_checks import check_message, check_stored

from mailstead.mime import parse_message, stored
from mailstead.mime.imap_views import (
    decode_part_body,
    find_part,
    quote_imap_string,
    section_bytes,
    wire_bytes,
)
from mailstead.mime.parse import MAX_PARTS
from mailstead.mime.sections import Section, SectionText

HEADER = Section(text=SectionText.HEADER)
TEXT = Section(text=SectionText.TEXT)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


RFC_EXAMPLE = crlf(
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\n"
    "From: Fred Foobar <foobar@Blurdybloop.COM>\n"
    "Subject: afternoon meeting\n"
    "To: mooch@owatagu.siam.edu\n"
    "Message-Id: <B27397-0100000@Blurdybloop.COM>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\n"
)


def test_rfc9051_example_envelope_and_bodystructure() -> None:
    p = parse_message(RFC_EXAMPLE)
    fred = '(("Fred Foobar" NIL "foobar" "Blurdybloop.COM"))'
    assert p.envelope == (
        f'("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" {fred} {fred} {fred} '
        '((NIL NIL "mooch" "owatagu.siam.edu")) NIL NIL NIL "<B27397-0100000@Blurdybloop.COM>")'
    )
    # Dovecot (checked by tests/interop/test_dovecot_bodystructure.py) answers a plain
    # 7-bit US-ASCII message's BODYSTRUCTURE in canonical lower case, BODY as written.
    assert (
        p.bodystructure
        == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 55 1 NIL NIL NIL NIL)'
    )
    assert p.body == '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1)'
    assert p.message_id == "<B27397-0100000@Blurdybloop.COM>"
    assert p.subject == "afternoon meeting"
    assert p.date == datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8)))
    assert p.from_addrs == ("Fred Foobar <foobar@Blurdybloop.COM>",)
    assert p.to == ("mooch@owatagu.siam.edu",)
    assert (
        section_bytes(RFC_EXAMPLE, p, Section((1,)))
        == b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    )
    fields = Section((), SectionText.HEADER_FIELDS, ("SUBJECT", "to"))
    assert section_bytes(RFC_EXAMPLE, p, fields) == (
        b"Subject: afternoon meeting\r\nTo: mooch@owatagu.siam.edu\r\n\r\n"
    )
    check_message(RFC_EXAMPLE, p)


ALTERNATIVE = crlf(
    "From: a@example.com\n"
    "Subject: =?utf-8?q?caf=C3=A9?=\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "preamble\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=C3=A9\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>hi</p>\n"
    "--inner--\n"
    "--outer\n"
    'Content-Type: application/pdf; name="a b.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename*=utf-8''a%20b.pdf\n"
    "Content-ID: <att1@x>\n"
    "Content-Language: en, de\n"
    "\n"
    "aGVsbG8=\n"
    "--outer--\n"
    "epilogue\n"
)


def test_alternative_with_attachment() -> None:
    p = parse_message(ALTERNATIVE)
    assert p.bodystructure == (
        '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 9 0 NIL NIL NIL NIL)'
        '("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL)'
        ' "alternative" ("boundary" "inner") NIL NIL NIL)'
        '("application" "pdf" ("name" "a b.pdf") "<att1@x>" NIL "base64" 8 NIL'
        ' ("attachment" ("filename*" "utf-8\'\'a%20b.pdf")) ("en" "de") NIL)'
        ' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )
    assert p.body == (
        '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 9 0)'
        '("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 9 0) "alternative")'
        '("application" "pdf" ("name" "a b.pdf") "<att1@x>" NIL "base64" 8) "mixed")'
    )
    assert p.subject == "café"
    assert section_bytes(ALTERNATIVE, p, Section((1, 1))) == b"caf=C3=A9"
    mime = Section((1, 2), SectionText.MIME)
    assert section_bytes(ALTERNATIVE, p, mime) == b"Content-Type: text/html\r\n\r\n"
    assert section_bytes(ALTERNATIVE, p, Section((2,))) == b"aGVsbG8="
    assert section_bytes(ALTERNATIVE, p, Section((3,))) == b""
    part = find_part(p, (2,))
    assert part is not None
    assert part.disposition == "attachment"
    assert part.disposition_params == (("filename", "a b.pdf"),)
    assert part.language == ("en", "de")
    assert decode_part_body(ALTERNATIVE, part) == b"hello"
    text = find_part(p, (1, 1))
    assert text is not None and decode_part_body(ALTERNATIVE, text) == "café".encode()
    check_message(ALTERNATIVE, p)


NESTED = crlf(
    "Subject: outer\n"
    "Content-Type: multipart/mixed; boundary=b\n"
    "\n"
    "--b\n"
    "\n"
    "first\n"
    "--b\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: inner\n"
    "From: Inner <in@x.org>\n"
    "\n"
    "inner body\n"
    "--b--\n"
)


def test_message_rfc822_nesting() -> None:
    p = parse_message(NESTED)
    inner_env = (
        '(NIL "inner" (("Inner" NIL "in" "x.org")) (("Inner" NIL "in" "x.org"))'
        ' (("Inner" NIL "in" "x.org")) NIL NIL NIL NIL NIL)'
    )
    assert p.bodystructure == (
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        f'("message" "rfc822" NIL NIL NIL "7bit" 52 {inner_env}'
        ' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL) 3'
        ' NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)'
    )
    assert (
        section_bytes(NESTED, p, Section((2,), SectionText.HEADER))
        == b"Subject: inner\r\nFrom: Inner <in@x.org>\r\n\r\n"
    )
    assert section_bytes(NESTED, p, Section((2,), SectionText.TEXT)) == b"inner body"
    assert section_bytes(NESTED, p, Section((2, 1))) == b"inner body"
    mime = Section((2,), SectionText.MIME)
    assert section_bytes(NESTED, p, mime) == b"Content-Type: message/rfc822\r\n\r\n"
    not_from = Section((2,), SectionText.HEADER_FIELDS_NOT, ("FROM",))
    assert section_bytes(NESTED, p, not_from) == b"Subject: inner\r\n\r\n"
    assert section_bytes(NESTED, p, Section((1,), SectionText.HEADER)) == b""
    check_message(NESTED, p)


def test_group_addresses_and_defaults() -> None:
    raw = crlf(
        "From: Boss <boss@corp.example>\n"
        "Sender: secretary@corp.example\n"
        "To: undisclosed-recipients:;\n"
        'Cc: Team: a@x.org, "B, Jr." <b@x.org>;, c@y.org\n'
        "Subject:   spaced   out\t subject \n"
        "\n"
        "body\n"
    )
    p = parse_message(raw)
    assert p.envelope == (
        '(NIL {18}\r\nspaced out subject (("Boss" NIL "boss" "corp.example"))'
        ' ((NIL NIL "secretary" "corp.example")) (("Boss" NIL "boss" "corp.example"))'
        ' ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
        ' ((NIL NIL "Team" NIL)(NIL NIL "a" "x.org")("B, Jr." NIL "b" "x.org")(NIL NIL NIL NIL)'
        '(NIL NIL "c" "y.org")) NIL NIL NIL)'
    )
    # A group's name is searchable with the addresses (SEARCH CC team).
    assert p.cc == ("Team", "a@x.org", "B, Jr. <b@x.org>", "c@y.org")
    assert p.to == ("undisclosed-recipients",)
    assert (
        p.bodystructure
        == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)'
    )


def test_message_without_headers() -> None:
    raw = b"\r\njust a body\r\n"
    p = parse_message(raw)
    assert p.envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert (
        p.bodystructure
        == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1 NIL NIL NIL NIL)'
    )
    assert section_bytes(raw, p, HEADER) == b"\r\n"
    assert section_bytes(raw, p, TEXT) == b"just a body\r\n"
    assert section_bytes(raw, p, Section((1,))) == b"just a body\r\n"
    check_message(raw, p)


def test_empty_and_separatorless_input() -> None:
    for raw in (b"", b"Subject: x", b"no colon at all", b"\n", b"--\n--"):
        p = parse_message(raw)
        check_message(raw, p)
    p = parse_message(b"")
    assert (
        p.bodystructure
        == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
    )


def test_bare_lf_digest_and_missing_close() -> None:
    raw = (
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody one\n"
        b"--d\nContent-Type: text/plain\n\ntwo\n"
    )
    p = parse_message(raw)
    first, second = p.root.children
    assert (first.content_type, first.content_subtype) == ("message", "rfc822")
    assert first.children[0].headers == (
        ("subject", first.body_start, first.body_start + 13),
    )
    assert second.body_end == len(raw)  # no close delimiter: runs to EOF
    assert p.bodystructure.startswith('(("message" "rfc822" NIL NIL NIL "7bit" 22 (NIL "one" ')
    check_message(raw, p)


def test_8bit_headers_become_literals() -> None:
    raw = "Subject: grüße\r\nFrom: Jörg <j@x.de>\r\n\r\nx".encode()
    p = parse_message(raw)
    env = wire_bytes(p.envelope)
    assert env.startswith(b'(NIL {7}\r\ngr\xc3\xbc\xc3\x9fe (({5}\r\nJ\xc3\xb6rg NIL "j" "x.de"))')
    assert p.subject == "grüße"
    check_stored(p)


def test_quote_imap_string() -> None:
    assert quote_imap_string(None) == "NIL"
    assert quote_imap_string("plain") == '"plain"'
    assert quote_imap_string('a"b\\c') == '"a\\"b\\\\c"'
    assert quote_imap_string("line\r\nbreak") == "{11}\r\nline\r\nbreak"
    assert quote_imap_string("é") == "{2}\r\né"
    assert quote_imap_string(b"\x00") == "{1}\r\n\x00"


def test_deep_nesting_is_capped() -> None:
    depth = 300
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth)
    )
    raw = (head + "\nleaf\n").encode()
    p = parse_message(raw)
    levels = 0
    part = p.root
    while part.children:
        part = part.children[0]
        levels += 1
    assert levels == 100
    check_message(raw, p)


def test_a_message_of_100000_parts_keeps_10000_and_the_rest_as_epilogue() -> None:
    """The part cap counts leaves too: 100,000 small parts (4 MB) once made a 28 MB stored
    structure that every FETCH of a section decoded on the event loop."""
    parts = [b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n
             for n in range(100_000)]
    raw = (b"Subject: bomb\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           + b"".join(parts) + b"--b--\r\nafter the end\r\n")
    p = parse_message(raw)
    assert len(p.root.children) == MAX_PARTS - 1  # the root counts as one part
    last = p.root.children[-1]
    assert raw[last.body_start:last.body_end] == b"part 9998"
    assert p.root.body_end == len(raw)  # everything after stays in the message's text
    assert len(stored.encode(p)) < 4 * 1024 * 1024
    check_message(raw, p)


def test_repeated_address_fields_add_up_like_dovecot() -> None:
    p = parse_message(crlf("From: a@x.org\nCc: b@x.org\nCc: c@x.org\n\nhi\n"))
    assert '((NIL NIL "b" "x.org")(NIL NIL "c" "x.org"))' in p.envelope


def test_folded_subject_is_a_literal_without_line_breaks() -> None:
    p = parse_message(crlf("Subject: one\n two\n\nhi\n"))
    assert p.envelope.startswith("(NIL {7}\r\none two NIL")
    assert p.subject == "one two"


def test_plain_7bit_message_bodystructure_is_canonical() -> None:
    p = parse_message(crlf("MIME-Version: 1.0\nContent-Type: Text/Plain\n\nhi\n"))
    assert p.bodystructure == (
        '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL)'
    )
    assert p.body == '("Text" "Plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1)'


def test_rfc2231_value_beyond_latin1_does_not_lose_the_header() -> None:
    # A decoded RFC 2231 value with a UTF-8 charset used to raise in the Part builder, and
    # parse_message fell back to "no header at all".
    raw = crlf(
        "From: a@example.com\n"
        "Subject: check\n"
        "Content-Type: text/plain\n"
        "Content-Disposition: attachment; filename*=utf-8''%E2%9C%94.txt\n"
        "\n"
        "x\n"
    )
    p = parse_message(raw)
    assert p.subject == "check"
    assert p.root.disposition_params == (("filename", "\u2714.txt"),)
    assert p.root.header_end > 0
