"""``mailstead setup DOMAIN``: the quickstart from an empty server to a domain ready to use.

It makes the domain, postmaster@DOMAIN with a new password and a DKIM key (each only if
missing, so it can be run again), then prints what a person needs next: how mail clients
connect and what to publish in the DNS.
"""

from __future__ import annotations

import click

from mailstead.cli.admin import CliState
from mailstead.cli.bootstrap import format_client_table


@click.command("setup")
@click.argument("domain")
@click.pass_obj
def setup(state: CliState, domain: str) -> None:
    """Get DOMAIN ready: the domain, postmaster@DOMAIN, a DKIM key, and what to publish.

    Safe to run again: what exists is kept (the postmaster's password too). Set
    `hostname` in the configuration to this server's public name first: the MX record and
    the client settings name it.
    """
    settings = state.settings()
    result = state.admin(lambda admin, me: admin.setup(me, domain))
    done = [
        f"domain {result.domain}: {'created' if result.domain_created else 'already here'}",
        f"{result.postmaster}: {'created' if result.password else 'already here'}",
        f"DKIM key {result.dkim_key.selector}: "
        f"{'created' if result.dkim_created else 'already here'}",
    ]
    click.echo("\n".join(done))
    if settings.hostname in ("localhost", "localhost.localdomain"):
        click.echo("\nwarning: hostname is localhost; set hostname in the configuration to "
                   "this server's public name (the MX target) before publishing DNS records",
                   err=True)
    if result.password is not None:
        click.echo(format_client_table(settings, result.postmaster, result.password), nl=False)
    click.echo("\nPublish in the DNS zone of the domain (`mailstead dns check "
               f"{result.domain}` says when it is right):")
    click.echo(dns_zone_text(state, result.domain), nl=False)


def dns_zone_text(state: CliState, domain: str) -> str:
    """Every record to publish for ``domain``, as zone-file lines with comments."""
    records = state.admin(lambda admin, me: admin.dns_records(me, domain), create=False)
    return records.zone_text()
