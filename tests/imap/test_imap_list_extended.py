"""LIST-EXTENDED selection options over a real socket (RFC 5258): RECURSIVEMATCH needs a
base option, and CHILDINFO is sent only where it tells the client something new."""

from __future__ import annotations

import imaplib

import pytest

from tests.imap.conftest import Raw, status_of


def _example_9(raw: Raw) -> None:
    """The hierarchy and subscriptions of RFC 5258 §5 example 9."""
    for name in ("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
                 "eps2/mamba", "qux2/bar2"):
        assert status_of(raw.command(f"CREATE {name}")) == b"OK"
    for name in ("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
                 "eps2", "eps2/mamba", "qux2/bar2"):
        assert status_of(raw.command(f"SUBSCRIBE {name}")) == b"OK"


def test_recursivematch_with_only_remote_is_bad(client: imaplib.IMAP4) -> None:
    for options in ("(RECURSIVEMATCH)", "(RECURSIVEMATCH REMOTE)", "(REMOTE RECURSIVEMATCH)"):
        with pytest.raises(imaplib.IMAP4.error, match="LIST command error: BAD"):
            client._simple_command("LIST", options, '""', "%")
    typ, _ = client._simple_command("LIST", "(REMOTE SUBSCRIBED RECURSIVEMATCH)", '""', "%")
    assert typ == "OK"


def test_childinfo_is_not_sent_when_the_matching_children_are_listed(raw: Raw) -> None:
    _example_9(raw)
    lines = raw.command('LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"')
    assert status_of(lines) == b"OK"
    # RFC 5258 §5 example 9, without the two lines it says would violate the SHOULD NOT of
    # §3.5 (baz2 and qux2: every subscribed child of theirs is already in the answer).
    # (Names in mailstead's order, which is by name.)
    assert lines[:-1] == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "baz2/bar2"\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "baz2/bar22"\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "baz2/bar222"\r\n',
        b'* LIST (\\HasChildren \\Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))\r\n',
        b'* LIST (\\HasChildren) "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "foo2/bar2"\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "qux2/bar2"\r\n',
    ]
    # With "*" every subscribed child is listed, so no CHILDINFO at all and no parent
    # that is not subscribed itself.
    lines = raw.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"')
    assert not any(b"CHILDINFO" in line for line in lines)
    assert b'"foo2"' not in b"".join(lines) and b'"eps2"' in b"".join(lines)


def test_childinfo_for_a_parent_that_does_not_exist(raw: Raw) -> None:
    """RFC 5258 §3.5 table: a parent that neither exists nor meets the criteria, with a
    child that does, is listed as (\\NonExistent) with CHILDINFO."""
    assert status_of(raw.command("SUBSCRIBE solo/child")) == b"OK"  # neither exists
    lines = raw.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "sol%"')
    assert lines[:-1] == [b'* LIST (\\NonExistent) "/" "solo" ("CHILDINFO" ("SUBSCRIBED"))\r\n']
