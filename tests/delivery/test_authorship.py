"""Reading From: and Sender: strictly (pure: header bytes in, addresses or a refusal out)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.core.types import Address
from mailstead.delivery.authorship import MAX_AUTHORS, read_authors
from mailstead.delivery.router import DeliveryError


def authors(header: str) -> list[str]:
    found = read_authors(f"{header}\r\nSubject: x\r\n\r\nFrom: body@not.header\r\n".encode())
    return [str(a) for a in found.addresses()]


def read_or_refuse(header: str) -> list[str] | None:
    """The authors, or None when the header is refused."""
    try:
        return authors(header)
    except DeliveryError:
        return None


def reason(header: str) -> str:
    with pytest.raises(DeliveryError) as failure:
        authors(header)
    assert (failure.value.code, failure.value.enhanced) == (550, "5.7.1")
    return failure.value.text


def test_folded_and_utf8_fields() -> None:
    assert authors("From: Alice\r\n <alice@example.org>") == ["alice@example.org"]
    assert authors("FROM: Jörg <jörg@bücher.example>") == ["jörg@bücher.example"]
    assert authors("From: a@b.example, c@d.example\r\nSender: a@b.example") == [
        "a@b.example", "c@d.example", "a@b.example"]


def test_bytes_that_are_not_utf8_are_unreadable() -> None:
    with pytest.raises(DeliveryError):
        read_authors(b"From: \xff <a@b.example>\r\n\r\n")


def test_too_many_authors() -> None:
    many = ", ".join(f"a{n}@b.example" for n in range(MAX_AUTHORS + 1))
    assert "more than" in reason(f"From: {many}\r\nSender: a0@b.example")


def test_a_sender_with_two_addresses() -> None:
    assert "exactly one address" in reason(
        "From: a@b.example\r\nSender: a@b.example, c@d.example")


# Printable ASCII for the display name, the quote and backslash escaped as RFC 5322 wants.
names = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(names)
def test_a_display_name_is_never_the_address(name: str) -> None:
    """Whatever the quoted name says (other addresses, angle brackets, commas), the address
    is the one in the angle brackets."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    assert authors(f'From: "{quoted}" <evil@remote.example>') == ["evil@remote.example"]
    # Unquoted, a name may break the syntax: then it is refused, never read otherwise.
    assert read_or_refuse(f"From: {name} <evil@remote.example>") in (
        ["evil@remote.example"], None)


@given(st.text(min_size=1, max_size=40))
def test_any_encoded_word_name_is_never_the_address(name: str) -> None:
    import base64

    encoded = base64.b64encode(name.encode()).decode()
    assert read_or_refuse(f"From: =?utf-8?b?{encoded}?= <evil@remote.example>") in (
        ["evil@remote.example"], None)


def test_results_are_core_addresses() -> None:
    found = read_authors(b"From: Alice <Alice@Example.ORG>\r\n\r\n")
    assert found.from_ == (Address("Alice", "example.org"),) and found.sender is None
