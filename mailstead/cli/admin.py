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

from mailstead.admin.actors import Actor, command_line
from mailstead.admin.service import Admin
from mailstead.auth.password_rules import MAX_LENGTH
from mailstead.cli.serve import build_admin, open_store
from mailstead.cli.tables import format_table
from mailstead.config.load import load_settings
from mailstead.config.schema import Settings, format_size, parse_size
from mailstead.core.errors import InvalidName
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

    def admin(self, work: Callable[[Admin, Actor], Awaitable[T]], *, create: bool = True) -> T:
        """Run an admin operation as the person at the command line (audited as such)."""
        actor = command_line()

        async def main() -> T:
            async with open_store(self.settings(), create=create) as store:
                return await work(build_admin(store, self.settings()), actor)

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
    return password




# -- domain --------------------------------------------------------------------------------


@click.group()
def domain() -> None:
    """Add, list and remove mail domains."""


@domain.command("add")
@click.argument("name")
@click.pass_obj
def domain_add(state: CliState, name: str) -> None:
    """Accept mail for domain NAME."""
    created = state.admin(lambda admin, me: admin.add_domain(me, name))
    click.echo(f"added domain {created.name}")


@domain.command("list")
@click.pass_obj
def domain_list(state: CliState) -> None:
    """List domains, one a line."""
    for item in state.admin(lambda admin, me: admin.list_domains(me), create=False):
        click.echo(item.name)


@domain.command("remove")
@click.argument("name")
@click.pass_obj
def domain_remove(state: CliState, name: str) -> None:
    """Remove domain NAME; it must have no users, aliases or groups left."""
    state.admin(lambda admin, me: admin.remove_domain(me, name))
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
    state.admin(lambda admin, _me: admin.require_domain(address))  # before asking
    password = _read_password(password_stdin)
    created = state.admin(
        lambda admin, me: admin.add_user(me, address, password, quota_bytes=quota_bytes)
    )
    click.echo(f"added user {created.address} (quota {_quota_text(created.quota_bytes)})")


@user.command("list")
@click.argument("domain", required=False)
@click.pass_obj
def user_list(state: CliState, domain: str | None) -> None:
    """List accounts (of DOMAIN only, if given) with quota and usage."""
    users = state.admin(lambda admin, me: admin.list_users(me, domain), create=False)
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
    password = _read_password(password_stdin)
    state.admin(lambda admin, me: admin.set_password(me, address, password))
    click.echo(f"password changed for {address}")


@user.command("disable")
@click.argument("address")
@click.pass_obj
def user_disable(state: CliState, address: str) -> None:
    """Stop ADDRESS from logging in and receiving mail; its mail is kept. Logins fail as a
    wrong password does; mail for it is refused with 550 5.2.1 (Mailbox disabled)."""
    state.admin(lambda admin, me: admin.set_disabled(me, address, True), create=False)
    click.echo(f"disabled {address} (its mail is kept; `user enable` undoes this)")


@user.command("enable")
@click.argument("address")
@click.pass_obj
def user_enable(state: CliState, address: str) -> None:
    """Let a disabled ADDRESS log in and receive mail again."""
    state.admin(lambda admin, me: admin.set_disabled(me, address, False), create=False)
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
    state.admin(lambda admin, me: admin.remove_user(me, address), create=False)
    click.echo(f"removed user {address}")


@user.command("quota")
@click.argument("address")
@click.argument("size")
@click.pass_obj
def user_quota(state: CliState, address: str, size: str) -> None:
    """Set the storage quota of ADDRESS: 500M, 2G, or 0 / unlimited."""
    quota_bytes = _size_arg(size)
    state.admin(lambda admin, me: admin.set_quota(me, address, quota_bytes))
    click.echo(f"quota of {address} set to {_quota_text(quota_bytes)}")


@user.command("pop3-policy")
@click.argument("address")
@click.argument("policy", type=click.Choice([p.value for p in Pop3Policy]))
@click.pass_obj
def user_pop3_policy(state: CliState, address: str, policy: str) -> None:
    """What POP3 deletion does for ADDRESS: delete, keep, mark-read or archive."""
    state.admin(lambda admin, me: admin.set_pop3_policy(me, address, Pop3Policy(policy)))
    click.echo(f"POP3 policy of {address} set to {policy}")


@user.command("plus-folders")
@click.argument("address")
@click.argument("setting", type=click.Choice(("on", "off")))
@click.pass_obj
def user_plus_folders(state: CliState, address: str, setting: str) -> None:
    """Deliver user+tag@ mail into the folder "tag" when it exists (on) or INBOX (off)."""
    state.admin(lambda admin, me: admin.set_plus_folders(me, address, setting == "on"))
    click.echo(f"plus-folders for {address} turned {setting}")


@user.command("send-as")
@click.argument("address")
@click.argument("setting", type=click.Choice([s.value for s in SendAs]))
@click.pass_obj
def user_send_as(state: CliState, address: str, setting: str) -> None:
    """Which senders ADDRESS may submit mail as: own (its address, its +tags and the
    aliases that deliver to it; the default) or any. Checked on MAIL FROM and on the
    header From: and Sender:; anything else is refused with 553/550 5.7.1."""
    state.admin(lambda admin, me: admin.set_send_as(me, address, SendAs(setting)),
                create=False)
    note = " (any sender address is accepted from it)" if setting == SendAs.ANY else ""
    click.echo(f"send-as of {address} set to {setting}{note}")


def _ensure_user(state: CliState, address: str) -> None:
    state.admin(lambda admin, me: admin.get_user(me, address), create=False)


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
    created = state.admin(lambda admin, me: admin.add_alias(me, source, targets))
    click.echo(f"alias {created.source} -> {', '.join(created.targets)}")


@alias.command("list")
@click.argument("domain", required=False)
@click.pass_obj
def alias_list(state: CliState, domain: str | None) -> None:
    """List aliases (of DOMAIN only, if given)."""
    for item in state.admin(lambda admin, me: admin.list_aliases(me, domain), create=False):
        click.echo(f"{item.source} -> {', '.join(item.targets)}")


@alias.command("remove")
@click.argument("source")
@click.argument("target", required=False)
@click.pass_obj
def alias_remove(state: CliState, source: str, target: str | None) -> None:
    """Remove the alias SOURCE, or only its TARGET."""
    state.admin(lambda admin, me: admin.remove_alias(me, source, target))
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
    created = state.admin(lambda admin, me: admin.add_group(me, address, members))
    click.echo(f"added group {created.address} ({len(created.members)} members)")


@group.command("list")
@click.argument("domain", required=False)
@click.pass_obj
def group_list(state: CliState, domain: str | None) -> None:
    """List groups with their members."""
    for item in state.admin(lambda admin, me: admin.list_groups(me, domain), create=False):
        click.echo(f"{item.address}: {', '.join(item.members) or '(no members)'}")


@group.command("remove")
@click.argument("address")
@click.pass_obj
def group_remove(state: CliState, address: str) -> None:
    """Delete the group ADDRESS."""
    state.admin(lambda admin, me: admin.remove_group(me, address))
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
    state.admin(lambda admin, me: admin.add_group_member(me, address, member))
    click.echo(f"added {member} to {address}")


@group_member.command("remove")
@click.argument("address")
@click.argument("member")
@click.pass_obj
def group_member_remove(state: CliState, address: str, member: str) -> None:
    """Remove MEMBER from the group ADDRESS."""
    state.admin(lambda admin, me: admin.remove_group_member(me, address, member))
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

    async def work(admin: Admin, me: Actor) -> list[tuple[object, ...]]:
        return [
            (
                m.name,
                m.special_use or "-",
                m.message_count,
                m.unseen_count,
                format_size(m.size_bytes),
            )
            for m in await admin.list_mailboxes(me, address)
        ]

    rows = state.admin(work, create=False)
    click.echo(format_table(("name", "special-use", "messages", "unseen", "size"), rows))


# -- share ---------------------------------------------------------------------------------


@click.group()
def share() -> None:
    """Lend an account's folders to other accounts (IMAP ACL, RFC 4314).

    The other account sees the folder as "Other Users/OWNER/MAILBOX". Rights are letters:
    l (list), r (read), s (keep \\Seen), w (other flags), i (insert), p (post), k (create
    subfolders), x (delete), t (\\Deleted), e (expunge), a (administer); c means kx and d
    means et. The owner always has them all.
    """


@share.command("grant")
@click.argument("owner")
@click.argument("mailbox")
@click.argument("grantee")
@click.argument("rights")
@click.pass_obj
def share_grant(state: CliState, owner: str, mailbox: str, grantee: str, rights: str) -> None:
    """Give GRANTEE (an account address, or anyone) RIGHTS on OWNER's MAILBOX.

    RIGHTS replaces the grant ("lrs"), or adds to it ("+w") or takes from it ("-w").
    """
    now = state.admin(lambda admin, me: admin.share_grant(me, owner, mailbox, grantee, rights))
    click.echo(f"{grantee} has {now or 'no rights'} on {owner} {mailbox}")


@share.command("revoke")
@click.argument("owner")
@click.argument("mailbox")
@click.argument("grantee")
@click.pass_obj
def share_revoke(state: CliState, owner: str, mailbox: str, grantee: str) -> None:
    """Take every right on OWNER's MAILBOX from GRANTEE."""
    state.admin(lambda admin, me: admin.share_revoke(me, owner, mailbox, grantee))
    click.echo(f"{grantee} has no rights on {owner} {mailbox}")


@share.command("list")
@click.argument("owner")
@click.pass_obj
def share_list(state: CliState, owner: str) -> None:
    """Every grant on OWNER's folders."""

    async def work(admin: Admin, me: Actor) -> list[tuple[object, ...]]:
        return [(name, e.identifier, e.rights) for name, e in await admin.share_list(me, owner)]

    rows = state.admin(work, create=False)
    click.echo(format_table(("mailbox", "grantee", "rights"), rows))


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
    reports = state.admin(
        lambda admin, me: admin.import_messages(me, address, path, folder)
    )
    for report in reports:
        click.echo(report.summary())


@click.group()
def index() -> None:
    """The full-text index behind IMAP SEARCH."""


@index.command("rebuild")
@click.option("--account", "-a", metavar="ADDRESS",
              help="Only this account's messages. Default: every account.")
@click.pass_obj
def index_rebuild(state: CliState, account: str | None) -> None:
    """Write the SEARCH index again from the stored messages.

    Not needed in normal operation: every message is indexed when it is stored, and the
    server indexes messages stored before the index existed in the background when it
    starts. Use it after changing [store] index_text_limit, or if the index is suspected
    damaged. The server may keep running: searches stay exact while it works (a message
    without its index row is scanned), only slower.
    """
    report = state.admin(lambda admin, me: admin.rebuild_index(me, account), create=False)
    skipped = f", {report.skipped} scanned instead (no text structure)" if report.skipped else ""
    click.echo(f"indexed {report.indexed} messages{skipped}")


@click.command("check")
@click.pass_obj
def check(state: CliState) -> None:
    """Check the whole mailstore: SQLite's full integrity check, foreign keys, every
    account's quota counter, and that every message body is present.

    Exit status 0 and "mailstore OK", or 1 and one line per problem. The server runs a
    quick check at every start; this one reads everything and may take a while on a large
    store. What to do about a problem: "Damaged database" in the user guide.
    """
    problems = state.admin(lambda admin, me: admin.integrity_check(me), create=False)
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


def attach(root: click.Group, *commands: click.Command) -> None:
    """Add ``commands`` to the top-level command; each of their leaf commands also takes
    ``--config``/``--data`` after its name, where people tend to type them."""
    location_params = location_options(click.Command("_")).params
    for command in commands:
        for leaf in _leaves(command):
            leaf.params.extend(location_params)
        root.add_command(command)


def register(root: click.Group) -> None:
    """Attach the admin groups to the top-level command."""
    # These build on CliState, defined here.
    from mailstead.cli.access import audit, token
    from mailstead.cli.backup import backup, restore
    from mailstead.cli.setup import setup
    from mailstead.cli.status import status

    attach(root, domain, user, alias, group, mailbox, share, message, index, check, backup,
           restore, status, token, audit, setup)
