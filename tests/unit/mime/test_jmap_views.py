"""JMAP Email views (RFC 8621 §4.1): header properties and forms, the body part model, the
§4.1.4 textBody/htmlBody/attachments algorithm, body values, and the whole corpus."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.mime import jmap_headers as jh
from mailstead.mime import jmap_views as jv
from mailstead.mime import stored
from mailstead.mime.imap_views import section_bytes
from mailstead.mime.jmap_headers import HeaderForm, HeaderProperty, header_property
from mailstead.mime.jmap_views import (
    EmailBody,
    body_structure,
    body_values,
    email_header_properties,
    part_octets,
    preview,
    truncate_utf8,
)
from mailstead.mime.parse import parse_message
from mailstead.mime.sections import Section
from mailstead.testing.paths import SHARED

# --- header property names (§4.1.3) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("header:Subject", HeaderProperty("Subject")),
        ("header:subject:asText", HeaderProperty("subject", HeaderForm.TEXT)),
        (
            "header:Resent-To:asAddresses:all",
            HeaderProperty("Resent-To", HeaderForm.ADDRESSES, True),
        ),
        ("header:List-Post:asURLs", HeaderProperty("List-Post", HeaderForm.URLS)),
        ("header:X-Anything:asDate", HeaderProperty("X-Anything", HeaderForm.DATE)),
        ("header:Received:all", HeaderProperty("Received", HeaderForm.RAW, True)),
        ("header:FROM:asGroupedAddresses", HeaderProperty("FROM", HeaderForm.GROUPED_ADDRESSES)),
        ("header:Keywords:asText", HeaderProperty("Keywords", HeaderForm.TEXT)),
        ("header:Content-Type:asText", HeaderProperty("Content-Type", HeaderForm.TEXT)),
        ("header:From:asRaw", HeaderProperty("From")),
        # forbidden forms for defined fields (§4.1.2.x)
        ("header:From:asDate", None),
        ("header:Subject:asAddresses", None),
        ("header:Date:asText", None),
        ("header:To:asMessageIds", None),
        ("header:List-Post:asAddresses", None),
        ("header:Message-ID:asURLs", None),
        # malformed names
        ("header:", None),
        ("header:From:all:asAddresses", None),  # suffixes out of order
        ("header:From:asaddresses", None),  # form names are case-sensitive
        ("header:From:asAddresses:all:all", None),
        ("header:Fr om", None),
        ("header:Fröm", None),
        ("from", None),
        ("Header:From", None),
    ],
)
def test_header_property(name: str, expected: HeaderProperty | None) -> None:
    assert header_property(name) == expected


def test_header_property_round_trips_its_name() -> None:
    for name in ("header:X-A", "header:X-A:asText", "header:X-A:asURLs:all", "header:X-A:all"):
        prop = header_property(name)
        assert prop is not None and str(prop) == name


# --- header forms (§4.1.2) --------------------------------------------------------------------

HEADER = (
    b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: =?UTF-8?Q?Jos=C3=A9?= <jose@example.com>\r\n"
    b'To: "Smith, Mary" <mary@example.net>,\r\n'
    b"  jdoe@example.org\r\n"
    b"Subject: =?ISO-8859-1?Q?caf=E9?= au\r\n"
    b"\tlait\r\n"
    b"Received: from c by d; Tue, 2 Jan 2024 00:00:00 +0000\r\n"
    b"X-Latin: caf\xe9\r\n"
    b"Message-ID: <1234@local.machine.example>\r\n"
    b"References: <a@x> (comment)\r\n <b@y>\r\n"
    b"Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
    b"List-Post: <mailto:list@host.com> (Postings are Moderated)\r\n"
    b"\r\n"
)


def test_raw_form_is_the_octets_after_the_colon() -> None:
    assert jh.header_values(HEADER, HeaderProperty("to")) == (
        ' "Smith, Mary" <mary@example.net>,\r\n  jdoe@example.org'
    )
    # RFC 8621 §4.1.2.1: octets that are not UTF-8 become U+FFFD; NUL is dropped.
    assert jh.header_values(HEADER, HeaderProperty("X-Latin")) == " caf\ufffd"
    assert jh.raw_form(b" a\x00b") == " ab"


def test_last_instance_all_instances_and_absent() -> None:
    received = HeaderProperty("received")
    assert jh.header_values(HEADER, received).startswith(" from c")
    every = jh.header_values(HEADER, HeaderProperty("Received", HeaderForm.RAW, True))
    assert [v[:7] for v in every] == [" from a", " from c"]
    assert jh.header_values(HEADER, HeaderProperty("X-None")) is None
    assert jh.header_values(HEADER, HeaderProperty("X-None", HeaderForm.TEXT, True)) == []


def test_headers_property_keeps_order_and_spelling() -> None:
    headers = jh.headers_property(b"X-One: 1\r\nx-ONE:2\r\nSubject : s\r\n folded\r\n\r\nBody: no")
    assert headers == [
        {"name": "X-One", "value": " 1"},
        {"name": "x-ONE", "value": "2"},
        {"name": "Subject", "value": " s\r\n folded"},
    ]


def test_a_line_without_a_colon_is_no_field() -> None:
    assert jh.split_header(b"garbage line\r\nX-A: 1\r\n") == (jh.HeaderField("X-A", b" 1"),)
    assert jh.split_header(b" lead: x\r\nX-A: 1\r\n") == (jh.HeaderField("X-A", b" 1"),)


def test_fields_from_the_stored_index_are_the_scanned_ones() -> None:
    raw = HEADER + b"body"
    parsed = parse_message(raw)
    assert jh.indexed_fields(raw, parsed.root.headers) == jh.split_header(HEADER)
    index = jh.HeaderIndex.of_spans(raw, parsed.root.headers)
    for prop in jh.CONVENIENCE.values():
        assert jh.header_values(index, prop) == jh.header_values(HEADER, prop)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b" Saying Hello", "Saying Hello"),
        (b" Fwd:\r\n Saying Hello", "Fwd: Saying Hello"),  # unfolded: only the CRLF goes
        (b" =?iso-8859-1?q?this=20is=20some=20text?=", "this is some text"),
        (b" =?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b"),  # space between words dropped
        (b" =?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=", "ab"),
        (b" this =?iso-8859-1?q?is?= some", "this is some"),
        (b" =?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"),  # RFC 2231 §5 language
        (b" =?utf-8?B?4pyU?= done", "\u2714 done"),
        (b" =?utf-8?B?4g==?= =?utf-8?Q?=9C=94?=", "\u2714"),  # a character split in two words
        # RFC 8621 §4.1.2.2: not decoded where RFC 2047 forbids it (mid-word) ...
        (b" [SPAM]=?utf-8?B?SGk=?=", "[SPAM]=?utf-8?B?SGk=?="),
        (b" =?utf-8?Q?a?=x", "=?utf-8?Q?a?=x"),
        # ... nor in an unknown charset (RFC 2047 §6.2), nor broken
        (b" =?x-nope?Q?a?=", "=?x-nope?Q?a?="),
        (b" =? =?utf-8 =?utf-8?", "=? =?utf-8 =?utf-8?"),
        # encoded controls are dropped
        (b" =?utf-8?Q?a=00b=0D=0Ac?=", "abc"),
        # NFC
        (b" =?utf-8?Q?e=CC=81?=", "\u00e9"),
        (" caf\u00e9 \u30cf\u30ed\u30fc".encode(), "caf\u00e9 \u30cf\u30ed\u30fc"),
        (b" trailing  ", "trailing  "),
        (b"", ""),
    ],
)
def test_text_form(value: bytes, text: str) -> None:
    assert jh.text_form(value) == text


def _addr(name: str | None, email: str) -> dict[str, str | None]:
    return {"name": name, "email": email}


# RFC 8621 §4.1.2.3 and §4.1.2.4: the example in the RFC itself.
RFC8621_ADDRESS_LIST = (
    b'"  James Smythe" <james@example.com>, Friends:\r\n jane@example.com, '
    b"=?UTF-8?Q?John_Sm=C3=AEth?= <john@example.com>;"
)


def test_rfc8621_address_examples() -> None:
    assert jh.addresses_form(RFC8621_ADDRESS_LIST) == [
        _addr("James Smythe", "james@example.com"),
        _addr(None, "jane@example.com"),
        _addr("John Sm\u00eeth", "john@example.com"),
    ]
    assert jh.grouped_addresses_form(RFC8621_ADDRESS_LIST) == [
        {"name": None, "addresses": [_addr("James Smythe", "james@example.com")]},
        {
            "name": "Friends",
            "addresses": [
                _addr(None, "jane@example.com"),
                _addr("John Sm\u00eeth", "john@example.com"),
            ],
        },
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 5322 Appendix A
        (b"John Doe <jdoe@machine.example>", [_addr("John Doe", "jdoe@machine.example")]),
        (
            b'"Joe Q. Public" <john.q.public@example.com>',
            [_addr("Joe Q. Public", "john.q.public@example.com")],
        ),
        (
            b"Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
            [
                _addr("Mary Smith", "mary@x.test"),
                _addr(None, "jdoe@example.org"),
                _addr("Who?", "one@y.test"),
            ],
        ),
        (
            b'<boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>',
            [_addr(None, "boss@nil.test"), _addr('Giant; "Big" Box', "sysservices@example.net")],
        ),
        (
            b"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
            [_addr("Pete", "pete@silly.test")],  # comments are dropped (§4.1.2.3)
        ),
        (b"Mary Smith <@node.test:mary@example.net>", [_addr("Mary Smith", "mary@example.net")]),
        (b"jdoe@test  . example", [_addr(None, "jdoe@test.example")]),
        (b"Mary Smith\r\n \r\n\t<mary@example.net>", [_addr("Mary Smith", "mary@example.net")]),
        (b"jdoe@example.org (John Doe)", [_addr(None, "jdoe@example.org")]),
        # RFC 2047 §8
        (
            b"=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
            [_addr("Andr\u00e9 Pirard", "PIRARD@vm1.ulg.ac.be")],
        ),
        (b'"=?utf-8?q?foo?= bar" <a@b.c>', [_addr("foo bar", "a@b.c")]),  # quoted: decoded too
        (b'"John\r\n Doe" <a@b.com>', [_addr("John Doe", "a@b.com")]),
        (b'"\\\\S. NIG\\\\" <first.last@host.com>', [_addr("\\S. NIG\\", "first.last@host.com")]),
        (
            "Jos\u00e9 <jos\u00e9@example.com>".encode(),
            [_addr("Jos\u00e9", "jos\u00e9@example.com")],
        ),
        # groups flattened; empty groups give nothing
        (b"Undisclosed recipients:;", []),
        (
            b"A Group:Ed Jones <c@a.test>,joe@where.test;, x@y.z",
            [_addr("Ed Jones", "c@a.test"), _addr(None, "joe@where.test"), _addr(None, "x@y.z")],
        ),
        # malformed input: best effort, nothing invented (§4.1.2.3)
        (b"<>", [_addr(None, "")]),
        (b"Name <unterminated@example.com", [_addr("Name", "unterminated@example.com")]),
        (b"just-a-word", [_addr(None, "just-a-word")]),
        (b"John Smith", [_addr(None, "John Smith")]),
        (b"a@b.example c@d.example", [_addr(None, "a@b.example"), _addr(None, "c@d.example")]),
        (b"a @ b.example", [_addr(None, "a@b.example")]),
        (b"<a@b.com> =?utf-8?q?Doe?=", [_addr("Doe", "a@b.com")]),
        (b", , ,", []),
        (b"", []),
        (b'"unclosed <a@b.c>', [_addr(None, '"unclosed <a@b.c>')]),
    ],
)
def test_addresses_form(value: bytes, expected: list[dict[str, str | None]]) -> None:
    assert jh.addresses_form(value) == expected


def test_grouped_addresses_keep_groups_and_loose_runs() -> None:
    value = b'a@x, G1: b@x, c@x;, d@x, "G 2": ; e@x'
    assert jh.grouped_addresses_form(value) == [
        {"name": None, "addresses": [_addr(None, "a@x")]},
        {"name": "G1", "addresses": [_addr(None, "b@x"), _addr(None, "c@x")]},
        {"name": None, "addresses": [_addr(None, "d@x")]},
        {"name": "G 2", "addresses": []},
        {"name": None, "addresses": [_addr(None, "e@x")]},
    ]
    # a group never closed still holds its mailboxes
    assert jh.grouped_addresses_form(b"G: a@x, b@x") == [
        {"name": "G", "addresses": [_addr(None, "a@x"), _addr(None, "b@x")]}
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b" <1234@local.machine.example>", ["1234@local.machine.example"]),
        (
            b" <1234@local.machine.example>\r\n <3456@example.net>",
            ["1234@local.machine.example", "3456@example.net"],
        ),
        (b" <1234   @   local(blah)  .machine .example>", ["1234@local.machine.example"]),
        (b' Your message of "Mon" <a@b>', ["a@b"]),  # RFC 5322 §4.5.4 obs-in-reply-to
        (b" malformed@id.machine.example ", ["malformed@id.machine.example"]),
        (b" <>", None),
        (b" two words", None),
        (b" <unclosed@x", None),
        (b"", None),
    ],
)
def test_message_ids_form(value: bytes, expected: list[str] | None) -> None:
    assert jh.message_ids_form(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 2369 §3 examples
        (
            b" <mailto:list@host.com?subject=help> (List Instructions)",
            ["mailto:list@host.com?subject=help"],
        ),
        (
            b" (Use this command to join the list)\r\n"
            b"   <mailto:list-manager@host.com?body=subscribe%20list>",
            ["mailto:list-manager@host.com?body=subscribe%20list"],
        ),
        (
            b" <ftp://ftp.host.com/list.txt> (FTP),\r\n    <mailto:list@host.com?subject=help>",
            ["ftp://ftp.host.com/list.txt", "mailto:list@host.com?subject=help"],
        ),
        (
            b" <http://www.host.com/list.cgi?cmd=sub\r\n  &lst=list>",
            ["http://www.host.com/list.cgi?cmd=sub&lst=list"],
        ),
        (b" NO (posting not allowed on this list)", None),
        (b"", None),
    ],
)
def test_urls_form(value: bytes, expected: list[str] | None) -> None:
    assert jh.urls_form(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b" Fri, 21 Nov 1997 09:55:06 -0600", "1997-11-21T09:55:06-06:00"),
        (b" Tue, 1 Jul 2003 10:52:37 +0200", "2003-07-01T10:52:37+02:00"),
        (b" Thu, 13 Feb 1969 23:32:54 -0330", "1969-02-13T23:32:54-03:30"),
        (
            b" Thu,\r\n   13\r\n  Feb\r\n    1969\r\n  23:32\r\n  -0330 (Newfoundland Time)",
            "1969-02-13T23:32:00-03:30",
        ),
        (b" 21 Nov 97 09:55:06 GMT", "1997-11-21T09:55:06Z"),  # obs-year, obs-zone
        (b" 1 Jan 49 00:00:00 +0000", "2049-01-01T00:00:00Z"),
        (b" Sun, 27 Oct 2002 23:57:07 EST", "2002-10-27T23:57:07-05:00"),
        (b" Thu, 10 Jul 1997 14:53:31 A", "1997-07-10T14:53:31Z"),  # military: -0000
        (b" Mon, 01 Jan 2024 00:00:00 -0000", "2024-01-01T00:00:00Z"),
        (b" 31 Dec 2016 23:59:60 +0000", "2016-12-31T23:59:60Z"),  # leap second
        (b" Tue, 1 Jul 2003 ((tricky)\r\n comment) 10:52:37 +0200", "2003-07-01T10:52:37+02:00"),
        # not dates
        (b" 30 Feb 2024 10:00:00 +0000", None),
        (b" 1 Jul 2003 24:00:00 +0000", None),
        (b" 13 zzz 2021 09:55:06 +0200", None),
        (b" 1 Jul 2003 10:52:37 +0260", None),
        (b" some numbers 0 1 2 but invalid", None),
        (b" 2024-01-01T00:00:00Z", None),
        (b"", None),
    ],
)
def test_date_form(value: bytes, expected: str | None) -> None:
    assert jh.date_form(value) == expected


def test_convenience_properties_are_their_header_properties() -> None:
    props = jh.convenience_properties(HEADER)
    assert props["from"] == [_addr("Jos\u00e9", "jose@example.com")]
    assert props["to"] == [
        _addr("Smith, Mary", "mary@example.net"),
        _addr(None, "jdoe@example.org"),
    ]
    assert props["subject"] == "caf\u00e9 au\tlait"
    assert props["messageId"] == ["1234@local.machine.example"]
    assert props["references"] == ["a@x", "b@y"]
    assert props["sentAt"] == "1997-11-21T09:55:06-06:00"
    assert props["inReplyTo"] is None and props["cc"] is None and props["sender"] is None
    for name, prop in jh.CONVENIENCE.items():
        assert props[name] == jh.header_values(HEADER, prop)


@given(st.binary(max_size=300), st.sampled_from(list(HeaderForm)))
def test_every_form_reads_any_octets(value: bytes, form: HeaderForm) -> None:
    """No input makes a form raise; the results have the form's JSON type."""
    result = jh.parse_form(value, form)
    json.dumps(result)
    if form in (HeaderForm.RAW, HeaderForm.TEXT):
        assert isinstance(result, str) and "\x00" not in result
    elif form in (HeaderForm.ADDRESSES, HeaderForm.GROUPED_ADDRESSES):
        assert isinstance(result, list)
    else:
        assert result is None or isinstance(result, (list, str))


# --- the body part model and §4.1.4 -----------------------------------------------------------


def _mp(sub: str, *parts: str, boundary: str) -> str:
    out = f"Content-Type: multipart/{sub}; boundary={boundary}\r\n\r\n"
    for part in parts:
        out += f"--{boundary}\r\n{part}\r\n"
    return out + f"--{boundary}--\r\n"


def _leaf(ctype: str, label: str, disposition: str | None = None, extra: str = "") -> str:
    head = f"Content-Type: {ctype}\r\n"
    if disposition:
        head += f"Content-Disposition: {disposition}\r\n"
    return head + extra + f"\r\n{label}"


def _message(body: str) -> bytes:
    return ("From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + body).encode()


def _labels(raw: bytes, parts: tuple[Any, ...]) -> list[str]:
    """Each part's body text (the tests give each leaf a one-word body)."""
    return [raw[p.part.body_start : p.part.body_end].decode().strip() for p in parts]


def _lists(raw: bytes) -> tuple[list[str], list[str], list[str]]:
    body = EmailBody(parse_message(raw), raw)
    return (
        _labels(raw, body.text_body),
        _labels(raw, body.html_body),
        _labels(raw, body.attachments),
    )


def test_rfc8621_example_structure() -> None:
    """The structure §4.1.4 decomposes, with its stated result."""
    raw = _message(
        _mp(
            "mixed",
            _leaf("text/plain", "A", "inline"),
            _mp(
                "mixed",
                _mp(
                    "alternative",
                    _mp(
                        "mixed",
                        _leaf("text/plain", "B", "inline"),
                        _leaf("image/jpeg", "C", "inline"),
                        _leaf("text/plain", "D", "inline"),
                        boundary="m3",
                    ),
                    _mp(
                        "related", _leaf("text/html", "E"), _leaf("image/jpeg", "F"), boundary="r1"
                    ),
                    boundary="alt",
                ),
                _leaf("image/jpeg", "G", "attachment"),
                _leaf("application/x-excel", "H"),
                _leaf("message/rfc822", "Subject: J\r\n\r\nJ"),
                boundary="m2",
            ),
            _leaf("text/plain", "K", "inline"),
            boundary="m1",
        )
    )
    text, html, attachments = _lists(raw)
    assert text == ["A", "B", "C", "D", "K"]
    assert html == ["A", "E", "K"]
    assert attachments == ["C", "F", "G", "H", "Subject: J\r\n\r\nJ"]


@pytest.mark.parametrize(
    ("body", "text", "html", "attachments"),
    [
        pytest.param(_leaf("text/plain", "T"), ["T"], ["T"], [], id="text only"),
        pytest.param(_leaf("text/html", "H"), ["H"], ["H"], [], id="html only"),
        pytest.param(
            _mp("alternative", _leaf("text/plain", "T"), _leaf("text/html", "H"), boundary="a"),
            ["T"],
            ["H"],
            [],
            id="alternative",
        ),
        pytest.param(
            _mp("alternative", _leaf("text/html", "H"), boundary="a"),
            ["H"],
            ["H"],
            [],
            id="alternative with html alone",
        ),
        pytest.param(
            _mp(
                "related",
                _leaf("text/html", "H"),
                _leaf("image/png", "I", extra="Content-ID: <i@x>\r\n"),
                boundary="r",
            ),
            ["H"],
            ["H"],
            ["I"],
            id="related with cid image",
        ),
        pytest.param(
            _mp(
                "mixed",
                _leaf("text/plain", "T"),
                _leaf("application/pdf", "P", 'attachment; filename="a.pdf"'),
                _leaf("text/plain", "N", extra="", disposition='inline; filename="n.txt"'),
                _leaf("image/png", "I"),
                boundary="m",
            ),
            ["T", "I"],
            ["T", "I"],
            ["P", "N"],
            id="mixed with attachments",
        ),
        pytest.param(
            _mp(
                "mixed",
                _leaf("text/plain", "T"),
                _leaf("message/rfc822", "Subject: inner\r\n\r\ninner"),
                boundary="m",
            ),
            ["T"],
            ["T"],
            ["Subject: inner\r\n\r\ninner"],
            id="nested message/rfc822",
        ),
        pytest.param(
            _mp(
                "mixed",
                _mp(
                    "alternative",
                    _leaf("text/plain", "T"),
                    _mp(
                        "related",
                        _leaf("text/html", "H"),
                        _leaf("image/png", "I", "inline", "Content-ID: <i@x>\r\n"),
                        boundary="r",
                    ),
                    boundary="a",
                ),
                _leaf("application/zip", "Z", "attachment"),
                boundary="m",
            ),
            ["T"],
            ["H"],
            ["I", "Z"],
            id="alternative inside mixed with inline image",
        ),
        pytest.param(
            _mp("mixed", _leaf("text/plain", "T", "attachment"), boundary="m"),
            [],
            [],
            ["T"],
            id="text that says it is an attachment",
        ),
        pytest.param(
            _mp(
                "alternative",
                _leaf("text/plain", "T"),
                _mp("mixed", _leaf("text/html", "H"), _leaf("image/gif", "G"), boundary="m"),
                boundary="a",
            ),
            ["T"],
            ["H", "G"],
            ["G"],
            id="html with inline image in alternative",
        ),
        pytest.param(_mp("mixed", boundary="m"), [], [], [], id="empty multipart"),
    ],
)
def test_body_lists(body: str, text: list[str], html: list[str], attachments: list[str]) -> None:
    raw = _message(body)
    assert _lists(raw) == (text, html, attachments)
    parsed = parse_message(raw)
    whole = EmailBody(parsed, raw)
    for one, found in (
        (jv.text_body, whole.text_body),
        (jv.html_body, whole.html_body),
        (jv.attachments, whole.attachments),
    ):
        assert one(parsed, raw, str) == whole.render_list(found, str)
    assert jv.has_attachment(parsed, raw) is whole.has_attachment


def test_body_structure_properties_and_part_ids() -> None:
    raw = _message(
        _mp(
            "mixed",
            _leaf("text/plain; charset=ISO-8859-1", "T"),
            _leaf(
                'application/octet-stream; name="=?utf-8?Q?r=C3=A9sum=C3=A9?="',
                "QUJD",
                extra="Content-Transfer-Encoding: base64\r\nContent-ID: < x@y >\r\n"
                "Content-Language: en, fr\r\nContent-Location: http://e.x/a\r\n",
            ),
            _leaf("image/png", "I", "attachment; filename*=utf-8''%E2%9C%94.png"),
            _leaf("text/html", "H"),
            boundary="m",
        )
    )
    parsed = parse_message(raw)
    tree = body_structure(parsed, raw, lambda part_id: f"blob-{part_id}")
    assert tree["partId"] is None and tree["blobId"] is None
    assert tree["type"] == "multipart/mixed"
    assert [s["partId"] for s in tree["subParts"]] == ["1", "2", "3", "4"]
    assert tree["subParts"][0] == {
        "partId": "1", "blobId": "blob-1", "size": 1, "name": None, "type": "text/plain",
        "charset": "ISO-8859-1", "disposition": None, "cid": None, "language": None,
        "location": None,
    }  # fmt: skip
    second = tree["subParts"][1]
    assert second["size"] == 3 and second["name"] == "r\u00e9sum\u00e9"
    assert second["charset"] is None and second["cid"] == "x@y"
    assert second["language"] == ["en", "fr"] and second["location"] == "http://e.x/a"
    third = tree["subParts"][2]
    assert third["name"] == "\u2714.png" and third["disposition"] == "attachment"
    assert tree["subParts"][3]["charset"] == "us-ascii"
    # part ids name the same octets as IMAP BODY[part] (decoded)
    for sub in tree["subParts"]:
        section = section_bytes(
            raw, parsed, Section(tuple(int(n) for n in sub["partId"].split(".")))
        )
        if sub["partId"] != "2":
            assert part_octets(parsed, raw, sub["partId"]) == section
    assert part_octets(parsed, raw, "2") == b"ABC"


def test_body_structure_with_chosen_properties() -> None:
    raw = _message(
        _mp("alternative", _leaf("text/plain", "T"), _leaf("text/html", "H"), boundary="a")
    )
    parsed = parse_message(raw)
    props = ["type", "headers", "header:Content-Type:asText", "partId"]
    tree = body_structure(parsed, raw, lambda p: p, props)
    assert list(tree) == [*props, "subParts"]
    assert tree["subParts"][0] == {
        "type": "text/plain",
        "headers": [{"name": "Content-Type", "value": " text/plain"}],
        "header:Content-Type:asText": "text/plain",
        "partId": "1",
    }
    assert tree["headers"][0] == {"name": "From", "value": " a@example.org"}


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("partId", True), ("subParts", True), ("headers", True), ("header:Content-Type", True),
        ("header:X-A:asURLs:all", True), ("header:From:asDate", False), ("bodyValues", False),
        ("id", False),
    ],
)  # fmt: skip
def test_body_property_valid(name: str, valid: bool) -> None:
    assert jv.body_property_valid(name) is valid


def test_single_part_message_is_part_one() -> None:
    raw = b"Subject: x\r\n\r\nhello\r\n"
    parsed = parse_message(raw)
    tree = body_structure(parsed, raw, lambda p: p)
    assert tree["partId"] == "1" and tree["type"] == "text/plain" and tree["size"] == 7
    assert tree["charset"] == "us-ascii"
    assert part_octets(parsed, raw, "1") == b"hello\r\n"
    assert body_values(parsed, raw, ["1"]) == {
        "1": {"value": "hello\n", "isEncodingProblem": False, "isTruncated": False}
    }


@pytest.mark.parametrize("part_id", ["0", "3", "1.1", "", "a", "01", "1.", "2.1", "-1"])
def test_part_octets_of_no_leaf(part_id: str) -> None:
    raw = _message(
        _mp(
            "mixed",
            _leaf("text/plain", "T"),
            _leaf("message/rfc822", "Subject: i\r\n\r\nI"),
            boundary="m",
        )
    )
    assert part_octets(parse_message(raw), raw, part_id) is None


def test_attached_message_is_one_leaf() -> None:
    raw = _message(_mp("mixed", _leaf("message/rfc822", "Subject: i\r\n\r\nI"), boundary="m"))
    parsed = parse_message(raw)
    tree = body_structure(parsed, raw, lambda p: p)
    assert tree["subParts"][0]["partId"] == "1" and "subParts" not in tree["subParts"][0]
    assert part_octets(parsed, raw, "1") == b"Subject: i\r\n\r\nI"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_leaf("application/pdf", "P", "attachment"), True),
        (
            _mp("mixed", _leaf("text/plain", "T"), _leaf("image/png", "I", "inline"), boundary="m"),
            False,
        ),
        (
            _mp(
                "related",
                _leaf("text/html", "H"),
                _leaf("image/png", "I", extra="Content-ID: <i@x>\r\n"),
                boundary="r",
            ),
            False,
        ),
        (_mp("related", _leaf("text/html", "H"), _leaf("image/png", "I"), boundary="r"), True),
        (_leaf("text/plain", "T"), False),
    ],
)
def test_has_attachment(body: str, expected: bool) -> None:
    raw = _message(body)
    assert EmailBody(parse_message(raw), raw).has_attachment is expected


_LEAF_TYPES = st.sampled_from(
    ["text/plain", "text/html", "image/png", "audio/ogg", "video/mp4", "application/pdf",
     "message/rfc822", "text/calendar"]
)  # fmt: skip
_SUBTYPES = st.sampled_from(["mixed", "alternative", "related", "parallel", "digest"])
_DISPOSITIONS = st.sampled_from([None, "inline", "attachment", 'attachment; filename="f"',
                                 'inline; filename="f"'])  # fmt: skip


def _trees(depth: int = 3) -> st.SearchStrategy[Any]:
    leaf = st.tuples(_LEAF_TYPES, _DISPOSITIONS)
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.tuples(_SUBTYPES, st.lists(_trees(depth - 1), max_size=4)))


def _render_tree(tree: Any, counter: list[int]) -> str:
    kind, rest = tree
    if isinstance(rest, list):
        counter[0] += 1
        boundary = f"b{counter[0]}"
        return _mp(kind, *(_render_tree(t, counter) for t in rest), boundary=boundary)
    counter[0] += 1
    body = "Subject: inner\r\n\r\nx" if kind == "message/rfc822" else f"leaf{counter[0]}"
    return _leaf(kind, body, rest)


@given(_trees())
def test_body_lists_of_any_structure(tree: Any) -> None:
    """On any structure, the lists hold leaves only, each at most once, in depth-first
    order; bodies hold only displayable types; a leaf in neither body list is an
    attachment (RFC 8621 §4.1.4)."""
    raw = _message(_render_tree(tree, [0]))
    body = EmailBody(parse_message(raw), raw)
    order = {id(leaf): i for i, leaf in enumerate(body.root.leaves())}
    for found in (body.text_body, body.html_body, body.attachments):
        positions = [order[id(p)] for p in found]
        assert positions == sorted(set(positions))
    for part in (*body.text_body, *body.html_body):
        assert part.type in ("text/plain", "text/html") or part.type.split("/")[0] in (
            "image", "audio", "video",
        )  # fmt: skip
    in_body = {id(p) for p in (*body.text_body, *body.html_body)}
    attached = {id(p) for p in body.attachments}
    for leaf in body.root.leaves():
        if leaf.disposition == "attachment":
            assert id(leaf) in attached and id(leaf) not in in_body
    _check_views(raw)


# --- body values -------------------------------------------------------------------------------


def _value(ctype: str, body: bytes, cte: str | None = None, max_bytes: int = 0) -> dict[str, Any]:
    head = f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n"
    if cte:
        head += f"Content-Transfer-Encoding: {cte}\r\n"
    raw = head.encode() + b"\r\n" + body
    return body_values(parse_message(raw), raw, ["1"], max_bytes)["1"]


def test_body_value_charsets_and_encodings() -> None:
    assert _value("text/plain; charset=iso-8859-1", b"caf\xe9\r\nx")["value"] == "caf\u00e9\nx"
    assert _value("text/plain; charset=utf-8", b"caf=C3=A9=\r\nau", "quoted-printable") == {
        "value": "caf\u00e9au", "isEncodingProblem": False, "isTruncated": False,
    }  # fmt: skip
    assert _value("text/plain; charset=utf-8", b"Y2Fmw6k=", "base64")["value"] == "caf\u00e9"
    assert _value("text/plain; charset=windows-1252", b"\x93q\x94")["value"] == "\u201cq\u201d"
    assert _value("text/plain; charset=gb2312", "\u4e2d".encode("gb2312"))["value"] == "\u4e2d"
    assert _value("text/plain; charset=UTF-16", "h\u00e9".encode("utf-16"))["value"] == "h\u00e9"
    assert _value("text/plain; charset=utf-16le", b"h\x00i")["isEncodingProblem"] is True
    # undeclared 8-bit text is read as UTF-8
    assert _value("text/plain", "caf\u00e9".encode())["isEncodingProblem"] is False
    # malformed octets and unknown charsets are flagged
    bad = _value("text/plain; charset=utf-8", b"caf\xe9")
    assert bad == {"value": "caf\ufffd", "isEncodingProblem": True, "isTruncated": False}
    assert _value("text/plain; charset=x-unknown", b"abc") == {
        "value": "abc", "isEncodingProblem": True, "isTruncated": False,
    }  # fmt: skip
    assert _value("text/plain; charset=base64", b"abc")["isEncodingProblem"] is True


def test_body_value_truncation() -> None:
    text = "a\u00e9\u2714b"  # 1 + 2 + 3 + 1 octets
    body = text.encode()
    cuts = {n: _value("text/plain; charset=utf-8", body, max_bytes=n) for n in range(1, 9)}
    assert [cuts[n]["value"] for n in range(1, 9)] == [
        "a", "a", "a\u00e9", "a\u00e9", "a\u00e9", "a\u00e9\u2714", text, text,
    ]  # fmt: skip
    assert [cuts[n]["isTruncated"] for n in range(1, 9)] == [True] * 6 + [False] * 2
    # not inside an HTML tag (§4.2 maxBodyValueBytes)
    html = _value("text/html", b'<p>hi <a href="https://example.com">x</a>', max_bytes=20)
    assert html == {"value": "<p>hi ", "isEncodingProblem": False, "isTruncated": True}
    assert truncate_utf8("abc", 0) == ("abc", False)


def test_body_values_only_for_text_parts() -> None:
    raw = _message(_mp("mixed", _leaf("text/plain", "T"), _leaf("image/png", "I"), boundary="m"))
    values = body_values(parse_message(raw), raw, ["1", "2", "9", "1"])
    assert list(values) == ["1"]


def test_preview_and_header_properties_of_a_message() -> None:
    raw = _message(_leaf("text/plain", "Hello   there"))
    parsed = parse_message(raw)
    assert preview(parsed, raw) == "Hello there"
    props = email_header_properties(
        raw, parsed.root.headers, ["subject", "from", "header:X-No", "id"]
    )
    assert props == {
        "subject": "s",
        "from": [_addr(None, "a@example.org")],
        "header:X-No": None,
    }


# --- the corpus --------------------------------------------------------------------------------

CORPUS = SHARED / "corpus"


def _corpus_module() -> ModuleType:
    """The corpus lists and mail-parser helpers of test_mime_corpus.py, not re-written."""
    spec = importlib.util.spec_from_file_location(
        "mime_corpus_lists", Path(__file__).with_name("test_mime_corpus.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CORPUS = _corpus_module() if CORPUS.is_dir() else None
_FILES: list[Path] = (_CORPUS.MIME_FILES + _CORPUS.BULK_FILES) if _CORPUS is not None else []


def _check_views(raw: bytes) -> None:
    parsed = parse_message(raw)
    body = EmailBody(parsed, raw)
    properties = [*jh.CONVENIENCE, "partId", "size", "headers", "name", "cid", "type"]
    tree = body.render(body.root, lambda p: p, properties)
    json.dumps(tree)
    # the stored form answers the same: no re-parse is needed
    from_store = EmailBody(stored.decode(stored.encode(parsed)), raw)
    assert from_store.render(from_store.root, lambda p: p, properties) == tree
    leaves = list(body.root.leaves())
    ids = [leaf.part_id for leaf in leaves]
    assert len(set(ids)) == len(ids)
    for leaf in leaves:
        assert leaf.part_id is not None
        octets = part_octets(parsed, raw, leaf.part_id)
        assert octets is not None and body.size(leaf) == len(octets)
        if leaf.part.encoding not in ("base64", "quoted-printable"):
            # a partId is the IMAP part number of the same octets
            path = tuple(int(n) for n in leaf.part_id.split("."))
            assert section_bytes(raw, parsed, Section(path)) == octets
    for part in (*body.text_body, *body.html_body, *body.attachments):
        assert part.sub_parts is None
    values = body.body_values([p.part_id or "" for p in (*body.text_body, *body.html_body)], 1000)
    for value in values.values():
        assert len(value["value"].encode("utf-8", "surrogatepass")) <= 1000
    names = [*jh.CONVENIENCE, "headers", "header:Received:all", "header:X-Mailer:asText"]
    props = email_header_properties(raw, parsed.root.headers, names)
    json.dumps(props)
    # from the stored top headers and the header octets alone, as Email/get may read them
    store = stored.StoredStructure(stored.encode(parsed))
    assert email_header_properties(raw[: store.header_end], store.top_headers, names) == props
    preview(parsed, raw)


@pytest.mark.skipif(_CORPUS is None, reason="shared corpus not present")
@pytest.mark.parametrize("path", _FILES, ids=[str(p.relative_to(CORPUS)) for p in _FILES])
def test_corpus_message_views(path: Path) -> None:
    """Every corpus message gives JSON views; part ids are unique, resolve, and sizes are
    the decoded octets'."""
    raw = path.read_bytes()
    if raw.startswith(b"From "):
        raw = raw[raw.find(b"\n") + 1 :]
    _check_views(raw)


# mail-parser (Stalwart) computes textBody/htmlBody/attachments for its test messages; where
# its part tree is ours (test_mime_corpus.py), the lists must agree, except where it departs
# from the §4.1.4 algorithm on purpose.
_INLINE_MEDIA = (
    "mail-parser also lists inline image/audio/video parts as attachments when they are in "
    "both textBody and htmlBody; §4.1.4 adds them only when one of the lists is closed"
)
_STALWART_LIST_DIFFERENCES = {
    "rfc/000.eml": _INLINE_MEDIA,
    "thirdparty/013.eml": _INLINE_MEDIA,
    "thirdparty/002.eml": (
        "mail-parser makes a text/plain part whose base64 does not decode an attachment; "
        "§4.1.4 looks only at type, disposition and name, so it is body text"
    ),
    "malformed/003.eml": (
        "an inner multipart with the outer one's boundary: mail-parser lists its text part as "
        "an attachment, §4.1.4 as the body (the first part of a mixed)"
    ),
    "malformed/006.eml": (
        "an inner multipart with the outer one's boundary: mail-parser lists its text part as "
        "an attachment, §4.1.4 as the body (the first part of a mixed)"
    ),
}


def _stalwart_list_params() -> list[Any]:
    if _CORPUS is None:
        return []
    params = []
    for eml, expected, crlf in _CORPUS.STALWART_CASES:
        name = str(eml.relative_to(_CORPUS.STALWART))
        if crlf or name in _CORPUS.STALWART_DIFFERENCES:
            continue
        marks = []
        if name in _STALWART_LIST_DIFFERENCES:
            marks.append(pytest.mark.xfail(reason=_STALWART_LIST_DIFFERENCES[name], strict=True))
        params.append(pytest.param(eml, expected, id=name, marks=marks))
    return params


@pytest.mark.parametrize(("eml", "expected"), _stalwart_list_params())
def test_body_lists_agree_with_mail_parser(eml: Path, expected: Path) -> None:
    assert _CORPUS is not None
    raw = _CORPUS._as_mail_parser_read(eml, False)
    theirs = json.loads(expected.read_bytes())
    parts = theirs["parts"]
    body = EmailBody(parse_message(raw), raw)

    def ours(found: tuple[Any, ...]) -> list[tuple[int, int]]:
        return [(p.part.header_start, p.part.body_start) for p in found]

    def mail_parser(indexes: list[int]) -> list[tuple[int, int]]:
        return [(parts[i]["offset_header"], parts[i]["offset_body"]) for i in indexes]

    assert ours(body.text_body) == mail_parser(theirs["text_body"])
    assert ours(body.html_body) == mail_parser(theirs["html_body"])
    assert ours(body.attachments) == mail_parser(theirs["attachments"])


def test_stalwart_list_differences_name_cases() -> None:
    if _CORPUS is None:
        pytest.skip("shared corpus not present")
    names = {str(e.relative_to(_CORPUS.STALWART)) for e, _, _ in _CORPUS.STALWART_CASES}
    assert set(_STALWART_LIST_DIFFERENCES) <= names
