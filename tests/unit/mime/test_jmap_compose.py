"""Messages composed from JMAP Email/set create properties (RFC 8621 §4.6): the §4.6 rules,
the MIME layout, the wire form, and round trips through the parser and the JMAP views."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstead.mime import jmap_headers as jh
from mailstead.mime.jmap_compose import ComposeError, compose, rfc5322_date
from mailstead.mime.jmap_views import EmailBody, email_header_properties, part_octets
from mailstead.mime.parse import parse_message

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
BLOBS = {"png": b"\x89PNG\r\n\x1a\n\x00\x01binary", "pdf": b"%PDF-1.4\n" * 40}


def _compose(email: dict[str, Any], blobs: dict[str, bytes] | None = None) -> bytes:
    found = BLOBS if blobs is None else blobs
    return compose(email, found.get, now=NOW, message_id_domain="mail.example")


def _read(raw: bytes) -> tuple[dict[str, Any], EmailBody]:
    parsed = parse_message(raw)
    names = [*jh.CONVENIENCE, "headers"]
    return email_header_properties(raw, parsed.root.headers, names), EmailBody(parsed, raw)


def _error(email: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ComposeError) as caught:
        _compose(email)
    return caught.value.set_error()


TEXT: dict[str, Any] = {"textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "hi"}}}


def _match(pattern: bytes, raw: bytes) -> bytes:
    found = re.search(pattern, raw)
    assert found is not None
    return found.group()


# --- the wire form ----------------------------------------------------------------------------


def test_minimal_message() -> None:
    raw = _compose(TEXT)
    assert raw == (
        b"Date: Mon, 06 May 2024 07:08:09 +0000\r\n"
        + _match(rb"Message-ID: <[0-9a-f]{32}@mail\.example>\r\n", raw)
        + b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n"
        b"\r\n"
        b"hi"
    )


def test_date_and_message_id_kept_when_given() -> None:
    props, _ = _read(
        _compose({**TEXT, "sentAt": "2020-01-02T03:04:05-08:00", "messageId": ["a@b"]})
    )
    assert props["sentAt"] == "2020-01-02T03:04:05-08:00"
    assert props["messageId"] == ["a@b"]


def test_lines_and_folding() -> None:
    email = {
        **TEXT,
        "to": [{"name": f"Person {i}", "email": f"person{i}@example.com"} for i in range(20)],
        "subject": "word " * 40 + "end",
        "references": [f"id{i}@example.com" for i in range(20)],
    }
    raw = _compose(email)
    header = raw[: raw.index(b"\r\n\r\n") + 2]
    assert b"\n" not in header.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    props, _ = _read(raw)
    assert props["subject"] == email["subject"]
    assert props["references"] == email["references"]
    assert [a["email"] for a in props["to"]] == [a["email"] for a in email["to"]]


def test_non_ascii_headers_are_encoded() -> None:
    raw = _compose(
        {
            **TEXT,
            "from": [{"name": 'Jos\u00e9 "Pepe" P\u00e9rez', "email": "jose@example.com"}],
            "subject": "caf\u00e9 =?not?q?encoded?=",
            "header:X-Note:asText": "  leading",
        }
    )
    header = raw[: raw.index(b"\r\n\r\n")]
    assert header.isascii()
    assert b"=?UTF-8?B?" in header
    props, _ = _read(raw)
    assert props["from"] == [{"name": 'Jos\u00e9 "Pepe" P\u00e9rez', "email": "jose@example.com"}]
    assert props["subject"] == "caf\u00e9 =?not?q?encoded?="
    parsed = parse_message(raw)
    assert email_header_properties(raw, parsed.root.headers, ["header:X-Note:asText"]) == {
        "header:X-Note:asText": "  leading"
    }


def test_display_names_are_quoted_when_needed() -> None:
    raw = _compose(
        {
            **TEXT,
            "to": [
                {"name": "Plain Name", "email": "a@x.test"},
                {"name": "Smith, John Q.", "email": "b@x.test"},
                {"name": 'Say "hi" \\ bye', "email": "c@x.test"},
                {"name": "", "email": "d@x.test"},
                {"name": None, "email": "odd address"},
            ],
        }
    )
    unfolded = raw.replace(b"\r\n ", b" ")
    assert b'To: Plain Name <a@x.test>, "Smith, John Q." <b@x.test>,' in unfolded
    assert b'"Say \\"hi\\" \\\\ bye" <c@x.test>' in unfolded
    props, _ = _read(raw)
    assert props["to"] == [
        {"name": "Plain Name", "email": "a@x.test"},
        {"name": "Smith, John Q.", "email": "b@x.test"},
        {"name": 'Say "hi" \\ bye', "email": "c@x.test"},
        {"name": None, "email": "d@x.test"},
        {"name": None, "email": "oddaddress"},  # no valid address: angle form, CFWS gone
    ]


def test_header_forms_written_back() -> None:
    email = {
        **TEXT,
        "header:X-Raw": " kept  as\r\n is",
        "header:List-Post:asURLs": ["mailto:list@example.com", "https://example.com/p"],
        "header:Resent-To:asGroupedAddresses": [
            {"name": "Team", "addresses": [{"name": "A", "email": "a@x"}]},
            {"name": None, "addresses": [{"name": None, "email": "b@x"}]},
            {"name": "Nobody", "addresses": []},
        ],
        "header:Resent-Date:asDate:all": ["2021-01-01T00:00:00Z", "2021-01-02T00:00:00+05:30"],
        "header:X-Ids:asMessageIds": ["x@y", "z@w"],
    }
    raw = _compose(email)
    assert b"X-Raw: kept  as\r\n is\r\n" in raw
    parsed = parse_message(raw)
    props = email_header_properties(
        raw, parsed.root.headers, [k for k in email if k.startswith("header:")]
    )
    assert props == {k: v for k, v in email.items() if k.startswith("header:")}


def test_body_from_the_lists() -> None:
    email: dict[str, Any] = {
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        "attachments": [
            {"blobId": "png", "type": "image/png", "cid": "logo@x", "disposition": "inline"},
            {
                "blobId": "pdf",
                "type": "application/pdf",
                "name": "r\u00e9sum\u00e9 " + "long " * 20 + ".pdf",
                "disposition": "attachment",
            },
            {"blobId": "png", "type": "image/png", "name": "plain.png"},
        ],
        "bodyValues": {"t": {"value": "text"}, "h": {"value": '<img src="cid:logo@x">'}},
    }
    raw = _compose(email)
    _, body = _read(raw)
    tree = body.render(body.root, lambda p: p, ["partId", "type", "name", "cid", "disposition"])
    assert tree["type"] == "multipart/mixed"
    alternative, pdf, png = tree["subParts"]
    assert alternative["type"] == "multipart/alternative"
    text, related = alternative["subParts"]
    assert text == {"partId": "1.1", "type": "text/plain", "name": None, "cid": None,
                    "disposition": None}  # fmt: skip
    assert [p["type"] for p in related["subParts"]] == ["text/html", "image/png"]
    assert related["subParts"][1]["cid"] == "logo@x"
    assert pdf["name"] == email["attachments"][1]["name"]  # RFC 2231 continuations
    assert png["name"] == "plain.png" and png["disposition"] == "attachment"
    assert [p.part_id for p in body.text_body] == ["1.1"]
    assert [p.part_id for p in body.html_body] == ["1.2.1"]
    assert [p.part_id for p in body.attachments] == ["1.2.2", "2", "3"]
    parsed = parse_message(raw)
    assert part_octets(parsed, raw, "1.2.2") == BLOBS["png"]
    assert part_octets(parsed, raw, "2") == BLOBS["pdf"]


@pytest.mark.parametrize(
    ("lists", "root", "leaves"),
    [
        ({"textBody": [{"partId": "t"}]}, "text/plain", ["text/plain"]),
        ({"htmlBody": [{"partId": "h"}]}, "text/html", ["text/html"]),
        ({}, "text/plain", ["text/plain"]),
        (
            {"htmlBody": [{"partId": "h"}], "attachments": [{"blobId": "png", "cid": "c@x"}]},
            "multipart/related",
            ["text/html", "application/octet-stream"],
        ),
        (
            {"textBody": [{"partId": "t"}], "attachments": [{"blobId": "png", "cid": "c@x"}]},
            "multipart/mixed",  # no HTML to relate an inline part to
            ["text/plain", "application/octet-stream"],
        ),
        (
            {"attachments": [{"blobId": "png", "type": "image/png"}]},
            "multipart/mixed",
            ["image/png"],
        ),
    ],
)
def test_layouts(lists: dict[str, Any], root: str, leaves: list[str]) -> None:
    raw = _compose({**lists, "bodyValues": {"t": {"value": "t"}, "h": {"value": "<p>h</p>"}}})
    _, body = _read(raw)
    assert body.root.type == root
    assert [leaf.type for leaf in body.root.leaves()] == leaves


def test_body_structure_given() -> None:
    structure = {
        "type": "multipart/mixed",
        "header:X-Part": " on the root part",
        "subParts": [
            {"partId": "a", "type": "text/plain", "language": ["en", "fr"]},
            {
                "type": "multipart/alternative",
                "subParts": [
                    {"partId": "b", "type": "text/plain"},
                    {"partId": "c", "type": "text/html", "location": "https://e.x/c"},
                ],
            },
            {"blobId": "pdf", "type": "application/pdf", "charset": "us-ascii", "size": 3},
            {"blobId": "msg", "type": "message/rfc822"},
        ],
    }
    inner = "Subject: caf\u00e9\r\n\r\n8-bit body \u00e9\r\n".encode()
    raw = _compose(
        {
            "bodyStructure": structure,
            "bodyValues": {k: {"value": k * 3} for k in "abc"},
        },
        {**BLOBS, "msg": inner},
    )
    parsed = parse_message(raw)
    _, body = _read(raw)
    tree = body.render(
        body.root, lambda p: p, ["partId", "type", "language", "location", "charset"]
    )
    assert [s["type"] for s in tree["subParts"]] == [
        "text/plain", "multipart/alternative", "application/pdf", "message/rfc822",
    ]  # fmt: skip
    assert tree["subParts"][0]["language"] == ["en", "fr"]
    assert tree["subParts"][1]["subParts"][1]["location"] == "https://e.x/c"
    assert tree["subParts"][2]["charset"] == "us-ascii"
    assert body.body_values(["1", "2.1", "2.2"]) == {
        pid: {"value": v, "isEncodingProblem": False, "isTruncated": False}
        for pid, v in (("1", "aaa"), ("2.1", "bbb"), ("2.2", "ccc"))
    }
    # RFC 2046 §5.2.1: an attached message is not base64 encoded
    assert b"Content-Transfer-Encoding: 8bit" in raw
    lf_only = _compose(
        {**TEXT, "attachments": [{"blobId": "m", "type": "message/rfc822"}]},
        {"m": b"Subject: x\n\nbare line ends\n"},
    )
    assert b"Content-Transfer-Encoding: binary" in lf_only
    assert part_octets(parsed, raw, "4") == inner
    assert email_header_properties(raw, parsed.root.headers, ["header:X-Part"]) == {
        "header:X-Part": " on the root part"
    }


def test_text_encodings() -> None:
    long_line = "x" * 200
    email: dict[str, Any] = {
        "textBody": [{"partId": "t"}],
        "bodyValues": {"t": {"value": f"short\n{long_line}\ntrailing space \nend=\u00e9"}},
    }
    raw = _compose(email)
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    assert all(len(line) <= 76 for line in raw[raw.index(b"\r\n\r\n") + 4 :].split(b"\r\n"))
    _, body = _read(raw)
    assert body.body_values(["1"])["1"]["value"] == email["bodyValues"]["t"]["value"]


# --- §4.6 rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "properties"),
    [
        ({**TEXT, "headers": []}, ["headers"]),
        ({**TEXT, "from": [], "header:FROM:asAddresses": []}, ["from", "header:FROM:asAddresses"]),
        (
            {**TEXT, "header:Subject": "a", "header:subject:asText": "b"},
            ["header:Subject", "header:subject:asText"],
        ),
        ({**TEXT, "header:From:asDate": "2020-01-01T00:00:00Z"}, ["header:From:asDate"]),
        ({**TEXT, "header:Content-Type": "text/plain"}, ["header:Content-Type"]),
        ({**TEXT, "bodyStructure": {"partId": "t"}}, ["bodyStructure"]),
        (
            {"textBody": [{"partId": "t"}, {"partId": "t"}], "bodyValues": TEXT["bodyValues"]},
            ["textBody"],
        ),
        (
            {"textBody": [{"partId": "t", "type": "text/html"}], "bodyValues": TEXT["bodyValues"]},
            ["textBody/0/type"],
        ),
        (
            {"htmlBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": TEXT["bodyValues"]},
            ["htmlBody/0/type"],
        ),
        (
            {"textBody": [{"partId": "t", "blobId": "png"}], "bodyValues": TEXT["bodyValues"]},
            ["textBody/0/partId"],
        ),
        ({"textBody": [{}]}, ["textBody/0/partId"]),
        (
            {"textBody": [{"partId": "nope"}], "bodyValues": TEXT["bodyValues"]},
            ["textBody/0/partId"],
        ),
        (
            {"textBody": [{"partId": "t", "charset": "utf-8"}], "bodyValues": TEXT["bodyValues"]},
            ["textBody/0/charset"],
        ),
        (
            {"textBody": [{"partId": "t", "size": 2}], "bodyValues": TEXT["bodyValues"]},
            ["textBody/0/size"],
        ),
        (
            {"textBody": [{"partId": "t", "headers": []}], "bodyValues": TEXT["bodyValues"]},
            ["textBody/0/headers"],
        ),
        (
            {
                "textBody": [{"partId": "t", "header:Content-Transfer-Encoding": "base64"}],
                "bodyValues": TEXT["bodyValues"],
            },
            ["textBody/0/header:Content-Transfer-Encoding"],
        ),
        (
            {**TEXT, "bodyValues": {"t": {"value": "hi", "isTruncated": True}}},
            ["bodyValues/t/isTruncated"],
        ),
        (
            {**TEXT, "bodyValues": {"t": {"value": "hi", "isEncodingProblem": True}}},
            ["bodyValues/t/isEncodingProblem"],
        ),
        (
            {
                "subject": "s",
                "bodyStructure": {"partId": "t", "header:Subject": "x"},
                "bodyValues": TEXT["bodyValues"],
            },
            ["subject", "bodyStructure/header:Subject"],
        ),
        (
            {
                "textBody": [{"partId": "t", "header:Content-Type": "text/x"}],
                "bodyValues": TEXT["bodyValues"],
            },
            ["textBody/0/header:Content-Type", "textBody/0/type"],
        ),
        ({**TEXT, "sentAt": "yesterday"}, ["sentAt"]),
        ({**TEXT, "to": [{"name": "x"}]}, ["to/0"]),
        ({**TEXT, "messageId": ["has space@x"]}, ["messageId"]),
        ({**TEXT, "header:X-Raw": "line\nnot folded"}, ["header:X-Raw"]),
        ({**TEXT, "header:X-A:all": "not a list"}, ["header:X-A:all"]),
        (
            {
                "textBody": [{"partId": "t", "type": "text/plain; format=flowed"}],
                "bodyValues": TEXT["bodyValues"],
            },
            ["textBody/0/type"],
        ),
    ],
)
def test_invalid_properties(email: dict[str, Any], properties: list[str]) -> None:
    error = _error(email)
    assert error["type"] == "invalidProperties"
    assert error["properties"] == properties


def test_blob_not_found_names_every_missing_blob() -> None:
    error = _error(
        {
            **TEXT,
            "attachments": [
                {"blobId": "gone1"},
                {"blobId": "png"},
                {"blobId": "gone2"},
                {"blobId": "gone1"},
            ],
        }
    )
    assert error == {"type": "blobNotFound", "notFound": ["gone1", "gone2"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", "Tue, 02 Jan 2024 03:04:05 +0000"),
        ("2024-01-02T03:04:05.123+05:30", "Tue, 02 Jan 2024 03:04:05 +0530"),
        ("2024-01-02t03:04:05z", "Tue, 02 Jan 2024 03:04:05 +0000"),
        ("2024-02-30T00:00:00Z", None),
        ("2024-01-02 03:04:05Z", None),
        ("2024-01-02T03:04:05", None),
    ],
)
def test_rfc5322_date(value: str, expected: str | None) -> None:
    assert rfc5322_date(value) == expected


# --- round trips ------------------------------------------------------------------------------

# Text a client may set: no surrogates and no control characters (encoded controls are
# dropped on reading, RFC 8621 §4.1.2.2), non-ASCII and specials of every kind welcome.
_TEXT_CHARS = st.characters(blacklist_categories=["Cs", "Cc"])
_NAMES = st.one_of(
    st.none(),
    st.text(_TEXT_CHARS, max_size=40),
    st.text(st.sampled_from(list('ab "\\,;:<>()@.=?\u00e9\u4e2d\U0001f600')), max_size=20),
)
_EMAILS = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}@[a-z0-9-]{1,10}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.from_regex(r"[a-z\u00e9\u4e2d]{1,8}@[a-z\u00e9]{1,8}\.[a-z]{2,4}", fullmatch=True),
)
_ADDRESSES = st.lists(st.fixed_dictionaries({"name": _NAMES, "email": _EMAILS}), max_size=5)
_IDS = st.lists(
    st.from_regex(r"[A-Za-z0-9.$%_-]{1,30}@[a-z0-9.-]{1,20}", fullmatch=True),
    min_size=1,
    max_size=4,
)
_BODY_CHARS = st.characters(blacklist_categories=["Cs"], blacklist_characters="\r")
_BODIES = st.one_of(
    st.text(_BODY_CHARS, max_size=400),
    st.lists(st.text(st.sampled_from("ab \u00e9=\t"), min_size=60, max_size=200), max_size=4).map(
        "\n".join
    ),
)
_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)
_DATES = st.builds(
    lambda when, minutes: when.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.replace(microsecond=0)
    ),
    _OFFSETS,
)


def _jmap_date(when: datetime) -> str:
    offset = when.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if minutes == 0:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    return text + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _read_address(address: dict[str, Any]) -> dict[str, Any]:
    """What a reader gives back for an address a client set: the name trimmed and in NFC,
    an empty one null (RFC 8621 §4.1.2.3)."""
    name = address["name"]
    if name is not None:
        name = unicodedata.normalize("NFC", name.strip(" \t")) or None
    return {"name": name, "email": address["email"]}


@settings(max_examples=150, deadline=None)
@given(
    from_=_ADDRESSES,
    to=_ADDRESSES,
    cc=_ADDRESSES,
    reply_to=_ADDRESSES,
    subject=st.one_of(
        st.text(_TEXT_CHARS, max_size=120),
        st.text(st.sampled_from(list(" \tab=?_\u00e9")), max_size=90),
    ),
    sent_at=_DATES,
    message_id=_IDS,
    references=_IDS,
    text=_BODIES,
    html=st.one_of(st.none(), _BODIES),
)
def test_round_trip(
    from_: list[dict[str, Any]],
    to: list[dict[str, Any]],
    cc: list[dict[str, Any]],
    reply_to: list[dict[str, Any]],
    subject: str,
    sent_at: datetime,
    message_id: list[str],
    references: list[str],
    text: str,
    html: str | None,
) -> None:
    """Parsing a composed message gives back the convenience properties and body values."""
    email: dict[str, Any] = {
        "from": from_,
        "to": to,
        "cc": cc,
        "replyTo": reply_to,
        "subject": subject,
        "sentAt": _jmap_date(sent_at),
        "messageId": message_id,
        "references": references,
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "bodyValues": {"t": {"value": text}, "h": {"value": html or ""}},
    }
    if html is not None:
        email["htmlBody"] = [{"partId": "h", "type": "text/html"}]
    raw = _compose(email)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    header = raw[: raw.index(b"\r\n\r\n")]
    assert all(len(line) <= 78 for line in header.split(b"\r\n") if line.isascii())
    props, body = _read(raw)
    for key in ("from", "to", "cc", "replyTo"):
        assert props[key] == [_read_address(a) for a in email[key]], key
    assert props["subject"] == unicodedata.normalize("NFC", subject)
    assert props["sentAt"] == email["sentAt"]
    assert props["messageId"] == message_id
    assert props["references"] == references
    assert props["inReplyTo"] is None and props["bcc"] is None
    text_ids = [p.part_id or "" for p in body.text_body]
    html_ids = [p.part_id or "" for p in body.html_body]
    values = body.body_values([*text_ids, *html_ids])
    assert [values[i]["value"] for i in text_ids] == [text]
    assert [values[i]["value"] for i in html_ids] == [text if html is None else html]
    assert not any(v["isEncodingProblem"] for v in values.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_blobs_round_trip(blobs: list[bytes]) -> None:
    """Attachments come back octet for octet, with their decoded size."""
    found = {f"b{i}": data for i, data in enumerate(blobs)}
    email = {**TEXT, "attachments": [{"blobId": k, "type": "application/x-test"} for k in found]}
    raw = _compose(email, found)
    parsed = parse_message(raw)
    _, body = _read(raw)
    assert len(body.attachments) == len(blobs)
    for part, data in zip(body.attachments, blobs, strict=True):
        assert part.part_id is not None
        assert part_octets(parsed, raw, part.part_id) == data
        assert body.size(part) == len(data)


_GROUPS = st.lists(
    st.fixed_dictionaries({"name": _NAMES, "addresses": _ADDRESSES}),
    max_size=4,
)


def _read_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a reader gives back for groups a client set (RFC 8621 §4.1.2.4): names as for
    addresses, mailboxes outside any group (null name) run together, none empty."""
    out: list[dict[str, Any]] = []
    for group in groups:
        # a blank group name reads as null, but the group stays a group of its own
        name = _read_address({"name": group["name"], "email": ""})["name"]
        members = [_read_address(a) for a in group["addresses"]]
        if group["name"] is None:
            if not members:
                continue
            if out and out[-1]["name"] is None and out[-1].get("loose"):
                out[-1]["addresses"] += members
                continue
            out.append({"name": None, "addresses": members, "loose": True})
        else:
            out.append({"name": name, "addresses": members})
    return [{"name": g["name"], "addresses": g["addresses"]} for g in out]


@settings(max_examples=150, deadline=None)
@given(_GROUPS)
def test_grouped_addresses_round_trip(groups: list[dict[str, Any]]) -> None:
    email = {**TEXT, "header:X-Group:asGroupedAddresses": groups}
    raw = _compose(email)
    parsed = parse_message(raw)
    props = email_header_properties(raw, parsed.root.headers, ["header:X-Group:asGroupedAddresses"])
    assert props["header:X-Group:asGroupedAddresses"] == _read_groups(groups)
