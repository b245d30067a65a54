"""The admin commands end to end through click, against a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import click
import pytest
from conftest import Invoke, one_error_line

from mailstead.cli.main import cli
from mailstead.cli.serve import parse_structure
from mailstead.store.sql.sqlite import SQLiteStore


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", all_commands(cli), ids=" ".join)
def test_every_command_has_help(mailstead: Invoke, path: tuple[str, ...]) -> None:
    result = mailstead(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_domain_lifecycle(mailstead: Invoke) -> None:
    result = mailstead("domain", "add", "Example.ORG")
    assert result.stdout == "added domain example.org\n", result.output
    assert mailstead("domain", "add", "example.net").exit_code == 0
    assert mailstead("domain", "list").stdout == "example.net\nexample.org\n"
    line = one_error_line(mailstead("domain", "add", "example.org"))
    assert line == "error: domain example.org already exists"
    assert mailstead("domain", "remove", "example.net").exit_code == 0
    assert mailstead("domain", "list").stdout == "example.org\n"
    line = one_error_line(mailstead("domain", "remove", "nowhere.test"))
    assert line == "error: domain nowhere.test does not exist"


def test_domain_with_users_cannot_be_removed(mailstead: Invoke) -> None:
    mailstead("domain", "add", "example.org")
    mailstead("user", "add", "bob@example.org", "--password-stdin", input="tulip-fox-9\n")
    line = one_error_line(mailstead("domain", "remove", "example.org"))
    assert line.startswith("error: domain example.org still has")


def test_user_lifecycle(mailstead: Invoke, data_dir: Path) -> None:
    mailstead("domain", "add", "example.org")
    result = mailstead(
        "user", "add", "bob@example.org", "--quota", "1G", "--password-stdin", input="s3cret-bob\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "added user bob@example.org (quota 1G)\n"
    listing = mailstead("user", "list").stdout.splitlines()
    assert listing[0].split() == [
        "address", "quota", "used", "pop3", "plus-folders", "send-as", "state"]
    assert listing[1].split() == [
        "bob@example.org", "1G", "0", "delete", "off", "own", "active"]
    assert mailstead("user", "list", "example.net").stdout == ""

    assert mailstead("user", "quota", "bob@example.org", "500M").exit_code == 0
    assert mailstead("user", "pop3-policy", "bob@example.org", "keep").exit_code == 0
    assert mailstead("user", "plus-folders", "bob@example.org", "on").exit_code == 0
    assert mailstead("user", "send-as", "bob@example.org", "any").stdout == (
        "send-as of bob@example.org set to any (any sender address is accepted from it)\n")
    assert mailstead("user", "list").stdout.splitlines()[1].split() == [
        "bob@example.org",
        "500M",
        "0",
        "keep",
        "on",
        "any",
        "active",
    ]
    assert mailstead("user", "send-as", "bob@example.org", "own").exit_code == 0
    assert mailstead("user", "send-as", "bob@example.org", "everyone").exit_code == 2
    assert mailstead("user", "disable", "bob@example.org").exit_code == 0
    assert mailstead("user", "list").stdout.splitlines()[1].split()[-1] == "disabled"
    assert mailstead("user", "enable", "bob@example.org").stdout == "enabled bob@example.org\n"
    assert "nobody@example.org" in one_error_line(mailstead("user", "disable",
                                                            "nobody@example.org"))
    assert mailstead("user", "quota", "bob@example.org", "unlimited").exit_code == 0
    assert "unlimited" in mailstead("user", "list").stdout

    result = mailstead("user", "passwd", "bob@example.org", "--password-stdin",
                       input="new-tulip-7\n")
    assert result.exit_code == 0, result.output
    assert verify_password(data_dir, "bob@example.org", "new-tulip-7")

    line = one_error_line(
        mailstead("user", "add", "bob@example.org", "--password-stdin", input="tulip-fox-8\n")
    )
    assert line == "error: user bob@example.org already exists"

    assert mailstead("user", "remove", "bob@example.org", input="n\n").exit_code == 1
    assert "bob@example.org" in mailstead("user", "list").stdout
    assert mailstead("user", "remove", "bob@example.org", "--yes").exit_code == 0
    assert mailstead("user", "list").stdout == ""


def verify_password(data_dir: Path, address: str, password: str) -> bool:
    from mailstead.auth.passwords import verify_password as verify

    async def check() -> bool:
        store = SQLiteStore(data_dir)
        await store.open()
        try:
            user = await store.find_user(address)
            assert user is not None
            return await verify(user.password_hash, password)
        finally:
            await store.close()

    return asyncio.run(check())


def test_password_is_prompted_twice(mailstead: Invoke, data_dir: Path) -> None:
    mailstead("domain", "add", "example.org")
    result = mailstead("user", "add", "ann@example.org",
                       input="one\ntwo\nplum-tree-5\nplum-tree-5\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert "do not match" in result.output
    assert "plum-tree-5" not in result.output  # hidden input
    assert verify_password(data_dir, "ann@example.org", "plum-tree-5")


def test_empty_password_is_refused(mailstead: Invoke) -> None:
    mailstead("domain", "add", "example.org")
    line = one_error_line(mailstead("user", "add", "a@example.org", "--password-stdin", input="\n"))
    assert line == "error: the password is empty"


@pytest.mark.parametrize(("password", "reason"), [
    ("short1", "the password is too short: use at least 10 characters"),
    ("bob@example.org", "the password is too close to the account's address"),
    ("Password123", "the password is one of the most common passwords"),
])
def test_weak_passwords_are_refused(
    mailstead: Invoke, data_dir: Path, password: str, reason: str
) -> None:
    mailstead("domain", "add", "example.org")
    add = ("user", "add", "bob@example.org", "--password-stdin")
    assert one_error_line(mailstead(*add, input=f"{password}\n")).startswith(f"error: {reason}")
    assert mailstead(*add, input="tulip-fox-9\n").exit_code == 0
    passwd = ("user", "passwd", "bob@example.org", "--password-stdin")
    assert one_error_line(mailstead(*passwd, input=f"{password}\n")).startswith(
        f"error: {reason}")
    assert verify_password(data_dir, "bob@example.org", "tulip-fox-9")  # unchanged


def test_the_minimum_length_comes_from_the_configuration(
    mailstead: Invoke, config_file: Path, data_dir: Path
) -> None:
    config_file.write_text(config_file.read_text().replace(
        "[auth]\n", "[auth]\npassword_min_length = 20\npassword_check_common = false\n"))
    mailstead("domain", "add", "example.org")
    add = ("user", "add", "bob@example.org", "--password-stdin")
    line = one_error_line(mailstead(*add, input="tulip-fox-9\n"))
    assert line.startswith("error: the password is too short: use at least 20 characters")
    assert mailstead(*add, input="qwertyuiopasdfghjklzxcvbnm\n").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("user", "add", "x@nowhere.test", "--password-stdin"),
            "error: domain nowhere.test does not exist "
            "(add it first: mailstead domain add nowhere.test)",
        ),
        (
            ("user", "passwd", "nobody@example.org", "--password-stdin"),
            "error: user nobody@example.org does not exist",
        ),
        (
            ("user", "remove", "nobody@example.org", "--yes"),
            "error: user nobody@example.org does not exist",
        ),
        (
            ("user", "quota", "nobody@example.org", "1G"),
            "error: user nobody@example.org does not exist",
        ),
        (
            ("user", "send-as", "nobody@example.org", "any"),
            "error: user nobody@example.org does not exist",
        ),
        (
            ("mailbox", "list", "nobody@example.org"),
            "error: user nobody@example.org does not exist",
        ),
        (("user", "add", "not-an-address", "--password-stdin"), None),
        (("user", "add", "q@example.org", "--quota", "lots", "--password-stdin"), None),
    ],
)
def test_user_errors_are_one_line(
    mailstead: Invoke, args: tuple[str, ...], message: str | None
) -> None:
    mailstead("domain", "add", "example.org")
    line = one_error_line(mailstead(*args, input="tulip-fox-9\n"))
    assert line.startswith("error: ")
    if message:
        assert line == message


def test_usage_errors_exit_2(mailstead: Invoke) -> None:
    assert mailstead("user", "pop3-policy", "a@example.org", "shred").exit_code == 2
    assert mailstead("user", "add").exit_code == 2
    assert mailstead("frobnicate").exit_code == 2


def test_alias_lifecycle(mailstead: Invoke) -> None:
    mailstead("domain", "add", "example.org")
    result = mailstead("alias", "add", "info@example.org", "bob@example.org", "ann@elsewhere.test")
    assert result.exit_code == 0, result.output
    assert mailstead("alias", "add", "@example.org", "bob@example.org").exit_code == 0
    listing = mailstead("alias", "list").stdout
    assert "info@example.org -> " in listing
    assert "ann@elsewhere.test" in listing
    assert "@example.org -> bob@example.org" in listing
    assert mailstead("alias", "remove", "info@example.org", "ann@elsewhere.test").exit_code == 0
    assert "ann@elsewhere.test" not in mailstead("alias", "list").stdout
    assert mailstead("alias", "remove", "info@example.org").exit_code == 0
    assert mailstead("alias", "list", "example.org").stdout == "@example.org -> bob@example.org\n"
    line = one_error_line(mailstead("alias", "remove", "info@example.org"))
    assert "does not exist" in line
    line = one_error_line(mailstead("alias", "add", "x@nowhere.test", "bob@example.org"))
    assert line == "error: domain nowhere.test does not exist"


def test_group_lifecycle(mailstead: Invoke) -> None:
    mailstead("domain", "add", "example.org")
    result = mailstead("group", "add", "team@example.org", "bob@example.org", "ext@far.test")
    assert result.stdout == "added group team@example.org (2 members)\n"
    assert mailstead("group", "member", "add", "team@example.org", "ann@example.org").exit_code == 0
    listing = mailstead("group", "list").stdout
    assert listing.startswith("team@example.org: ")
    assert {m.strip() for m in listing.split(":", 1)[1].split(",")} == {
        "bob@example.org",
        "ext@far.test",
        "ann@example.org",
    }
    assert mailstead("group", "member", "remove", "team@example.org", "ext@far.test").exit_code == 0
    assert "ext@far.test" not in mailstead("group", "list").stdout
    line = one_error_line(
        mailstead("group", "member", "remove", "team@example.org", "ext@far.test")
    )
    assert "is not a member" in line
    assert mailstead("group", "remove", "team@example.org").exit_code == 0
    assert mailstead("group", "list").stdout == ""
    line = one_error_line(mailstead("group", "remove", "team@example.org"))
    assert line == "error: group team@example.org does not exist"


def test_mailbox_list_shows_the_six_default_folders(mailstead: Invoke) -> None:
    mailstead("domain", "add", "example.org")
    mailstead("user", "add", "bob@example.org", "--password-stdin", input="tulip-fox-9\n")
    lines = mailstead("mailbox", "list", "bob@example.org").stdout.splitlines()
    assert lines[0].split() == ["name", "special-use", "messages", "unseen", "size"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows == {
        "INBOX": ["-", "0", "0", "0"],
        "Sent": ["\\Sent", "0", "0", "0"],
        "Drafts": ["\\Drafts", "0", "0", "0"],
        "Trash": ["\\Trash", "0", "0", "0"],
        "Junk": ["\\Junk", "0", "0", "0"],
        "Archive": ["\\Archive", "0", "0", "0"],
    }


def test_share_grant_list_revoke(mailstead: Invoke) -> None:
    mailstead("domain", "add", "example.org")
    for who in ("team@example.org", "bob@example.org"):
        mailstead("user", "add", who, "--password-stdin", input="tulip-fox-9\n")
    done = mailstead("share", "grant", "team@example.org", "INBOX", "bob@example.org", "lrs")
    assert done.stdout == "bob@example.org has lrs on team@example.org INBOX\n"
    done = mailstead("share", "grant", "team@example.org", "INBOX", "bob@example.org", "+c")
    assert "has lrskx on" in done.stdout
    mailstead("share", "grant", "team@example.org", "Sent", "anyone", "l")
    lines = mailstead("share", "list", "team@example.org").stdout.splitlines()
    assert [line.split() for line in lines] == [
        ["mailbox", "grantee", "rights"],
        ["INBOX", "bob@example.org", "lrskx"],
        ["Sent", "anyone", "l"],
    ]
    line = one_error_line(
        mailstead("share", "grant", "team@example.org", "INBOX", "bob@example.org", "lz")
    )
    assert line == "error: unknown right 'z'"
    line = one_error_line(
        mailstead("share", "grant", "team@example.org", "INBOX", "nobody@example.org", "l")
    )
    assert "nobody@example.org" in line
    mailstead("share", "revoke", "team@example.org", "INBOX", "bob@example.org")
    assert "bob@example.org" not in mailstead("share", "list", "team@example.org").stdout


def test_listing_a_missing_data_dir_says_so(mailstead: Invoke, tmp_path: Path) -> None:
    line = one_error_line(mailstead("domain", "list", "--data", str(tmp_path / "typo")))
    assert (
        line
        == f"error: no mailstore in {tmp_path / 'typo'} (add a domain or start the server first)"
    )


def test_data_option_after_the_subcommand(mailstead: Invoke, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert mailstead("domain", "add", "a.test", "--data", str(other)).exit_code == 0
    assert mailstead("domain", "list", "--data", str(other)).stdout == "a.test\n"
    assert mailstead("domain", "list").stdout == ""


def test_config_check_good(mailstead: Invoke, config_file: Path) -> None:
    result = mailstead("config", "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# {config_file}: valid\n")
    assert "argon2_time_cost = 1" in result.stdout
    assert f'data_dir = "{config_file.parent / "data"}"' in result.stdout
    assert "[listeners.imaps]" in result.stdout


def test_config_check_bad_file(mailstead: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listeners.imap]\nport = 99999\n", encoding="utf-8")
    line = one_error_line(mailstead("config", "check", str(bad)))
    assert line == (
        f"error: {bad}: listeners.imap.port: must be an integer between 1 and 65535, got 99999"
    )
    bad.write_text("[limits\n", encoding="utf-8")
    line = one_error_line(mailstead("config", "check", str(bad)))
    assert line.startswith(f"error: {bad}: invalid TOML") and "line 1" in line


def test_bad_config_fails_every_command_in_one_line(mailstead: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("unknown = true\n", encoding="utf-8")
    line = one_error_line(mailstead("domain", "list", "--config", str(bad)))
    assert line == f"error: {bad}: unknown: unknown key"


def test_unexpected_exceptions_are_one_line_unless_debug(
    mailstead: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: object) -> list[object]:
        raise RuntimeError("disk on fire")

    mailstead("domain", "add", "example.org")
    monkeypatch.setattr(SQLiteStore, "list_domains", boom)
    line = one_error_line(mailstead("domain", "list"))
    assert line == "internal error: RuntimeError: disk on fire"
    result = mailstead("--debug", "domain", "list")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "internal error: RuntimeError: disk on fire"


def test_index_rebuild(mailstead: Invoke, data_dir: Path) -> None:
    """Messages stored without the SEARCH index (as before it existed) get their rows from
    ``mailstead index rebuild``, for one account or every one (decision 0027)."""
    mailstead("domain", "add", "example.org")
    for who in ("bob", "eve"):
        mailstead("user", "add", f"{who}@example.org", "--password-stdin", input="tulip-fox-9\n")

    async def store_unindexed() -> None:
        async with SQLiteStore(data_dir, parse=parse_structure) as store:
            for who in ("bob", "eve"):
                user = await store.find_user(f"{who}@example.org")
                assert user is not None
                inbox = await store.get_mailbox(user.id, "INBOX")
                await store.append(inbox.id, f"Subject: {who}\r\n\r\nhello {who}\r\n".encode())

    asyncio.run(store_unindexed())
    result = mailstead("index", "rebuild", "--account", "bob@example.org")
    assert result.stdout == "indexed 1 messages\n", result.output
    assert mailstead("index", "rebuild").stdout == "indexed 2 messages\n"
    with sqlite3.connect(data_dir / "mailstead.db") as conn:
        assert conn.execute("SELECT count(*) FROM search_bodies").fetchone() == (2,)
        hits = conn.execute("SELECT count(*) FROM search_text WHERE search_text MATCH"
                            " '{body} : \"hello eve\"'").fetchone()
        assert hits == (1,)
    line = one_error_line(mailstead("index", "rebuild", "--account", "nobody@example.org"))
    assert line == "error: user nobody@example.org does not exist"
