"""LIST patterns: the same answers as the obvious regex, in linear time."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.commands.listing import mailbox_pattern
from mailstead.imap.wildcard import MailboxPattern


def _reference(pattern: str, name: str) -> bool:
    """The RFC 9051 §6.3.9 meaning, as a regex: fine for the short strings drawn here."""
    body = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c)
                   for c in pattern)
    return re.fullmatch(body, name, re.DOTALL) is not None


@given(st.text(alphabet="ab/*%", max_size=8), st.text(alphabet="ab/", max_size=10))
def test_answers_as_the_regex_does(pattern: str, name: str) -> None:
    assert MailboxPattern(pattern).matches(name) == _reference(pattern, name)


def test_examples_from_the_rfc() -> None:
    assert MailboxPattern("*").matches("a/b/c")
    assert MailboxPattern("%").matches("abc")
    assert not MailboxPattern("%").matches("a/b")
    assert MailboxPattern("a/%").matches("a/b")
    assert not MailboxPattern("a/%").matches("a/b/c")
    assert MailboxPattern("a/*").matches("a/b/c")
    assert MailboxPattern("").matches("")
    assert not MailboxPattern("").matches("a")
    assert MailboxPattern("Sent").matches("Sent")
    assert not MailboxPattern("Sent").matches("sent")
    assert MailboxPattern("%*%").matches("x/y")  # a run holding * is *
    assert not MailboxPattern("%%").matches("x/y")  # a run of % stays %


def test_inbox_matches_whatever_its_case_and_the_reference_is_a_prefix() -> None:
    assert mailbox_pattern("", "inbox").matches("INBOX")
    assert mailbox_pattern("", "InBoX/%").matches("INBOX/Sub")
    assert not mailbox_pattern("", "inboxes").matches("INBOXES")
    assert mailbox_pattern("Archive/", "%").matches("Archive/2024")
    assert mailbox_pattern("Archive/", "/Other").matches("/Other")


def test_a_hostile_pattern_does_not_backtrack() -> None:
    """``%*%*…z`` against names without ``z``: a backtracking regex takes time exponential
    in the wildcards (101 bytes hung the server). The automaton never holds more states
    than the pattern has tokens after collapsing; here that is two."""
    hostile = MailboxPattern("%*" * 50 + "z")
    names = ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive/" + "x" * 200]
    assert not any(hostile.matches(name) for name in names)
    assert hostile._accept == 1 << 2  # "*", "z": the run collapsed
    many = MailboxPattern("*a" * 40 + "z")  # no collapse possible: 81 tokens
    assert not many.matches("a" * 500)
    assert many.matches("a" * 80 + "z")
