"""The MIME catch-alls: a bug degrades (and is logged) in production, and fails under test.

Each test breaks one piece of the parser on purpose (a monkeypatched function that raises)
and checks both sides: with the sanity flag on, as the whole suite runs, the error escapes;
with it off, as in production, the message still parses, one error line is logged, and that
line holds the error's type and the size of what was read, never its content.
"""

from __future__ import annotations

import email.header
import logging
from typing import NoReturn

import pytest
from mime_checks import check_message

from mailstead.core import sanity
from mailstead.mime import parse, parse_message, rfc822

SECRET = "Confidential-merger-plans"
RAW = (
    f"From: Ann <ann@example.org>\r\nSubject: {SECRET}\r\nTo: bob@example.org\r\n\r\nhello\r\n"
).encode()


class Bug(Exception):
    """An exception no input can cause: it stands for a bug."""


def _raise_bug(*_args: object) -> NoReturn:
    raise Bug(f"while reading {SECRET}")


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sanity.ENV_VAR)


def _logged_once(caplog: pytest.LogCaptureFixture, *expected: str) -> str:
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelno) for r in errors] == [("mailstead.mime", logging.ERROR)]
    line = errors[0].getMessage()
    for text in expected:
        assert text in line, line
    assert SECRET not in line and "ann@example.org" not in line
    assert errors[0].exc_info is None  # a traceback would print the exception's text
    return line


# --- parse_message: the whole message ------------------------------------------------------


def test_a_parser_bug_fails_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "_parse", _raise_bug)
    with pytest.raises(Bug):
        parse_message(RAW)


def test_in_production_a_parser_bug_stores_one_text_part_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, production: None
) -> None:
    monkeypatch.setattr(parse, "_parse", _raise_bug)
    parsed = parse_message(RAW)
    assert parsed.bodystructure == (
        f'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" {len(RAW)} 5 NIL NIL NIL NIL)'
    )
    assert parsed.envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert parsed.root.header_end == 0 and parsed.root.body_end == len(RAW)
    check_message(RAW, parsed)
    _logged_once(caplog, "Bug at ", f"{len(RAW)} octets")


def test_a_bug_deep_in_the_parser_fails_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only _parse itself: anything it calls (here the BODYSTRUCTURE builder)."""
    monkeypatch.setattr(parse, "_plain_7bit", _raise_bug)
    with pytest.raises(Bug):
        parse_message(RAW)


# --- the address parser: one field -----------------------------------------------------------


def test_an_address_parser_bug_fails_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rfc822._AddrParser, "parse", _raise_bug)
    rfc822._parse_addresses_cached.cache_clear()
    with pytest.raises(Bug):
        rfc822.parse_addresses("Ann <ann@example.org>")
    rfc822._parse_addresses_cached.cache_clear()


def test_in_production_an_address_parser_bug_empties_the_field_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, production: None
) -> None:
    monkeypatch.setattr(rfc822._AddrParser, "parse", _raise_bug)
    rfc822._parse_addresses_cached.cache_clear()
    try:
        assert rfc822.parse_addresses("Ann <ann@example.org>") == []
    finally:
        rfc822._parse_addresses_cached.cache_clear()  # no broken result outlives the test
    _logged_once(caplog, "Bug at ", "21 characters")


# --- RFC 2047 decoding for SEARCH: one field ---------------------------------------------------


def test_undecodable_encoded_words_are_input_not_bugs(caplog: pytest.LogCaptureFixture) -> None:
    """RFC 2047 §6.2: an unknown charset or a broken encoded-word is kept as written; with
    the sanity flag on, quietly, since no code is at fault."""
    for subject in ("=?x-no-such-charset?q?caf=E9?=", "=?us-ascii?q?caf=E9?="):
        raw = f"Subject: {subject}\r\n\r\n".encode()
        assert parse_message(raw).subject == subject
    assert caplog.records == []


def test_an_rfc2047_bug_fails_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email.header, "make_header", _raise_bug)
    with pytest.raises(Bug):
        parse_message(b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n")


def test_in_production_an_rfc2047_bug_keeps_the_field_as_written_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, production: None
) -> None:
    monkeypatch.setattr(email.header, "make_header", _raise_bug)
    parsed = parse_message(b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n")
    assert parsed.subject == "=?utf-8?q?caf=C3=A9?="
    assert parsed.root.header_end > 0  # only the one field degraded, not the message
    _logged_once(caplog, "Bug at ")
