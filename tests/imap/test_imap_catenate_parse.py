"""The CATENATE grammar (RFC 4469 §5) and the IMAP URLs it carries (RFC 5092), without a
server: examples, and properties over generated commands and URLs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.commands import GRAMMARS
from mailstead.imap.parse.commands import (
    MAX_CATENATE_PARTS,
    Append,
    Catenate,
    CatText,
    CatURL,
    Replace,
    parse_command,
)
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.imapurl import MessageURL, URLError, base_url, parse_url, resolve
from mailstead.imap.parse.receiver import Frame, NeedLiteral, Receiver
from mailstead.mime.sections import Section, SectionText


def _parse(frame: bytes) -> Append:
    cmd = parse_command(frame, GRAMMARS)
    assert isinstance(cmd.args, Append)
    return cmd.args


def test_catenate_parts_in_order_with_flags_and_date() -> None:
    args = _parse(
        b'a APPEND Drafts (\\Seen) "01-Feb-2024 10:00:00 +0100" CATENATE '
        b'(URL "/Drafts;UIDVALIDITY=3/;UID=20/;section=HEADER" TEXT {3}\r\nabc '
        b"URL /INBOX/;UID=1 TEXT ~{2}\r\n\x00\x01)"
    )
    assert args.flags == ("\\Seen",) and args.date is not None
    assert args.message == Catenate(
        (
            CatURL("/Drafts;UIDVALIDITY=3/;UID=20/;section=HEADER"),
            CatText(b"abc"),
            CatURL("/INBOX/;UID=1"),
            CatText(b"\x00\x01"),
        )
    )


def test_catenate_in_multiappend_and_replace() -> None:
    args = _parse(b"a APPEND INBOX CATENATE (TEXT {1}\r\nx) {1}\r\ny CATENATE (URL u)")
    assert [m.message for m in args.messages] == [
        Catenate((CatText(b"x"),)),
        b"y",
        Catenate((CatURL("u"),)),
    ]
    cmd = parse_command(b"a UID REPLACE 4 Drafts CATENATE (URL ;UID=4 TEXT {1}\r\nz)", GRAMMARS)
    assert isinstance(cmd.args, Replace)
    assert cmd.args.message.message == Catenate((CatURL(";UID=4"), CatText(b"z")))


@pytest.mark.parametrize(
    "frame",
    [
        b"a APPEND INBOX CATENATE ()",
        b"a APPEND INBOX CATENATE (TEXT)",
        b'a APPEND INBOX CATENATE (TEXT "abc")',  # a literal, never a quoted string
        b"a APPEND INBOX CATENATE (TEXT {3}\r\na\x00c)",  # NUL needs literal8
        b"a APPEND INBOX CATENATE (URL)",
        b"a APPEND INBOX CATENATE (BODY x)",
        b"a APPEND INBOX CATENATE (URL x",
        b"a APPEND INBOX CATENATE URL x",
        b"a APPEND INBOX CATENATE (URL x) trailing",
        b"a APPEND INBOX CATENATE (URL {4097}\r\n" + b"x" * 4097 + b")",
        b"a APPEND INBOX CATENATE"
        + b" ("
        + b" ".join([b"URL x"] * (MAX_CATENATE_PARTS + 1))
        + b")",
    ],
)
def test_malformed_catenate_is_refused(frame: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(frame, GRAMMARS)


def test_too_many_parts_in_one_command() -> None:
    message = b" CATENATE (" + b" ".join([b"URL x"] * 200) + b")"
    with pytest.raises(ParseError, match="CATENATE parts"):
        parse_command(b"a APPEND INBOX" + message * 6, GRAMMARS)


def test_receiver_marks_text_literals() -> None:
    rx = Receiver()
    rx.feed(b"a APPEND INBOX CATENATE (TEXT {0}\r\n")
    lit = rx.next()
    assert isinstance(lit, NeedLiteral) and lit.text_part and lit.size == 0
    rx.feed(b" URL x TEXT {1+}\r\nq)\r\n")
    lit = rx.next()
    assert isinstance(lit, NeedLiteral) and lit.text_part
    assert isinstance(rx.next(), Frame)
    rx.feed(b"b APPEND INBOX {0}\r\n")
    lit = rx.next()
    assert isinstance(lit, NeedLiteral) and not lit.text_part


_PART = st.one_of(
    st.binary(max_size=40).map(CatText),
    st.from_regex(r"[A-Za-z0-9/;=.%]{1,30}", fullmatch=True).map(CatURL),
)


def _wire(part: CatText | CatURL, plus: bool) -> bytes:
    if isinstance(part, CatURL):
        return b'URL "' + part.url.encode() + b'"'
    assert isinstance(part.data, bytes)
    tilde = b"~" if b"\x00" in part.data else b""
    return b"TEXT " + tilde + b"{%d%s}\r\n" % (len(part.data), b"+" if plus else b"") + part.data


@given(st.lists(st.lists(_PART, min_size=1, max_size=6), min_size=1, max_size=4), st.booleans())
def test_generated_commands_parse_back_through_the_receiver(
    messages: list[list[CatText | CatURL]], plus: bool
) -> None:
    """A command built from parts, framed by the receiver in one-byte pieces (as a slow
    client sends it), parses back to the same parts."""
    wire = (
        b"t APPEND INBOX "
        + b" ".join(
            b"CATENATE (" + b" ".join(_wire(p, plus) for p in parts) + b")" for parts in messages
        )
        + b"\r\n"
    )
    rx = Receiver()
    frame: Frame | None = None
    for i in range(len(wire)):
        rx.feed(wire[i : i + 1])
        while True:
            event = rx.next()
            if isinstance(event, Frame):
                frame = event
            if not isinstance(event, NeedLiteral):
                break
    assert frame is not None
    args = _parse(frame.data)
    assert [m.message for m in args.messages] == [Catenate(tuple(p)) for p in messages]


# -- URLs -------------------------------------------------------------------------------
BASE = base_url("user@example.com", "mail.example.com", "Lists/work")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            ";UID=20",
            MessageURL("user@example.com", "mail.example.com", None, "Lists/work", None, 20),
        ),
        (
            "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME",
            MessageURL(
                "user@example.com",
                "mail.example.com",
                None,
                "Drafts",
                385759045,
                20,
                Section((1,), SectionText.MIME),
            ),
        ),
        (
            "imap://bob%40example.net@other:143/inbox/;UID=3/;SECTION=HEADER/;PARTIAL=10.20",
            MessageURL(
                "bob@example.net",
                "other",
                143,
                "INBOX",
                None,
                3,
                Section((), SectionText.HEADER),
                (10, 20),
            ),
        ),
        (
            "../Sent/;UID=1/;PARTIAL=5",
            MessageURL(
                "user@example.com", "mail.example.com", None, "Lists/Sent", None, 1, None, (5, None)
            ),
        ),
        ("//x%40y@h/B%C3%A4r/;UID=9", MessageURL("x@y", "h", None, "Bär", None, 9)),
        ("imap://u;AUTH=*@h/INBOX/;UID=1", MessageURL("u", "h", None, "INBOX", None, 1)),
    ],
)
def test_urls_resolve_and_parse(reference: str, expected: MessageURL) -> None:
    assert parse_url(resolve(reference, BASE)) == expected


@pytest.mark.parametrize(
    "reference",
    [
        "/INBOX",
        "/INBOX/;UID=0",
        "/INBOX/;UID=x",
        "/;UID=1",
        "/INBOX/;UID=1/;SECTION=1.",
        "/INBOX/;UID=1/;FOO=1",
        "/INBOX/;UID=1/;PARTIAL=1/;SECTION=1",
        "/INBOX/;UID=1;URLAUTH=anonymous:internal:0123",
        "/INBOX;EXPIRE=2030-01-01T00:00:00Z/;UID=1",
        "http://h/INBOX/;UID=1",
        "/INBOX/;UID=1?x",
        "/INBOX;X=1/;UID=1",
        "imap://u;FOO=1@h/INBOX/;UID=1",
        "/%FF/;UID=1",
        "/IN BOX/;UID=1",
        "/INBOX/;UID=1" + "x" * 5000,
    ],
)
def test_unusable_urls_are_refused(reference: str) -> None:
    with pytest.raises(URLError):
        parse_url(resolve(reference, BASE))


#: Mailbox names as the store has them: levels of a hierarchy, none empty (CREATE drops a
#: trailing separator), any characters but the separator.
_NAME = st.lists(
    st.text(
        st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/"),
        min_size=1,
        max_size=10,
    ),
    min_size=1,
    max_size=3,
).map("/".join)


@given(
    _NAME,
    st.integers(1, 2**32 - 1),
    st.integers(1, 2**32 - 1),
    st.sampled_from(["", "HEADER", "TEXT", "1", "2.1.MIME", "1.HEADER.FIELDS (A B)"]),
)
def test_generated_urls_round_trip(name: str, uidvalidity: int, uid: int, section: str) -> None:
    """A URL built for any mailbox name, relative to the server, names that mailbox."""
    base = base_url("u@example.com", "h", None)
    mailbox = base_url("u@example.com", "h", name)[len("imap://u%40example.com@h/") : -1]
    ref = f"/{mailbox};UIDVALIDITY={uidvalidity}/;UID={uid}"
    if section:
        ref += "/;SECTION=" + section.replace(" ", "%20")
    url = parse_url(resolve(ref, base))
    assert (url.mailbox, url.uidvalidity, url.uid) == (
        "INBOX" if name.upper() == "INBOX" else name,
        uidvalidity,
        uid,
    )
    assert (str(url.section) if url.section else "") == section


@given(st.text(max_size=80))
def test_any_text_is_a_url_or_a_url_error(text: str) -> None:
    with contextlib.suppress(URLError):
        parse_url(resolve(text, BASE))


@given(
    st.lists(
        st.sampled_from(
            [
                b"(",
                b")",
                b" ",
                b"TEXT",
                b"URL",
                b"~",
                b"{3}\r\nabc",
                b"{0}\r\n",
                b'"u"',
                b"x",
                b"CATENATE",
                b"\x00",
            ]
        ),
        max_size=20,
    )
)
def test_any_catenate_frame_parses_or_is_a_parse_error(tokens: list[bytes]) -> None:
    with contextlib.suppress(ParseError):
        parse_command(b"a APPEND INBOX CATENATE " + b"".join(tokens), GRAMMARS)
