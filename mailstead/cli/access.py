"""``mailstead token ...`` and ``mailstead audit``: who may use the HTTP APIs, and what
every administrative change was.

A token is printed once, when it is made; only a hash of it is kept, so a lost token is
revoked and replaced, never recovered.
"""

from __future__ import annotations

from datetime import datetime

import click

from mailstead.cli.admin import CliState
from mailstead.cli.tables import format_table


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


@click.group("token")
def token() -> None:
    """API tokens for the admin and sending APIs (Authorization: Bearer ...)."""


@token.command("create")
@click.argument("name")
@click.option("--scope", default="admin", show_default=True,
              help="admin (everything), domain:example.org (that domain's accounts, "
              "aliases, groups and keys), send (the sending API only) or "
              "mail:user@example.org (that account's mail over JMAP, as its password).")
@click.pass_obj
def token_create(state: CliState, name: str, scope: str) -> None:
    """Make a token named NAME (what uses it, e.g. "billing app") and print it once."""
    new = state.admin(lambda admin, me: admin.create_token(me, name, scope))
    click.echo(f"# token {new.token.id} ({new.token.name}), scope {new.token.scope}")
    click.echo("# shown only now: store it where the client reads it; "
               "`mailstead token revoke " f"{new.token.id}` withdraws it")
    click.echo(new.text)


@token.command("list")
@click.pass_obj
def token_list(state: CliState) -> None:
    """Every token: id, name, scope, when made and by whom, last use, state."""
    tokens = state.admin(lambda admin, me: admin.list_tokens(me), create=False)
    if not tokens:
        click.echo("no tokens (make one: mailstead token create NAME --scope admin)")
        return
    rows = [(t.id, t.name, t.scope, _moment(t.created), t.created_by,
             _moment(t.last_used), t.last_used_from or "-",
             "revoked" if t.revoked else "active") for t in tokens]
    click.echo(format_table(("id", "name", "scope", "created", "by", "last used", "from",
                             "state"), rows))


@token.command("revoke")
@click.argument("token_id", type=int)
@click.pass_obj
def token_revoke(state: CliState, token_id: int) -> None:
    """Withdraw token TOKEN_ID: requests carrying it are refused from now on."""
    state.admin(lambda admin, me: admin.revoke_token(me, token_id), create=False)
    click.echo(f"token {token_id} revoked")


@click.group("audit")
def audit() -> None:
    """The audit log: every administrative change, by whom, from where, when."""


@audit.command("list")
@click.option("--limit", "-n", default=50, show_default=True, help="How many records.")
@click.option("--target", help="Only changes to this address, domain (and its addresses), "
              "queue id or token name.")
@click.option("--before", type=int, help="Only records older than this id (paging).")
@click.pass_obj
def audit_list(state: CliState, limit: int, target: str | None, before: int | None) -> None:
    """The newest changes first."""
    records = state.admin(
        lambda admin, me: admin.audit_log(me, limit=limit, before=before, target=target),
        create=False)
    if not records:
        click.echo("no audit records")
        return
    rows = [(r.id, _moment(r.at), r.actor, r.source, r.action, r.target,
             "" if r.detail == "{}" else r.detail) for r in records]
    click.echo(format_table(("id", "when", "who", "from", "action", "target", "detail"), rows))
