"""The ``mailstead`` command: serve, configuration check, and the admin groups.

Exit codes: 0 ok, 1 the operation failed (not found, already exists, bad value, bad
configuration), 2 usage error (click's own). Every failure is one line on stderr
starting with ``error:``; a traceback is printed only with ``--debug`` or
``MAILSTEAD_DEBUG=1``, because an operator needs the reason, not our call stack.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from mailstead.cli import admin, outbound
from mailstead.cli import dns as dns_commands
from mailstead.cli.admin import CliState, location_options
from mailstead.cli.sendmail import sendmail
from mailstead.cli.serve import check_for_serve, run_server
from mailstead.config.load import load_settings
from mailstead.config.schema import Settings
from mailstead.core.errors import ConfigError, MailsteadError
from mailstead.net.signals import ProcessSignals

DEBUG_ENV = "MAILSTEAD_DEBUG"


class MailsteadGroup(click.Group):
    """Turns every error escaping a command into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except MailsteadError as exc:
            self._fail(ctx, f"error: {exc}")
        except KeyboardInterrupt:
            self._fail(ctx, "error: interrupted")
        except Exception as exc:  # the last line of defence: never show a raw traceback
            self._fail(ctx, f"internal error: {type(exc).__name__}: {exc}")

    @staticmethod
    def _fail(ctx: click.Context, line: str) -> None:
        state = ctx.find_object(CliState)
        if (state is not None and state.debug) or os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        click.echo(" ".join(line.split("\n")), err=True)
        ctx.exit(1)


@click.group(cls=MailsteadGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MAILSTEAD_CONFIG",
    help="Configuration file (TOML). Env: MAILSTEAD_CONFIG. Default: none, the dev profile.",
)
@click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False),
    help="Data directory. Env: MAILSTEAD_DATA. Default: data_dir from the file, "
    "else ./mailstead-data.",
)
@click.option(
    "--debug", is_flag=True, help="Show full tracebacks on errors (or MAILSTEAD_DEBUG=1)."
)
@click.version_option(package_name="mailstead", prog_name="mailstead")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, data: str | None, debug: bool) -> None:
    """mailstead: a self-hosted mail server (SMTP, IMAP, POP3 over one mailstore).

    The admin commands open the mailstore directly, so they work whether the server is
    running or stopped.
    """
    # Everything a command creates (the database, bodies, keys, spool files) is readable
    # by the server's user alone.
    os.umask(PRIVATE_UMASK)
    ctx.obj = CliState(config=config, data=data, debug=debug)


#: Files mailstead creates are 0600, directories 0700.
PRIVATE_UMASK = 0o077

#: Seconds a thread may keep the GIL while another waits for it (sys.setswitchinterval).
GIL_SWITCH_INTERVAL = 0.0005


@cli.command()
@location_options
@click.pass_obj
def serve(state: CliState) -> None:
    """Start the server with every enabled listener.

    On an empty data directory this first creates the domain (the configured hostname,
    `localhost` by default) and postmaster@<domain> with a random password, and prints a
    client-configuration table once. Stop with Ctrl-C or SIGTERM; SIGHUP reloads the TLS
    certificate, from the [tls] paths the configuration file names now.
    """
    settings = state.settings()
    # Worker threads run Python for seconds at a time (parsing, a large structure, a
    # SEARCH): each time the event loop gives up the GIL for a system call it waited up to
    # the default 5 ms to get it back, and under the hostile-load benchmark a NOOP's p99
    # went past 100 ms. A tenth of that keeps the loop responsive (decision 0010).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    def reread() -> Settings:  # SIGHUP: the certificate paths as the file says now
        return load_settings(state.config, data_dir_override=state.data)

    with ProcessSignals() as signals:
        code = asyncio.run(run_server(settings, first_run_output=sys.stdout, signals=signals,
                                      reload_settings=reread))
    sys.exit(code)


@cli.group("config")
def config_group() -> None:
    """Check configuration files."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@location_options
@click.pass_obj
def config_check(state: CliState, file: Path | None) -> None:
    """Validate FILE (default: --config) and print the effective configuration as TOML.

    Every key is printed with its value and its description, defaults included, so the
    output is also a complete starting point for a configuration file. Exit status 1 and
    one line naming the file, the key and the problem when the file is wrong, or when
    serve would refuse it (certificate files, routes, [acme]); what may work but looks
    wrong is a "warning:" line on stderr.
    """
    path = file if file is not None else state.config
    settings = load_settings(path, data_dir_override=state.data)
    try:
        warnings = check_for_serve(settings)
    except ConfigError as exc:
        if exc.file is None and path is not None:  # name the file the key is in
            raise ConfigError(exc.reason, file=str(path), key=exc.key) from None
        raise
    where = f"{path}: " if path is not None else ""
    for warning in warnings:
        click.echo(f"warning: {where}{warning}", err=True)
    source = f"# {path}: valid" if path is not None else "# no configuration file: defaults"
    click.echo(source)
    click.echo(settings.effective_toml(), nl=False)


admin.register(cli)
outbound.register(cli)
dns_commands.register(cli)
cli.add_command(sendmail)


def main() -> None:
    """Console entry point (``mailstead`` and ``python -m mailstead``)."""
    cli(prog_name="mailstead")
