"""``mailstead queue ...`` and ``mailstead dkim ...``: the outbound side for operators.

Like the admin commands they open the mailstore directly, so they work with the server
running (SQLite WAL) or stopped; a running server's scheduler sees a ``retry`` or
``release`` at its next poll (``delivery.poll_seconds``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mailstead.cli.admin import CliState, attach
from mailstead.cli.tables import format_table
from mailstead.config.schema import format_size
from mailstead.core.errors import InvalidName
from mailstead.store.models import QueuedMessage, QueueStatus

_WAITING = (QueueStatus.QUEUED, QueueStatus.DEFERRED)


def _age(created: datetime, now: datetime) -> str:
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    if moment <= now:
        return "now"
    return "in " + _age(now, moment)


def _state(message: QueuedMessage) -> str:
    counts: dict[str, int] = {}
    for r in message.envelope.recipients:
        counts[r.status] = counts.get(r.status, 0) + 1
    text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"HELD: {text}" if message.held else text


def _short(text: str | None, width: int = 60) -> str:
    text = " ".join((text or "-").split())
    return text if len(text) <= width else text[: width - 3] + "..."


@click.group("queue")
def queue() -> None:
    """Inspect and steer the outbound queue (mail waiting for remote servers)."""


@queue.command("list")
@click.pass_obj
def queue_list(state: CliState) -> None:
    """Every queued message: id, age, size, sender, recipient states, next attempt and
    the last error."""
    messages: list[QueuedMessage] = state.admin(lambda admin, me: admin.queue_list(me),
                                                create=False)
    if not messages:
        click.echo("the queue is empty")
        return
    now = datetime.now(UTC)
    rows = []
    for m in messages:
        pending = [r for r in m.envelope.recipients if r.status in _WAITING]
        next_attempt = min((r.next_attempt for r in pending if r.next_attempt), default=None)
        errors = [r.last_error for r in m.envelope.recipients
                  if r.last_error and r.status is not QueueStatus.DELIVERED]
        rows.append((m.id, _age(m.created, now), format_size(m.size),
                     m.envelope.mail_from or "<>", _state(m),
                     "held" if m.held else _when(next_attempt, now),
                     _short(errors[-1] if errors else None)))
    click.echo(format_table(("id", "age", "size", "sender", "recipients", "next", "last error"),
                            rows))


@queue.command("show")
@click.argument("queue_id", type=int)
@click.pass_obj
def queue_show(state: CliState, queue_id: int) -> None:
    """Envelope, headers and every recipient's state of one queued message."""

    detail = state.admin(lambda admin, me: admin.queue_show(me, queue_id), create=False)
    message, headers = detail.message, detail.headers
    now = datetime.now(UTC)
    env = message.envelope
    lines = [
        f"queue id:   {message.id}{'  (on hold)' if message.held else ''}",
        f"queued:     {message.created.isoformat(timespec='seconds')} "
        f"({_age(message.created, now)} ago)",
        f"size:       {message.size} bytes",
        f"sender:     <{env.mail_from}>",
        f"submitted:  {'by ' + env.auth_user if env.auth_user else 'relayed'}",
        f"dsn:        RET={env.ret or '-'} ENVID={env.envid or '-'}",
        f"body:       {env.body or '7BIT'}{', SMTPUTF8' if env.smtputf8 else ''}",
    ]
    for name, value in headers.items():
        lines.append(f"{name + ':':<12}{_short(value, 200)}")
    lines.append("")
    lines.append("recipients:")
    for r in env.recipients:
        lines.append(f"  <{r.address}>  {r.status}, {r.attempts} attempt"
                     f"{'' if r.attempts == 1 else 's'}")
        if r.status in _WAITING:
            lines.append(f"    next attempt: {_when(r.next_attempt, now)}")
        if r.last_attempt is not None:
            lines.append(f"    last attempt: {r.last_attempt.isoformat(timespec='seconds')}")
        if r.remote:
            lines.append(f"    remote host:  {r.remote}")
        if r.last_error:
            lines.append(f"    last reply:   {' '.join(r.last_error.split())}")
        if r.notify or r.orcpt:
            lines.append(f"    dsn:          NOTIFY={','.join(r.notify) or '-'} "
                         f"ORCPT={r.orcpt or '-'}")
    click.echo("\n".join(lines))


@queue.command("retry")
@click.argument("queue_id", type=int, required=False)
@click.option("--all", "all_", is_flag=True, help="Every queued message.")
@click.pass_obj
def queue_retry(state: CliState, queue_id: int | None, all_: bool) -> None:
    """Make the pending recipients of QUEUE_ID (or of every message, with --all) due now."""
    if (queue_id is None) == (not all_):
        raise InvalidName("give a queue id or --all (not both)")
    count = state.admin(lambda admin, me: admin.queue_retry(me, queue_id), create=False)
    click.echo(f"{count} recipient{'' if count == 1 else 's'} due now")


@queue.command("delete")
@click.argument("queue_id", type=int)
@click.pass_obj
def queue_delete(state: CliState, queue_id: int) -> None:
    """Remove QUEUE_ID from the queue without delivering it and without a bounce."""
    state.admin(lambda admin, me: admin.queue_delete(me, queue_id), create=False)
    click.echo(f"deleted queued message {queue_id} (no bounce sent)")


@queue.command("hold")
@click.argument("queue_id", type=int)
@click.pass_obj
def queue_hold(state: CliState, queue_id: int) -> None:
    """Stop attempting QUEUE_ID until it is released (an attempt under way finishes)."""
    state.admin(lambda admin, me: admin.queue_hold(me, queue_id, True), create=False)
    click.echo(f"queued message {queue_id} is on hold")


@queue.command("release")
@click.argument("queue_id", type=int)
@click.pass_obj
def queue_release(state: CliState, queue_id: int) -> None:
    """Let QUEUE_ID be attempted again, at its next scheduled attempt."""
    state.admin(lambda admin, me: admin.queue_hold(me, queue_id, False), create=False)
    click.echo(f"queued message {queue_id} is released")


@click.group("dkim")
def dkim_group() -> None:
    """DKIM signing keys for outgoing mail."""


@dkim_group.command("keygen")
@click.argument("domain")
@click.option("--selector", "-s", default="mail", show_default=True,
              help="Selector: the DNS name is SELECTOR._domainkey.DOMAIN.")
@click.option("--algorithm", "-a", type=click.Choice(["rsa2048", "ed25519"]),
              default="rsa2048", show_default=True, help="Key type.")
@click.pass_obj
def dkim_keygen(state: CliState, domain: str, selector: str, algorithm: str) -> None:
    """Create a signing key for DOMAIN and print the DNS TXT record to publish.

    The private key is stored in data_dir/dkim/DOMAIN/ readable only by its owner. Mail
    that users of DOMAIN send is signed from the next server start; publish the record
    first, or receivers will see signatures they cannot check.
    """
    key = state.admin(lambda admin, me: admin.dkim_keygen(me, domain, selector, algorithm))
    click.echo(f"# private key: {key.path} (mode 0600)")
    click.echo("# publish this record in the DNS zone of the domain:")
    click.echo(key.zone_line())


@dkim_group.command("list")
@click.pass_obj
def dkim_list(state: CliState) -> None:
    """Every key, with the DNS record it needs."""
    keys = state.admin(lambda admin, me: admin.dkim_list(me))
    if not keys:
        click.echo("no DKIM keys (create one: mailstead dkim keygen DOMAIN)")
        return
    for key in keys:
        click.echo(f"# {key.domain} selector {key.selector} ({key.algorithm})")
        click.echo(key.zone_line())


def register(root: click.Group) -> None:
    """Attach ``queue`` and ``dkim``; their commands take --config/--data after the name."""
    attach(root, queue, dkim_group)
