"""Admin commands: domains, users, aliases, groups, mailboxes and message import.

They open the mailstore directly (SQLite in WAL mode lets them run beside a live server),
do one thing and close it. Errors from the store already read as sentences ("user
bob@example.org does not exist"); the top-level group prints them as one line, exit 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from mailstead.auth.password_rules import MAX_LENGTH
from mailstead.cli.serve import open_store, password_policy, password_rules
from mailstead.cli.tables import format_table
from mailstead.config.load import load_settings
from mailstead.config.schema import Settings, format_size, parse_size
from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.types import Pop3Policy, SendAs
from mailstead.store.interfaces import Store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """What the global options chose; commands ask it for settings and a store."""

    config: Path | None = None
    data: str | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, data_dir_override=self.data)
        return self._settings

    def run(self, work: Callable[[Store], Awaitable[T]], *, create: bool = True) -> T:
        """Open the store, run ``work`` on it, close it: one event loop per command."""

        async def main() -> T:
            async with open_store(self.settings(), create=create) as store:
                return await work(store)

        return asyncio.run(main())


def location_options(command: F) -> F:
    """``--config`` and ``--data`` after the subcommand too (``mailstead serve --data X``)."""

    def set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.ensure_object(CliState).config = value

    def set_data(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(CliState).data = value

    command = click.option(
        "--data",
        type=click.Path(file_okay=False),
        expose_value=False,
        callback=set_data,
        help="Data directory (overrides MAILSTEAD_DATA and the file).",
    )(command)
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=set_config,
        help="Configuration file (TOML).",
    )(command)


def _quota_text(quota: int) -> str:
    return "unlimited" if quota == 0 else format_size(quota)


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InvalidName(f"quota {exc}") from None


def _read_password(password_stdin: bool) -> str:
    """One line from stdin, or a hidden prompt asked twice so a typo cannot lock anyone out."""
    if password_stdin:
        # Bounded: one byte past the longest allowed password is enough to refuse it.
        password = sys.stdin.readline(MAX_LENGTH + 2).rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InvalidName("the password is empty")
    return password


def _chosen_password_hash(state: CliState, address: str, password_stdin: bool) -> str:
    """Read a password, check it against the password rules, and hash it. A weak one is
    refused (one line, exit 1) before anything is stored."""
    from mailstead.auth.password_rules import check_new_password
    from mailstead.auth.passwords import hash_password

    settings = state.settings()
    password = _read_password(password_stdin)
    check_new_password(password, address, password_rules(settings))
    return hash_password(password, password_policy(settings))


def _require_user_domain(address: str) -> Callable[[Store], Awaitable[None]]:
    async def check(store: Store) -> None:
        _, _, domain = address.rpartition("@")
        if not domain or not await store.has_domain(domain.lower()):
            raise NotFound(
                f"domain {domain.lower() or '?'} does not exist "
                f"(add it first: mailstead domain add {domain.lower() or 'DOMAIN'})"
            )

    return check


# -- domain --------------------------------------------------------------------------------


@click.group()
def domain() -> None:
    """Add, list and remove mail domains."""


@domain.command("add")
@click.argument("name")
@click.pass_obj
def domain_add(state: CliState, name: str) -> None:
    """Accept mail for domain NAME."""
    created = state.run(lambda store: store.add_domain(name))
    click.echo(f"added domain {created.name}")


@domain.command("list")
@click.pass_obj
def domain_list(state: CliState) -> None:
    """List domains, one a line."""
    for item in state.run(lambda store: store.list_domains(), create=False):
        click.echo(item.name)


@domain.command("remove")
@click.argument("name")
@click.pass_obj
def domain_remove(state: CliState, name: str) -> None:
    """Remove domain NAME; it must have no users, aliases or groups left."""
    state.run(lambda store: store.remove_domain(name))
    click.echo(f"removed domain {name.lower()}")


# -- user ----------------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Manage accounts: the user name is the full e-mail address."""


@user.command("add")
@click.argument("address")
@click.option(
    "--quota", default="0", show_default=True, help="Storage quota: 500M, 2G, 0 = unlimited."
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.pass_obj
def user_add(state: CliState, address: str, quota: str, password_stdin: bool) -> None:
    """Create the account ADDRESS with INBOX, Sent, Drafts, Trash, Junk and Archive.

    The domain must exist. Without --password-stdin the password is asked twice. The
    password must follow the password rules ([auth] password_min_length, at least 10
    characters by default; not the address or its parts; not a common password).
    """
    quota_bytes = _size_arg(quota)
    state.run(_require_user_domain(address))
    password_hash = _chosen_password_hash(state, address, password_stdin)
    created = state.run(
        lambda store: store.add_user(address, password_hash, quota_bytes=quota_bytes)
    )
    click.echo(f"added user {created.address} (quota {_quota_text(created.quota_bytes)})")


@user.command("list")
@click.argument("domain", required=False)
@click.pass_obj
def user_list(state: CliState, domain: str | None) -> None:
    """List accounts (of DOMAIN only, if given) with quota and usage."""
    users = state.run(lambda store: store.list_users(domain), create=False)
    rows = [
        (
            u.address,
            _quota_text(u.quota_bytes),
            format_size(u.used_bytes),
            u.pop3_policy,
            "on" if u.plus_folders else "off",
            u.send_as,
            "disabled" if u.disabled else "active",
        )
        for u in users
    ]
    if rows:
        click.echo(format_table(
            ("address", "quota", "used", "pop3", "plus-folders", "send-as", "state"), rows))


@user.command("passwd")
@click.argument("address")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.pass_obj
def user_passwd(state: CliState, address: str, password_stdin: bool) -> None:
    """Set a new password for ADDRESS; it must follow the password rules (see user add)."""
    _ensure_user(state, address)
    password_hash = _chosen_password_hash(state, address, password_stdin)
    state.run(lambda store: store.set_password(address, password_hash))
    click.echo(f"password changed for {address}")


@user.command("disable")
@click.argument("address")
@click.pass_obj
def user_disable(state: CliState, address: str) -> None:
    """Stop ADDRESS from logging in and receiving mail; its mail is kept. Logins fail as a
    wrong password does; mail for it is refused with 550 5.2.1 (Mailbox disabled)."""
    _ensure_user(state, address)
    state.run(lambda store: store.set_disabled(address, True))
    click.echo(f"disabled {address} (its mail is kept; `user enable` undoes this)")


@user.command("enable")
@click.argument("address")
@click.pass_obj
def user_enable(state: CliState, address: str) -> None:
    """Let a disabled ADDRESS log in and receive mail again."""
    _ensure_user(state, address)
    state.run(lambda store: store.set_disabled(address, False))
    click.echo(f"enabled {address}")


@user.command("remove")
@click.argument("address")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def user_remove(state: CliState, address: str, yes: bool) -> None:
    """Delete the account ADDRESS and all of its mail."""
    _ensure_user(state, address)
    if not yes:
        click.confirm(f"Remove {address} and all of its mail?", abort=True, err=True)
    state.run(lambda store: store.remove_user(address))
    click.echo(f"removed user {address}")


@user.command("quota")
@click.argument("address")
@click.argument("size")
@click.pass_obj
def user_quota(state: CliState, address: str, size: str) -> None:
    """Set the storage quota of ADDRESS: 500M, 2G, or 0 / unlimited."""
    quota_bytes = _size_arg(size)
    state.run(lambda store: store.set_quota(address, quota_bytes))
    click.echo(f"quota of {address} set to {_quota_text(quota_bytes)}")


@user.command("pop3-policy")
@click.argument("address")
@click.argument("policy", type=click.Choice([p.value for p in Pop3Policy]))
@click.pass_obj
def user_pop3_policy(state: CliState, address: str, policy: str) -> None:
    """What POP3 deletion does for ADDRESS: delete, keep, mark-read or archive."""
    state.run(lambda store: store.set_pop3_policy(address, Pop3Policy(policy)))
    click.echo(f"POP3 policy of {address} set to {policy}")


@user.command("plus-folders")
@click.argument("address")
@click.argument("setting", type=click.Choice(("on", "off")))
@click.pass_obj
def user_plus_folders(state: CliState, address: str, setting: str) -> None:
    """Deliver user+tag@ mail into the folder "tag" when it exists (on) or INBOX (off)."""
    state.run(lambda store: store.set_plus_folders(address, setting == "on"))
    click.echo(f"plus-folders for {address} turned {setting}")


@user.command("send-as")
@click.argument("address")
@click.argument("setting", type=click.Choice([s.value for s in SendAs]))
@click.pass_obj
def user_send_as(state: CliState, address: str, setting: str) -> None:
    """Which senders ADDRESS may submit mail as: own (its address, its +tags and the
    aliases that deliver to it; the default) or any. Checked on MAIL FROM and on the
    header From: and Sender:; anything else is refused with 553/550 5.7.1."""
    state.run(lambda store: store.set_send_as(address, SendAs(setting)))
    note = " (any sender address is accepted from it)" if setting == SendAs.ANY else ""
    click.echo(f"send-as of {address} set to {setting}{note}")


def _ensure_user(state: CliState, address: str) -> None:
    async def check(store: Store) -> None:
        if await store.find_user(address) is None:
            raise NotFound(f"user {address} does not exist")

    state.run(check, create=False)


# -- alias ---------------------------------------------------------------------------------


@click.group()
def alias() -> None:
    """Forward an address to one or more others; @domain is the catch-all."""


@alias.command("add")
@click.argument("source")
@click.argument("targets", nargs=-1, required=True)
@click.pass_obj
def alias_add(state: CliState, source: str, targets: tuple[str, ...]) -> None:
    """Deliver mail for SOURCE to every TARGET (added to existing targets).

    SOURCE is local@domain, or @domain for a catch-all that takes mail for every address
    of the domain that is not a user, alias or group.
    """
    created = state.run(lambda store: store.add_alias(source, list(targets)))
    click.echo(f"alias {created.source} -> {', '.join(created.targets)}")


@alias.command("list")
@click.argument("domain", required=False)
@click.pass_obj
def alias_list(state: CliState, domain: str | None) -> None:
    """List aliases (of DOMAIN only, if given)."""
    for item in state.run(lambda store: store.list_aliases(domain), create=False):
        click.echo(f"{item.source} -> {', '.join(item.targets)}")


@alias.command("remove")
@click.argument("source")
@click.argument("target", required=False)
@click.pass_obj
def alias_remove(state: CliState, source: str, target: str | None) -> None:
    """Remove the alias SOURCE, or only its TARGET."""
    state.run(lambda store: store.remove_alias(source, target))
    click.echo(f"removed alias {source}{' -> ' + target if target else ''}")


# -- group ---------------------------------------------------------------------------------


@click.group()
def group() -> None:
    """Group addresses: mail to the group goes to every member (members may be external)."""


@group.command("add")
@click.argument("address")
@click.argument("members", nargs=-1)
@click.pass_obj
def group_add(state: CliState, address: str, members: tuple[str, ...]) -> None:
    """Create the group ADDRESS with the given MEMBERs."""
    created = state.run(lambda store: store.add_group(address, list(members)))
    click.echo(f"added group {created.address} ({len(created.members)} members)")


@group.command("list")
@click.argument("domain", required=False)
@click.pass_obj
def group_list(state: CliState, domain: str | None) -> None:
    """List groups with their members."""
    for item in state.run(lambda store: store.list_groups(domain), create=False):
        click.echo(f"{item.address}: {', '.join(item.members) or '(no members)'}")


@group.command("remove")
@click.argument("address")
@click.pass_obj
def group_remove(state: CliState, address: str) -> None:
    """Delete the group ADDRESS."""
    state.run(lambda store: store.remove_group(address))
    click.echo(f"removed group {address}")


@group.group("member")
def group_member() -> None:
    """Add or remove members of a group."""


@group_member.command("add")
@click.argument("address")
@click.argument("member")
@click.pass_obj
def group_member_add(state: CliState, address: str, member: str) -> None:
    """Add MEMBER to the group ADDRESS."""
    state.run(lambda store: store.add_group_member(address, member))
    click.echo(f"added {member} to {address}")


@group_member.command("remove")
@click.argument("address")
@click.argument("member")
@click.pass_obj
def group_member_remove(state: CliState, address: str, member: str) -> None:
    """Remove MEMBER from the group ADDRESS."""
    state.run(lambda store: store.remove_group_member(address, member))
    click.echo(f"removed {member} from {address}")


# -- mailbox and message -------------------------------------------------------------------


@click.group()
def mailbox() -> None:
    """Inspect a user's folders."""


@mailbox.command("list")
@click.argument("address")
@click.pass_obj
def mailbox_list(state: CliState, address: str) -> None:
    """Folders of ADDRESS with special-use, message and unseen counts and size."""

    async def work(store: Store) -> list[tuple[object, ...]]:
        account = await store.find_user(address)
        if account is None:
            raise NotFound(f"user {address} does not exist")
        return [
            (
                m.name,
                m.special_use or "-",
                m.message_count,
                m.unseen_count,
                format_size(m.size_bytes),
            )
            for m in await store.list_mailboxes(account.id)
        ]

    rows = state.run(work, create=False)
    click.echo(format_table(("name", "special-use", "messages", "unseen", "size"), rows))


@click.group()
def message() -> None:
    """Move mail in from elsewhere."""


@message.command("import")
@click.argument("address")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--folder", "-f", help="Target folder (created if missing). Default: INBOX.")
@click.pass_obj
def message_import(state: CliState, address: str, path: Path, folder: str | None) -> None:
    """Import an mbox file or a Maildir directory at PATH into the account ADDRESS.

    \b
    mbox: messages split at "From " lines; ">From " lines are unescaped (mboxrd); the
      date of each From line becomes the internal date; Status/X-Status flags are kept.
    Maildir: cur/ and new/; flags S,R,F,T,D become \\Seen, \\Answered, \\Flagged,
      \\Deleted, \\Draft; the file time becomes the internal date. Without --folder, a
      whole Maildir++ tree is imported: the top level into INBOX and each subfolder
      ".Sub.Folder" into "Sub/Folder". With --folder, only the top level is imported.

    Messages are stored with CRLF line endings, as IMAP requires (bare LF becomes CRLF);
    nothing else in the bytes changes.
    """
    from mailstead.cli.importer import import_path

    settings = state.settings()
    reports = state.run(
        lambda store: import_path(
            store, address, path, folder, max_size=settings.limits.max_message_size,
            spool=settings.data_dir / "spool",
        )
    )
    for report in reports:
        click.echo(report.summary())


@click.command("check")
@click.pass_obj
def check(state: CliState) -> None:
    """Check the whole mailstore: SQLite's full integrity check, foreign keys, every
    account's quota counter, and that every message body is present.

    Exit status 0 and "mailstore OK", or 1 and one line per problem. The server runs a
    quick check at every start; this one reads everything and may take a while on a large
    store. What to do about a problem: "Damaged database" in the user guide.
    """
    problems = state.run(lambda store: store.integrity_check(), create=False)
    if not problems:
        click.echo("mailstore OK")
        return
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    raise click.exceptions.Exit(1)


def _leaves(command: click.Command) -> list[click.Command]:
    if isinstance(command, click.Group):
        return [leaf for sub in command.commands.values() for leaf in _leaves(sub)]
    return [command]


def register(root: click.Group) -> None:
    """Attach the admin groups to the top-level command; every admin command also takes
    ``--config``/``--data`` after its name, where people tend to type them."""
    location_params = location_options(click.Command("_")).params
    # These build on CliState, defined here.
    from mailstead.cli.backup import backup, restore
    from mailstead.cli.status import status

    for command in (domain, user, alias, group, mailbox, message, check, backup, restore,
                    status):
        for leaf in _leaves(command):
            leaf.params.extend(location_params)
        root.add_command(command)
