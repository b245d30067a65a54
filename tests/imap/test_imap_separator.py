"""``[imap] hierarchy_separator = "."``: names are translated at the IMAP boundary only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailstead.imap.names import NameMapper
from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, Raw, imap_config, status_of


@pytest.fixture(scope="module")
def dot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {**imap_config(), "imap": {"hierarchy_separator": "."}}
    with ServerThread(tmp_path_factory.mktemp("imap-dot"), config) as srv:
        srv.add_user("dot@example.com", PASSWORD)
        yield srv


def test_name_mapper_round_trip() -> None:
    dot = NameMapper(".")
    assert dot.to_store("a.b.c") == "a/b/c" and dot.to_imap("a/b/c") == "a.b.c"
    assert dot.pattern_to_store("INBOX.%") == "INBOX/%"
    assert NameMapper("/").to_store("a.b") == "a.b"  # the default changes nothing
    with pytest.raises(ValueError):
        NameMapper("\\")


def test_dot_separator_list_create_rename(dot_server: ServerThread) -> None:
    r = Raw(dot_server.port("imap"), login="dot@example.com")
    assert r.command('LIST "" ""')[0] == b'* LIST (\\Noselect) "." ""\r\n'
    assert status_of(r.command("CREATE work.reports")) == b"OK"
    lines = r.command('LIST "" "work*"')
    assert b'* LIST (\\HasChildren) "." "work"\r\n' in lines
    assert b'* LIST (\\HasNoChildren) "." "work.reports"\r\n' in lines
    assert r.command('LIST "" "work.%"')[0] == b'* LIST (\\HasNoChildren) "." "work.reports"\r\n'
    assert status_of(r.command("RENAME work.reports work.archive")) == b"OK"
    assert status_of(r.command("SELECT work.archive")) == b"OK"
    assert r.command("NAMESPACE")[0] == b'* NAMESPACE (("" ".")) (("Other Users." ".")) NIL\r\n'
    # The store holds "work/archive": the separator never reaches it.
    user = dot_server.call(dot_server.store.find_user("dot@example.com"))
    assert user is not None
    names = {b.name for b in dot_server.call(dot_server.store.list_mailboxes(user.id))}
    assert "work/archive" in names
    r.close()


def test_dot_separator_refuses_slash_in_names(dot_server: ServerThread) -> None:
    r = Raw(dot_server.port("imap"), login="dot@example.com")
    lines = r.command('CREATE "a/b"')
    assert lines[-1].startswith(b"t2 NO [CANNOT] ") and b"'/'" in lines[-1]
    assert r.command('LIST "" "a/b"') == [b"t3 OK LIST completed\r\n"]
    r.close()


def test_dot_separator_other_users_namespace(dot_server: ServerThread) -> None:
    """Under ".", the dots of the owner's address arrive as levels; the owner is found as
    the longest run of levels that is an account (decision 0028)."""
    owner = dot_server.add_user("share.owner@mail.example.com", PASSWORD)
    dot_server.add_user("reader@example.com", PASSWORD)

    async def grant() -> None:
        box = await dot_server.store.create_mailbox(owner.id, "Team/Sub")
        await dot_server.store.set_acl(box.id, "reader@example.com", "lr")

    dot_server.call(grant())
    r = Raw(dot_server.port("imap"), login="reader@example.com")
    assert r.command("NAMESPACE")[0] == b'* NAMESPACE (("" ".")) (("Other Users." ".")) NIL\r\n'
    path = "Other Users.share.owner@mail.example.com.Team.Sub"
    assert f'* LIST (\\HasNoChildren) "." "{path}"\r\n'.encode() in r.command('LIST "" "*"')
    assert status_of(r.command(f'SELECT "{path}"')) == b"OK"
    assert status_of(r.command('SELECT "Other Users.share.owner@mail.example.com.Nope"')) == b"NO"
    r.close()
