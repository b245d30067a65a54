"""RFC 5321 §4.1.2 path syntax, and the relay tricks the parser must not fall for."""

from __future__ import annotations

import pytest

from mailstead.core.types import Address
from mailstead.smtp.address import (
    AddressError,
    parse_forward_path,
    parse_mailbox,
    parse_reverse_path,
    split_path,
)


@pytest.mark.parametrize(
    ("argument", "path", "params"),
    [
        ("<a@b.example>", "a@b.example", ""),
        (" <a@b.example> SIZE=10", "a@b.example", "SIZE=10"),
        ("<> BODY=8BITMIME", "", "BODY=8BITMIME"),
        ('<"a>b"@x.example>', '"a>b"@x.example', ""),
        ('<"a\\"> b"@x.example> RET=HDRS', '"a\\"> b"@x.example', "RET=HDRS"),
    ],
)
def test_split_path(argument: str, path: str, params: str) -> None:
    assert split_path(argument) == (path, params)


@pytest.mark.parametrize("argument", ["a@b", "<a@b", "<a@b>junk", ""])
def test_split_path_rejects(argument: str) -> None:
    with pytest.raises(AddressError):
        split_path(argument)


def test_domain_is_lower_cased_and_local_part_kept() -> None:
    assert parse_mailbox("Alice.Smith@Example.ORG").address == Address("Alice.Smith", "example.org")


def test_null_reverse_path() -> None:
    assert parse_reverse_path("").address is None


def test_postmaster_without_domain() -> None:
    # RFC 5321 §4.1.1.3: <Postmaster> must be accepted.
    assert parse_forward_path("PostMaster", "mx.example").address == Address(
        "postmaster", "mx.example"
    )


def test_quoted_local_part_is_unquoted_only_when_plain() -> None:
    assert parse_mailbox('"alice"@example.org').address == Address("alice", "example.org")
    # The quoted @ is part of the local part: never a route to remote.example.
    quoted = parse_mailbox('"bob@remote.example"@example.org').address
    assert quoted == Address('"bob@remote.example"', "example.org")


@pytest.mark.parametrize(
    "text",
    [
        "@relay.example:bob@remote.example",  # source route (RFC 5321 §3.6.1, refused)
        "@a,@b:bob@remote.example",
        "bob@",
        "@example.org",
        "bob",
        "a..b@example.org",
        ".a@example.org",
        "a@-bad.example",
        "a@exa mple.org",
        "a b@example.org",
        "a@b@example.org",
        '"unterminated@example.org',
        "a@[300.1.1.1]",
        "a@[IPv6:zz::1]",
        "a\x00@example.org",
    ],
)
def test_invalid_mailboxes(text: str) -> None:
    with pytest.raises(AddressError):
        parse_mailbox(text)


def test_percent_and_bang_are_plain_characters() -> None:
    # RFC 5321 §2.3.11: the local part is opaque; no % hack, no UUCP bang path.
    assert parse_mailbox("bob%remote.example@example.org").address == Address(
        "bob%remote.example", "example.org"
    )
    assert parse_mailbox("remote.example!bob@example.org").address == Address(
        "remote.example!bob", "example.org"
    )


def test_address_literals() -> None:
    assert parse_mailbox("a@[192.0.2.1]").is_literal
    assert parse_mailbox("a@[IPv6:2001:db8::1]").is_literal


def test_utf8_is_parsed_and_flagged() -> None:
    path = parse_mailbox("用户@例子.测试")
    assert not path.is_ascii
    assert path.address == Address("用户", "例子.测试")
    assert parse_mailbox("a@b.example").is_ascii


def test_length_limits() -> None:
    with pytest.raises(AddressError):
        parse_mailbox("a" * 300 + "@example.org")
    with pytest.raises(AddressError):
        parse_mailbox("a@" + "b" * 300 + ".example")
