"""METADATA and METADATA-SERVER (RFC 5464) against the real server, with raw commands and
imaplib: entries on the server and on mailboxes, DEPTH and MAXSIZE, binary values, the
limits with their response codes, names the RFC forbids, /private/specialuse (RFC 6154 §4),
entries following RENAME and going with DELETE, and two sessions of one account."""

from __future__ import annotations

import imaplib
import itertools
from collections.abc import Iterator

import pytest

from mailstead.store.changes import Subscription
from mailstead.store.models import ChangeEvent, ChangeKind
from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, Raw, imap_config, status_of

_counter = itertools.count(1)
MAX_SIZE = 100
MAX_ENTRIES = 5
ADMIN = "postmaster@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = imap_config(imap_metadata_max_size=MAX_SIZE, imap_metadata_max_entries=MAX_ENTRIES)
    config["imap"] = {"server_admin": ADMIN, "server_comment": "Test server"}
    with ServerThread(tmp_path_factory.mktemp("imap-metadata"), config) as srv:
        yield srv


@pytest.fixture
def account(server: ServerThread) -> str:
    address = f"meta{next(_counter)}@example.com"
    server.add_user(address, PASSWORD)
    return address


@pytest.fixture
def raw(server: ServerThread, account: str) -> Iterator[Raw]:
    r = Raw(server.port("imap"), login=account)
    yield r
    r.close()


def ok(lines: list[bytes]) -> list[bytes]:
    assert status_of(lines) == b"OK", lines
    return lines[:-1]


def tagged(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1].rstrip(b"\r\n")


def test_both_capabilities_are_advertised(raw: Raw) -> None:
    caps = raw.command("CAPABILITY")[0].split()
    assert b"METADATA" in caps and b"METADATA-SERVER" in caps


def test_set_and_get_on_a_mailbox(raw: Raw) -> None:
    ok(raw.command('SETMETADATA INBOX (/private/comment "my inbox" /Shared/Comment "all")'))
    lines = ok(raw.command("GETMETADATA INBOX (/private/comment /shared/comment /shared/x)"))
    # Names are case-insensitive and shown lower case (§3.2); one not there is NIL.
    assert lines == [
        b'* METADATA "INBOX" (/private/comment "my inbox" /shared/comment "all"'
        b" /shared/x NIL)\r\n"
    ]
    ok(raw.command("SETMETADATA INBOX (/private/comment NIL)"))
    lines = ok(raw.command("GETMETADATA INBOX /private/comment"))
    assert lines == [b'* METADATA "INBOX" (/private/comment NIL)\r\n']


def test_server_entries_and_configured_ones(raw: Raw) -> None:
    ok(raw.command('SETMETADATA "" (/private/vendor/vendor.apple/x "1")'))
    lines = ok(raw.command('GETMETADATA "" (/shared/admin /shared/comment'
                           " /private/vendor/vendor.apple/x)"))
    assert lines == [
        f'* METADATA "" (/shared/admin "mailto:{ADMIN}" /shared/comment "Test server"'
        ' /private/vendor/vendor.apple/x "1")\r\n'.encode()
    ]
    for entry in ("/shared/admin", "/shared/comment"):
        lines = raw.command(f'SETMETADATA "" ({entry} "mine")')
        assert tagged(lines).startswith(b"NO [CANNOT]"), lines
    # Server entries and mailbox entries are apart.
    assert ok(raw.command("GETMETADATA INBOX /private/vendor/vendor.apple/x")) == [
        b'* METADATA "INBOX" (/private/vendor/vendor.apple/x NIL)\r\n'
    ]


def test_depth(raw: Raw) -> None:
    ok(raw.command('SETMETADATA INBOX (/private/a "1" /private/a/b "2" /private/a/b/c "3"'
                   ' /shared/a "4")'))
    assert ok(raw.command("GETMETADATA (DEPTH 0) INBOX /private/a")) == [
        b'* METADATA "INBOX" (/private/a "1")\r\n'
    ]
    assert ok(raw.command("GETMETADATA (DEPTH 1) INBOX /private/a")) == [
        b'* METADATA "INBOX" (/private/a "1" /private/a/b "2")\r\n'
    ]
    assert ok(raw.command("GETMETADATA (DEPTH infinity) INBOX /private")) == [
        b'* METADATA "INBOX" (/private/a "1" /private/a/b "2" /private/a/b/c "3")\r\n'
    ]
    # Options after the mailbox, as the RFC's examples send them; nothing below: nothing.
    assert ok(raw.command("GETMETADATA INBOX (DEPTH 1) /private/a/b/c")) == [
        b'* METADATA "INBOX" (/private/a/b/c "3")\r\n'
    ]
    assert ok(raw.command("GETMETADATA (DEPTH infinity) INBOX /shared/none")) == []


def test_maxsize_leaves_out_longer_values(raw: Raw) -> None:
    ok(raw.command('SETMETADATA INBOX (/private/short "abc" /private/long "0123456789")'))
    lines = raw.command("GETMETADATA (MAXSIZE 5) INBOX (/private/short /private/long)")
    assert lines[:-1] == [b'* METADATA "INBOX" (/private/short "abc")\r\n']
    assert tagged(lines).startswith(b"OK [METADATA LONGENTRIES 10]")
    # Every value too long: no METADATA response at all.
    lines = raw.command("GETMETADATA (MAXSIZE 1 DEPTH 1) INBOX /private")
    assert len(lines) == 1 and tagged(lines).startswith(b"OK [METADATA LONGENTRIES 10]")


def test_binary_and_eight_bit_values(raw: Raw) -> None:
    value = b"a\x00b\xff\r\n"
    raw.send(b"t SETMETADATA INBOX (/private/vendor/bin ~{%d+}\r\n" % len(value) + value + b")\r\n")
    ok(raw.read_until_tag("t"))
    assert ok(raw.command("GETMETADATA INBOX /private/vendor/bin")) == [
        b'* METADATA "INBOX" (/private/vendor/bin ~{6}\r\n' + value + b")\r\n"
    ]
    text = "für".encode()
    raw.send(b"u SETMETADATA INBOX (/private/text {%d+}\r\n" % len(text) + text + b")\r\n")
    ok(raw.read_until_tag("u"))
    assert ok(raw.command("GETMETADATA INBOX /private/text")) == [
        b'* METADATA "INBOX" (/private/text {4}\r\n' + text + b")\r\n"
    ]
    # A literal (not literal8) may not carry NUL.
    raw.send(b"v SETMETADATA INBOX (/private/x {1+}\r\n\x00)\r\n")
    assert status_of(raw.read_until_tag("v")) == b"BAD"


def test_value_too_long_changes_nothing(raw: Raw) -> None:
    long = "x" * (MAX_SIZE + 1)
    lines = raw.command(f'SETMETADATA INBOX (/private/ok "fine" /private/big "{long}")')
    assert tagged(lines).startswith(f"NO [METADATA MAXSIZE {MAX_SIZE}]".encode()), lines
    assert ok(raw.command("GETMETADATA INBOX /private/ok")) == [
        b'* METADATA "INBOX" (/private/ok NIL)\r\n'
    ]
    ok(raw.command(f'SETMETADATA INBOX (/private/big "{long[:-1]}")'))


def test_too_many_entries_changes_nothing(raw: Raw) -> None:
    ok(raw.command('SETMETADATA "" (/private/1 "1" /private/2 "2" /private/3 "3")'))
    ok(raw.command('SETMETADATA INBOX (/private/4 "4")'))
    lines = raw.command('SETMETADATA INBOX (/private/5 "5" /private/6 "6")')
    assert tagged(lines).startswith(b"NO [METADATA TOOMANY]"), lines
    assert ok(raw.command("GETMETADATA INBOX /private/5")) == [
        b'* METADATA "INBOX" (/private/5 NIL)\r\n'
    ]
    # Changing or removing at the limit is fine.
    ok(raw.command('SETMETADATA INBOX (/private/5 "5")'))
    ok(raw.command('SETMETADATA "" (/private/1 "one" /private/2 NIL)'))
    ok(raw.command('SETMETADATA INBOX (/private/6 "6")'))


@pytest.mark.parametrize("entry", [
    "/foo", "/private/", "/private//a", "/private/a*", '"/private/a%"', "private/a",
    '"/private/\x7fa"', '"/shared/\tx"', "/privatex", '"/private/caf\xc3\xa9"',
])
def test_names_the_rfc_forbids_are_bad(raw: Raw, entry: str) -> None:
    command = f"GETMETADATA INBOX {entry}".encode("latin-1")
    assert status_of(raw.command(command)) == b"BAD"
    assert status_of(raw.command(b"SETMETADATA INBOX (" + entry.encode("latin-1")
                                 + b' "v")')) == b"BAD"


@pytest.mark.parametrize("command", [
    "GETMETADATA INBOX (/private/a /private/b",
    "GETMETADATA INBOX /private/a /private/b",  # several entries need parentheses
    "GETMETADATA (DEPTH 2) INBOX /private/a",
    "GETMETADATA (MAXSIZE -1) INBOX /private/a",
    "GETMETADATA (DEPTH 1 DEPTH 0) INBOX /private/a",
    "GETMETADATA (FOO 1) INBOX /private/a",
    "SETMETADATA INBOX ()",
    'SETMETADATA INBOX /private/a "x"',
    "SETMETADATA INBOX (/private/a)",
    'SETMETADATA INBOX (/private "x")',
    'SETMETADATA INBOX (/shared "x")',
])
def test_malformed_commands_are_bad(raw: Raw, command: str) -> None:
    assert status_of(raw.command(command)) == b"BAD"


def test_nonexistent_mailbox(raw: Raw) -> None:
    for command in ("GETMETADATA Nope /private/comment", 'SETMETADATA Nope (/private/c "x")'):
        assert tagged(raw.command(command)).startswith(b"NO [NONEXISTENT]")


def test_specialuse_entry(raw: Raw) -> None:
    assert ok(raw.command("GETMETADATA Sent /private/specialuse")) == [
        b'* METADATA "Sent" (/private/specialuse "\\\\Sent")\r\n'
    ]
    assert ok(raw.command("GETMETADATA INBOX /private/specialuse")) == [
        b'* METADATA "INBOX" (/private/specialuse NIL)\r\n'
    ]
    lines = raw.command('SETMETADATA INBOX (/private/specialuse "\\\\Junk")')
    assert tagged(lines).startswith(b"NO [CANNOT]"), lines
    # A /shared/specialuse is an ordinary entry.
    ok(raw.command('SETMETADATA INBOX (/shared/specialuse "x")'))


def test_entries_follow_rename_and_go_with_delete(raw: Raw) -> None:
    ok(raw.command("CREATE Work/Old"))
    ok(raw.command('SETMETADATA Work (/private/comment "w")'))
    ok(raw.command('SETMETADATA Work/Old (/private/comment "o")'))
    ok(raw.command("RENAME Work Job"))
    assert ok(raw.command("GETMETADATA Job/Old /private/comment")) == [
        b'* METADATA "Job/Old" (/private/comment "o")\r\n'
    ]
    ok(raw.command("DELETE Job/Old"))
    ok(raw.command("CREATE Job/Old"))
    assert ok(raw.command("GETMETADATA Job/Old /private/comment")) == [
        b'* METADATA "Job/Old" (/private/comment NIL)\r\n'
    ]
    ok(raw.command("DELETE Job/Old"))
    ok(raw.command("DELETE Job"))
    ok(raw.command("CREATE Job"))
    assert ok(raw.command("GETMETADATA Job /private/comment")) == [
        b'* METADATA "Job" (/private/comment NIL)\r\n'
    ]


def test_two_sessions_of_one_account(server: ServerThread, account: str, raw: Raw) -> None:
    other = Raw(server.port("imap"), login=account)
    try:
        ok(other.command("SELECT INBOX"))
        ok(raw.command('SETMETADATA INBOX (/private/comment "from the first")'))
        # The selected session is told nothing unasked (that is NOTIFY's, RFC 5465)...
        assert ok(other.command("NOOP")) == []
        # ...and reads what the other wrote.
        assert ok(other.command("GETMETADATA INBOX /private/comment")) == [
            b'* METADATA "INBOX" (/private/comment "from the first")\r\n'
        ]
    finally:
        other.close()


def test_accounts_do_not_share_entries(server: ServerThread, raw: Raw) -> None:
    ok(raw.command('SETMETADATA "" (/shared/vendor/x "mine")'))
    address = f"meta{next(_counter)}@example.com"
    server.add_user(address, PASSWORD)
    stranger = Raw(server.port("imap"), login=address)
    try:
        assert ok(stranger.command('GETMETADATA "" /shared/vendor/x')) == [
            b'* METADATA "" (/shared/vendor/x NIL)\r\n'
        ]
    finally:
        stranger.close()


def test_not_before_login(server: ServerThread) -> None:
    anonymous = Raw(server.port("imap"))
    try:
        # Well-formed but untimely: NO, as for every command of the authenticated state.
        lines = anonymous.command('GETMETADATA "" /shared/admin')
        assert lines == [lines[-1]] and status_of(lines) == b"NO"
    finally:
        anonymous.close()


def test_imaplib(server: ServerThread, account: str) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        client.login(account, PASSWORD)
        assert "METADATA" in client.capabilities
        typ, _ = client.xatom("SETMETADATA", "INBOX", '(/private/comment "hi there")')
        assert typ == "OK"
        typ, _ = client.xatom("GETMETADATA", "INBOX", "/private/comment")
        assert typ == "OK"
        assert client.untagged_responses.pop("METADATA") == [
            b'"INBOX" (/private/comment "hi there")'
        ]
    finally:
        client.logout()


def test_writes_are_published_on_the_change_bus(
    server: ServerThread, account: str, raw: Raw
) -> None:
    """What NOTIFY (RFC 5465) will turn into METADATA responses: one event per write that
    changed something, naming the entries, after commit and before the OK."""
    user = server.call(server.store.find_user(account))
    assert user is not None

    async def subscribe() -> Subscription:
        return server.store.changes.subscribe(user.id)

    sub = server.call(subscribe())

    async def drain() -> list[ChangeEvent]:
        return sub.drain()

    try:
        ok(raw.command('SETMETADATA INBOX (/private/a "1" /shared/b "2")'))
        ok(raw.command('SETMETADATA INBOX (/private/a "1")'))  # the same again: no change
        ok(raw.command('SETMETADATA "" (/private/c "3")'))
        events = server.call(drain())
    finally:

        async def close() -> None:
            sub.close()

        server.call(close())
    inbox = server.call(server.store.get_mailbox(user.id, "INBOX"))
    assert [(e.kind, e.mailbox_id, e.entries) for e in events] == [
        (ChangeKind.MAILBOX_METADATA, inbox.id, ("/private/a", "/shared/b")),
        (ChangeKind.SERVER_METADATA, 0, ("/private/c",)),
    ]


def test_mailbox_names_as_the_client_writes_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The mailbox of GETMETADATA and SETMETADATA is mapped like every mailbox argument:
    the configured hierarchy separator, modified UTF-7 for clients without UTF-8."""
    config = imap_config()
    config["imap"] = {"hierarchy_separator": "."}
    with ServerThread(tmp_path_factory.mktemp("imap-metadata-dot"), config) as dotted:
        dotted.add_user("dot@example.com", PASSWORD)
        raw = Raw(dotted.port("imap"), login="dot@example.com")
        try:
            ok(raw.command("CREATE &AOk-t&AOk-.Projets"))
            ok(raw.command('SETMETADATA &AOk-t&AOk-.Projets (/private/comment "x")'))
            assert ok(raw.command("GETMETADATA &AOk-t&AOk-.Projets /private/comment")) == [
                b'* METADATA "&AOk-t&AOk-.Projets" (/private/comment "x")\r\n'
            ]
            user = dotted.call(dotted.store.find_user("dot@example.com"))
            assert user is not None
            box = dotted.call(dotted.store.get_mailbox(user.id, "été/Projets"))
            entries = dotted.call(dotted.store.get_metadata(user.id, box.id))
            assert entries == {"/private/comment": b"x"}
        finally:
            raw.close()
