"""RFC 4314 ACL, RFC 8440 LIST-MYRIGHTS and the other users' namespace (decision 0028),
with two real accounts: an owner who shares and a grantee who uses the share."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, SIMPLE_MESSAGE, Raw, append, connect, status_of

_pair = itertools.count(1)


class Pair:
    """An owner and a grantee, each with a raw session."""

    def __init__(self, server: ServerThread) -> None:
        n = next(_pair)
        self.server = server
        self.owner = f"owner{n}@example.com"
        self.grantee = f"grantee{n}@example.com"
        self.owner_user = server.add_user(self.owner, PASSWORD)
        self.grantee_user = server.add_user(self.grantee, PASSWORD)
        self.o = Raw(server.port("imap"), login=self.owner)
        self.g = Raw(server.port("imap"), login=self.grantee)

    def share(self, mailbox: str, rights: str, who: str | None = None) -> None:
        """Grant through the store, as ``mailstead share grant`` does."""

        async def grant() -> None:
            box = await self.server.store.get_mailbox(self.owner_user.id, mailbox)
            await self.server.store.set_acl(box.id, who or self.grantee, rights)

        self.server.call(grant())

    def path(self, mailbox: str = "INBOX") -> str:
        return f'"Other Users/{self.owner}/{mailbox}"'

    def close(self) -> None:
        self.o.close()
        self.g.close()


@pytest.fixture
def pair(server: ServerThread) -> Iterator[Pair]:
    p = Pair(server)
    yield p
    p.close()


def _code(lines: list[bytes]) -> bytes:
    m = re.match(rb"\S+ \w+ \[([A-Z-]+)", lines[-1])
    return m.group(1) if m else b""


def _append_to_owner(pair: Pair, flags: str = "") -> None:
    c = connect(pair.server, pair.owner)
    try:
        append(c, SIMPLE_MESSAGE, "INBOX", flags or None)
    finally:
        c.logout()


# -- the ACL commands ---------------------------------------------------------------------------


def test_capabilities_advertised(raw: Raw) -> None:
    caps = raw.command("CAPABILITY")[0].split()
    for cap in (b"ACL", b"RIGHTS=texk", b"LIST-MYRIGHTS", b"NAMESPACE"):
        assert cap in caps


def test_owner_sets_gets_and_deletes_acl(pair: Pair) -> None:
    o = pair.o
    assert o.command("GETACL INBOX")[0] == (
        f'* ACL "INBOX" {pair.owner} lrswipkxtecda\r\n'.encode()
    )
    assert status_of(o.command(f"SETACL INBOX {pair.grantee} +lr")) == b"OK"
    assert status_of(o.command(f"SETACL INBOX {pair.grantee.upper()} +sd")) == b"OK"
    assert status_of(o.command("SETACL INBOX anyone l")) == b"OK"
    assert o.command("GETACL INBOX")[0] == (
        f'* ACL "INBOX" {pair.owner} lrswipkxtecda anyone l {pair.grantee} lrsted\r\n'.encode()
    )
    assert status_of(o.command(f"SETACL INBOX {pair.grantee} -rd")) == b"OK"
    assert f" {pair.grantee} ls\r\n".encode() in o.command("GETACL INBOX")[0]
    assert status_of(o.command(f"DELETEACL INBOX {pair.grantee}")) == b"OK"
    assert status_of(o.command("DELETEACL INBOX anyone")) == b"OK"
    assert o.command("GETACL INBOX")[0] == (
        f'* ACL "INBOX" {pair.owner} lrswipkxtecda\r\n'.encode()
    )
    assert o.command("MYRIGHTS INBOX")[0] == b'* MYRIGHTS "INBOX" lrswipkxtecda\r\n'
    assert o.command(f"LISTRIGHTS INBOX {pair.grantee}")[0] == (
        f'* LISTRIGHTS "INBOX" {pair.grantee} "" l r s w i p k x t e a c d\r\n'.encode()
    )
    assert o.command(f"LISTRIGHTS INBOX {pair.owner}")[0] == (
        f'* LISTRIGHTS "INBOX" {pair.owner} lrswipkxtecda\r\n'.encode()
    )


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("SETACL INBOX {grantee} lz", b"CLIENTBUG"),
        ("SETACL INBOX {grantee} l9", b"CLIENTBUG"),
        ("SETACL INBOX nobody@example.com lr", b"CANNOT"),
        ("SETACL INBOX -{grantee} lr", b"CANNOT"),
        ("SETACL INBOX {owner} lr", b"CANNOT"),
        ("DELETEACL INBOX {owner}", b"CANNOT"),
        ("GETACL Nonexistent", b"NONEXISTENT"),
        ("MYRIGHTS Nonexistent", b"NONEXISTENT"),
    ],
)
def test_acl_command_errors(pair: Pair, command: str, code: bytes) -> None:
    lines = pair.o.command(command.format(grantee=pair.grantee, owner=pair.owner))
    assert status_of(lines) == b"NO" and _code(lines) == code, lines
    assert b"ACL" not in b"".join(lines[:-1])


def test_acl_syntax_errors_are_bad(pair: Pair) -> None:
    assert status_of(pair.o.command("SETACL INBOX")) == b"BAD"
    assert status_of(pair.o.command("GETACL")) == b"BAD"
    assert status_of(pair.o.command("MYRIGHTS INBOX extra")) == b"BAD"


# -- visibility and the namespace ------------------------------------------------------------


def test_namespace_and_list_show_shared_mailboxes(pair: Pair) -> None:
    pair.o.command("CREATE Team/Sub")
    pair.share("Team/Sub", "lr")
    pair.share("INBOX", "r")  # no "l": not listed, but usable
    lines = pair.g.command('LIST "" "*"')
    owner = pair.owner
    assert b'* LIST (\\Noselect \\HasChildren) "/" "Other Users"\r\n' in lines
    assert f'* LIST (\\Noselect \\HasChildren) "/" "Other Users/{owner}"\r\n'.encode() in lines
    assert f'* LIST (\\Noselect \\HasChildren) "/" "Other Users/{owner}/Team"\r\n'.encode() in lines
    assert f'* LIST (\\HasNoChildren) "/" "Other Users/{owner}/Team/Sub"\r\n'.encode() in lines
    assert f"Other Users/{owner}/INBOX".encode() not in b"".join(lines)
    top = b'* LIST (\\Noselect \\HasChildren) "/" "Other Users"\r\n'
    assert pair.g.command('LIST "" "%"').count(top) == 1
    # RFC 8440: RETURN (MYRIGHTS)
    lines = pair.g.command('LIST "" "Other Users/*" RETURN (MYRIGHTS)')
    assert f'* MYRIGHTS "Other Users/{owner}/Team/Sub" lr\r\n'.encode() in lines
    lines = pair.g.command('LIST "" "INBOX" RETURN (MYRIGHTS)')
    assert lines[1] == b'* MYRIGHTS "INBOX" lrswipkxtecda\r\n'
    # The owner lists nothing of the other namespace.
    assert b"Other Users" not in b"".join(pair.o.command('LIST "" "*"'))


def test_no_rights_looks_like_no_mailbox(pair: Pair) -> None:
    lines = pair.g.command(f"SELECT {pair.path()}")
    assert status_of(lines) == b"NO" and _code(lines) == b"NONEXISTENT"
    lines = pair.g.command('SELECT "Other Users/nobody@example.com/INBOX"')
    assert _code(lines) == b"NONEXISTENT"
    pair.share("INBOX", "l")
    lines = pair.g.command(f"SELECT {pair.path()}")
    assert status_of(lines) == b"NO" and _code(lines) == b"NOPERM"
    lines = pair.g.command(f"STATUS {pair.path()} (MESSAGES)")
    assert _code(lines) == b"NOPERM"


def test_read_right_selects_read_only_and_reads_without_seen(pair: Pair) -> None:
    _append_to_owner(pair)
    pair.share("INBOX", "lr")
    g = pair.g
    lines = g.command(f"SELECT {pair.path()}")
    assert lines[-1].startswith(b"t") and b"OK [READ-ONLY]" in lines[-1]
    assert b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n" in lines
    assert b"* 1 EXISTS\r\n" in lines
    assert status_of(g.command("FETCH 1 BODY[]")) == b"OK"
    assert b"\\Seen" not in g.command("FETCH 1 FLAGS")[0]
    assert _code(g.command("STORE 1 +FLAGS (\\Seen)")) == b"READ-ONLY"
    assert g.command(f"STATUS {pair.path()} (MESSAGES UNSEEN)")[0] == (
        f"* STATUS {pair.path()} (MESSAGES 1 UNSEEN 1)\r\n".encode()
    )


def test_store_rights_s_w_t(pair: Pair) -> None:
    _append_to_owner(pair)
    _append_to_owner(pair)
    pair.share("INBOX", "lrs")
    g = pair.g
    lines = g.command(f"SELECT {pair.path()}")
    assert b"OK [READ-WRITE]" in lines[-1]
    assert b"* OK [PERMANENTFLAGS (\\Seen)] Flags permitted\r\n" in lines
    assert status_of(g.command("STORE 1 +FLAGS (\\Seen)")) == b"OK"
    lines = g.command("STORE 1 +FLAGS (\\Flagged)")
    assert status_of(lines) == b"NO" and _code(lines) == b"NOPERM"
    assert _code(g.command("STORE 1 +FLAGS (\\Deleted)")) == b"NOPERM"
    pair.share("INBOX", "lrswt")  # granted meanwhile: the next command sees it
    assert status_of(g.command("STORE 1 +FLAGS (\\Flagged \\Deleted)")) == b"OK"
    pair.share("INBOX", "lrw")
    # FLAGS replaces only what the grantee may change: \Seen and \Deleted stay.
    assert status_of(g.command("STORE 1 FLAGS (\\Answered)")) == b"OK"
    flags = g.command("FETCH 1 FLAGS")[0]
    assert b"\\Answered" in flags and b"\\Seen" in flags and b"\\Deleted" in flags
    assert b"\\Flagged" not in flags
    # a FETCH of the body does not set \Seen without "s"
    g.command("FETCH 2 BODY[]")
    assert b"\\Seen" not in g.command("FETCH 2 FLAGS")[0]
    pair.share("INBOX", "lrs")
    g.command("FETCH 2 BODY[]")
    assert b"\\Seen" in g.command("FETCH 2 FLAGS")[0]


def test_expunge_needs_e(pair: Pair) -> None:
    _append_to_owner(pair, "(\\Deleted)")
    pair.share("INBOX", "lrt")
    g = pair.g
    g.command(f"SELECT {pair.path()}")
    assert _code(g.command("EXPUNGE")) == b"NOPERM"
    assert _code(g.command("UID EXPUNGE 1")) == b"NOPERM"
    assert status_of(g.command("CLOSE")) == b"OK"  # closes, expunges nothing
    assert b"MESSAGES 1" in pair.o.command("STATUS INBOX (MESSAGES)")[0]
    pair.share("INBOX", "lrte")
    g.command(f"SELECT {pair.path()}")
    lines = g.command("EXPUNGE")
    assert lines[0] == b"* 1 EXPUNGE\r\n" and status_of(lines) == b"OK"


def test_insert_right_for_append_copy_and_quota_goes_to_owner(pair: Pair) -> None:
    g = pair.g
    c = connect(pair.server, pair.grantee)
    try:
        typ, data = c.append(pair.path(), None, None, SIMPLE_MESSAGE)
        assert typ == "NO" and b"TRYCREATE" in data[0]  # not even visible
        pair.share("INBOX", "lr")
        typ, data = c.append(pair.path(), None, None, SIMPLE_MESSAGE)
        assert typ == "NO" and b"NOPERM" in data[0]
        pair.share("INBOX", "lri")
        typ, _ = c.append(pair.path(), None, None, SIMPLE_MESSAGE)
        assert typ == "OK"
    finally:
        c.logout()
    owner = pair.server.call(pair.server.store.get_user(pair.owner_user.id))
    grantee = pair.server.call(pair.server.store.get_user(pair.grantee_user.id))
    assert owner.used_bytes == len(SIMPLE_MESSAGE) and grantee.used_bytes == 0
    # COPY from the grantee's own INBOX into the share
    c = connect(pair.server, pair.grantee)
    try:
        append(c)
    finally:
        c.logout()
    g.command("SELECT INBOX")
    lines = g.command(f"COPY 1 {pair.path()}")
    assert status_of(lines) == b"OK" and b"COPYUID" in lines[-1]
    owner = pair.server.call(pair.server.store.get_user(pair.owner_user.id))
    assert owner.used_bytes == 2 * len(SIMPLE_MESSAGE)
    pair.share("INBOX", "lr")
    assert _code(g.command(f"COPY 1 {pair.path()}")) == b"NOPERM"
    # MOVE out of a share needs "t" and "e" there
    g.command(f"SELECT {pair.path()}")
    assert _code(g.command("MOVE 1 INBOX")) in (b"READ-ONLY", b"NOPERM")
    pair.share("INBOX", "lrs")
    g.command(f"SELECT {pair.path()}")
    assert _code(g.command("MOVE 1 INBOX")) == b"NOPERM"
    pair.share("INBOX", "lrste")
    assert status_of(g.command("MOVE 1 INBOX")) == b"OK"
    owner = pair.server.call(pair.server.store.get_user(pair.owner_user.id))
    grantee = pair.server.call(pair.server.store.get_user(pair.grantee_user.id))
    assert owner.used_bytes == len(SIMPLE_MESSAGE)
    assert grantee.used_bytes == 2 * len(SIMPLE_MESSAGE)


def test_create_needs_k_and_delete_needs_x(pair: Pair) -> None:
    pair.o.command("CREATE Team")
    pair.share("Team", "lr")
    g = pair.g
    assert _code(g.command(f"CREATE {pair.path('Team/New')}")) == b"NOPERM"
    assert _code(g.command(f"CREATE {pair.path('TopLevel')}")) == b"NOPERM"
    pair.share("Team", "lrk")
    assert status_of(g.command(f"CREATE {pair.path('Team/New')}")) == b"OK"
    assert b"Team/New" in b"".join(pair.o.command('LIST "" "Team/*"'))
    # the new child starts with the parent's grants, so the grantee sees it
    assert f"Other Users/{pair.owner}/Team/New".encode() in b"".join(g.command('LIST "" "*"'))
    assert _code(g.command(f"DELETE {pair.path('Team/New')}")) == b"NOPERM"
    assert _code(g.command(f"RENAME {pair.path('Team/New')} {pair.path('Team/Old')}")) == b"NOPERM"
    pair.share("Team/New", "lrx")
    assert status_of(g.command(f"RENAME {pair.path('Team/New')} {pair.path('Team/Old')}")) == b"OK"
    assert _code(g.command(f"RENAME {pair.path('Team/Old')} Mine")) == b"CANNOT"
    assert status_of(g.command(f"DELETE {pair.path('Team/Old')}")) == b"OK"
    assert b"Team/Old" not in b"".join(pair.o.command('LIST "" "*"'))


def test_administer_right(pair: Pair) -> None:
    pair.share("INBOX", "lr")
    g = pair.g
    assert _code(g.command(f"GETACL {pair.path()}")) == b"NOPERM"
    assert _code(g.command(f"SETACL {pair.path()} anyone lr")) == b"NOPERM"
    assert g.command(f"MYRIGHTS {pair.path()}")[0] == (f"* MYRIGHTS {pair.path()} lr\r\n".encode())
    pair.share("INBOX", "lra")
    assert status_of(g.command(f"SETACL {pair.path()} anyone l")) == b"OK"
    assert g.command(f"GETACL {pair.path()}")[0] == (
        f"* ACL {pair.path()} {pair.owner} lrswipkxtecda anyone l {pair.grantee} lra\r\n".encode()
    )


def test_idle_sees_changes_made_through_a_share(pair: Pair) -> None:
    pair.share("INBOX", "lrs")
    g = pair.g
    g.command(f"SELECT {pair.path()}")
    g.send(b"i1 IDLE\r\n")
    assert g.readline().startswith(b"+")
    pair.server.deliver(pair.owner_user.id, SIMPLE_MESSAGE)
    assert g.readline() == b"* 1 EXISTS\r\n"
    assert g.readline() == b"* 1 RECENT\r\n"
    pair.o.command("SELECT INBOX")
    pair.o.command("STORE 1 +FLAGS (\\Flagged)")
    assert g.readline().startswith(b"* 1 FETCH (FLAGS (")
    g.send(b"DONE\r\n")
    assert g.read_until_tag("i1")[-1].startswith(b"i1 OK")
    # and the owner sees the grantee's changes to the shared flags
    pair.share("INBOX", "lrsw")
    assert status_of(g.command("STORE 1 +FLAGS (\\Answered)")) == b"OK"
    lines = pair.o.command("NOOP")
    assert any(b"\\Answered" in line for line in lines[:-1])


def test_revoked_rights_apply_at_the_next_command(pair: Pair) -> None:
    _append_to_owner(pair)
    pair.share("INBOX", "lrs")
    g = pair.g
    g.command(f"SELECT {pair.path()}")
    pair.share("INBOX", "lr")
    assert _code(g.command("STORE 1 +FLAGS (\\Seen)")) == b"NOPERM"


def test_imapclient_sees_the_other_users_namespace(pair: Pair) -> None:
    imapclient = pytest.importorskip("imapclient")
    pair.share("INBOX", "lr")
    c = imapclient.IMAPClient("127.0.0.1", port=pair.server.port("imap"), ssl=False)
    try:
        c.login(pair.grantee, PASSWORD)
        ns = c.namespace()
        assert ns.personal == (("", "/"),) and ns.other == (("Other Users/", "/"),)
        assert ns.shared is None
        names = [name for _flags, _sep, name in c.list_folders()]
        assert f"Other Users/{pair.owner}/INBOX" in names
        info = c.select_folder(f"Other Users/{pair.owner}/INBOX", readonly=True)
        assert info[b"EXISTS"] == 0
        assert c.getacl("INBOX") == [(pair.grantee.encode(), b"lrswipkxtecda")]
    finally:
        c.logout()


def test_imaplib_acl_methods(pair: Pair) -> None:
    c = connect(pair.server, pair.owner)
    try:
        assert c.setacl("INBOX", pair.grantee, "lrs")[0] == "OK"
        typ, data = c.getacl("INBOX")
        assert typ == "OK" and f"{pair.grantee} lrs".encode() in data[0]
        typ, data = c.myrights("INBOX")
        assert typ == "OK" and data[0].endswith(b"lrswipkxtecda")
        assert c.deleteacl("INBOX", pair.grantee)[0] == "OK"
    finally:
        c.logout()


def test_quota_root_of_a_shared_mailbox_is_not_the_grantees(pair: Pair) -> None:
    pair.server.call(pair.server.store.set_quota(pair.grantee, 10_000_000))
    pair.share("INBOX", "lr")
    lines = pair.g.command(f"GETQUOTAROOT {pair.path()}")
    assert lines[0] == f"* QUOTAROOT {pair.path()}\r\n".encode()
    assert status_of(lines) == b"OK" and len(lines) == 2
    assert b'"User quota"' in pair.g.command("GETQUOTAROOT INBOX")[0]


def test_subscribe_and_lsub_a_shared_mailbox(pair: Pair) -> None:
    pair.share("INBOX", "lr")
    assert status_of(pair.g.command(f"SUBSCRIBE {pair.path()}")) == b"OK"
    assert f'* LSUB () "/" {pair.path()}\r\n'.encode() in pair.g.command('LSUB "" "*"')
    lines = pair.g.command('LIST (SUBSCRIBED) "" "Other Users/*"')
    assert f'* LIST (\\HasNoChildren \\Subscribed) "/" {pair.path()}\r\n'.encode() in lines


def test_append_keeps_only_the_flags_the_grantee_may_set(pair: Pair) -> None:
    pair.share("INBOX", "lri")
    c = connect(pair.server, pair.grantee)
    try:
        assert c.append(pair.path(), "(\\Seen \\Flagged)", None, SIMPLE_MESSAGE)[0] == "OK"
        pair.share("INBOX", "lris")
        assert c.append(pair.path(), "(\\Seen \\Flagged)", None, SIMPLE_MESSAGE)[0] == "OK"
    finally:
        c.logout()
    pair.o.command("SELECT INBOX")
    lines = pair.o.command("FETCH 1:2 (FLAGS)")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    assert lines[1] == b"* 2 FETCH (FLAGS (\\Recent \\Seen))\r\n"


def test_selected_share_renamed_by_its_owner_keeps_its_name(pair: Pair) -> None:
    pair.o.command("CREATE Team")
    pair.share("Team", "lrx")
    g = pair.g
    g.command(f"SELECT {pair.path('Team')}")
    assert status_of(pair.o.command("RENAME Team Crew")) == b"OK"
    g.command("NOOP")
    # DELETE of the selected mailbox by its new name closes it quietly first (no BYE).
    lines = g.command(f"DELETE {pair.path('Crew')}")
    assert status_of(lines) == b"OK" and not any(b"BYE" in line for line in lines)


def test_seen_is_each_grantees_own(pair: Pair) -> None:
    """Decision 0028: in another account's mailbox \\Seen is the grantee's own, as with
    Dovecot's private index; every other flag is shared."""
    _append_to_owner(pair)
    _append_to_owner(pair, "(\\Seen)")
    pair.share("INBOX", "lrsw")
    g, o = pair.g, pair.o
    lines = g.command(f"SELECT {pair.path()}")
    assert b"* OK [UNSEEN 1] First unseen\r\n" in lines  # the owner's \Seen is not its own
    assert g.command("FETCH 1:2 (FLAGS)")[:2] == [
        b"* 1 FETCH (FLAGS (\\Recent))\r\n", b"* 2 FETCH (FLAGS (\\Recent))\r\n"]
    # a second session of the same grantee, idling, sees its \Seen change
    g2 = Raw(pair.server.port("imap"), login=pair.grantee)
    g2.command(f"EXAMINE {pair.path()}")
    g2.send(b"i1 IDLE\r\n")
    assert g2.readline().startswith(b"+")
    g.command("FETCH 1 BODY[]")
    assert g2.readline() == b"* 1 FETCH (FLAGS (\\Seen))\r\n"
    g2.send(b"DONE\r\n")
    g2.read_until_tag("i1")
    g2.close()
    o.command("SELECT INBOX")
    # (\Recent went to the grantee's session, which selected it first)
    assert o.command("FETCH 1 (FLAGS)")[0] == b"* 1 FETCH (FLAGS ())\r\n"
    assert o.command("NOOP")[:-1] == []  # nothing of the grantee's \Seen
    assert g.command(f"STATUS {pair.path()} (UNSEEN)")[0] == (
        f"* STATUS {pair.path()} (UNSEEN 1)\r\n".encode())
    assert o.command("STATUS INBOX (UNSEEN)")[0] == b'* STATUS "INBOX" (UNSEEN 1)\r\n'
    assert g.command("SEARCH UNSEEN")[0] == b"* SEARCH 2\r\n"
    assert g.command("SEARCH SEEN")[0] == b"* SEARCH 1\r\n"
    # FLAGS (...) leaves the owner's \Seen alone and sets the grantee's
    assert status_of(g.command("STORE 2 FLAGS (\\Flagged)")) == b"OK"
    assert o.command("FETCH 2 (FLAGS)")[0] == b"* 2 FETCH (FLAGS (\\Flagged \\Seen))\r\n"
    assert g.command("FETCH 2 (FLAGS)")[0] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    assert status_of(g.command("STORE 2 +FLAGS (\\Seen)")) == b"OK"
    assert g.command("SEARCH UNSEEN")[0] == b"* SEARCH\r\n"
    lines = g.command('LIST "" "Other Users/*" RETURN (STATUS (UNSEEN))')
    assert f"* STATUS {pair.path()} (UNSEEN 0)\r\n".encode() in lines
    # the owner clearing its own \Seen changes nothing for the grantee
    o.command("STORE 2 -FLAGS (\\Seen)")
    g.command("NOOP")
    assert b"\\Seen" in g.command("FETCH 2 (FLAGS)")[0]


def test_read_right_taken_away_while_selected(pair: Pair) -> None:
    _append_to_owner(pair)
    pair.share("INBOX", "lr")
    g = pair.g
    g.command(f"EXAMINE {pair.path()}")
    assert status_of(g.command("FETCH 1 (FLAGS)")) == b"OK"
    pair.share("INBOX", "l")
    for command in ("FETCH 1 (FLAGS)", "SEARCH ALL", "UID SORT (DATE) UTF-8 ALL"):
        lines = g.command(command)
        assert _code(lines) == b"NOPERM" and len(lines) == 1, (command, lines)


def test_copy_into_a_share_keeps_only_the_flags_the_grantee_may_set(pair: Pair) -> None:
    c = connect(pair.server, pair.grantee)
    try:
        append(c, SIMPLE_MESSAGE, "INBOX", "(\\Seen \\Flagged)")
    finally:
        c.logout()
    pair.share("INBOX", "lri")
    g = pair.g
    g.command("SELECT INBOX")
    assert status_of(g.command(f"COPY 1 {pair.path()}")) == b"OK"
    pair.share("INBOX", "lriw")
    assert status_of(g.command(f"COPY 1 {pair.path()}")) == b"OK"
    pair.o.command("SELECT INBOX")
    lines = pair.o.command("FETCH 1:2 (FLAGS)")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    assert lines[1] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
