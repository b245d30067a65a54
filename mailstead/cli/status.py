"""``mailstead status``: is the server running on this data directory, is it ready, and
what does its mailstore hold. Exit status 0 when it runs and is ready, 1 otherwise, so a
script or a monitoring check can act on it."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime

import click

from mailstead.cli.admin import CliState
from mailstead.cli.serve import PID_FILE, AlreadyServing, lock_data_dir
from mailstead.config.schema import Settings
from mailstead.store.interfaces import Store


def _running(settings: Settings) -> str | None:
    """The pid of the server holding the data directory, or None when none does."""
    if not settings.data_dir.is_dir():
        return None
    try:
        os.close(lock_data_dir(settings.data_dir))
    except AlreadyServing:
        try:
            return (settings.data_dir / PID_FILE).read_text().strip() or "?"
        except OSError:
            return "?"
    return None


def _health(settings: Settings) -> tuple[bool, str]:
    """Ask the running server's /health on its http listener (loopback for a wildcard)."""
    listener = settings.listeners.http
    if not listener.enabled:
        return True, "not asked (the http listener is off)"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1", "*": "127.0.0.1"}.get(
        listener.address, listener.address)
    url = f"http://{f'[{host}]' if ':' in host else host}:{listener.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
            return True, ", ".join(f"{k} {v}" for k, v in body.get("checks", {}).items())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        return False, str(detail)
    except (OSError, ValueError) as exc:
        return False, f"no answer from {url}: {exc}"


async def _summary(store: Store) -> list[str]:
    domains = await store.list_domains()
    users = await store.list_users()
    waiting, oldest = await store.queue_summary()
    queue = f"{waiting} recipient(s) waiting"
    if oldest is not None:
        age = datetime.now(UTC) - oldest
        queue += f", the oldest for {int(age.total_seconds() // 60)} min"
    return [f"domains:  {len(domains)}", f"accounts: {len(users)}", f"queue:    {queue}"]


@click.command("status")
@click.pass_obj
def status(state: CliState) -> None:
    """Whether the server runs on the data directory and is ready, and what the mailstore
    holds. Exit status 0 when it runs and is ready, 1 otherwise."""
    settings = state.settings()
    pid = _running(settings)
    click.echo(f"data:     {settings.data_dir}")
    ready = False
    if pid is None:
        click.echo("server:   not running")
    else:
        ready, detail = _health(settings)
        click.echo(f"server:   running (pid {pid}), {'ready' if ready else 'NOT ready'}: "
                   f"{detail}")
    if (settings.data_dir / "mailstead.db").exists():
        for line in state.run(_summary, create=False):
            click.echo(line)
    if not ready:
        raise click.exceptions.Exit(1)
