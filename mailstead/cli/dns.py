"""``mailstead dns records`` and ``mailstead dns check``: what to publish, and whether it is.

Both work on a hosted domain (a typo should not print a zone for a domain nobody hosts) and
read the mailstore directly like the admin commands, so the server may run or not. The
records come from mailstead/admin/dns.py, the checks from mailstead/admin/dnscheck.py;
this module only prints them.
"""

from __future__ import annotations

import json

import click

from mailstead.admin.dnscheck import DomainCheck, RecordCheck
from mailstead.cli.admin import CliState, attach


@click.group("dns")
def dns_group() -> None:
    """The DNS records a hosted domain needs, and a check of what the DNS publishes."""


@dns_group.command("records")
@click.argument("domain")
@click.option("--format", "form", type=click.Choice(["zone", "json"]), default="zone",
              show_default=True, help="Zone-file lines with a comment each, or JSON.")
@click.pass_obj
def dns_records(state: CliState, domain: str, form: str) -> None:
    """Every record to publish for DOMAIN: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, the
    RFC 6186 SRV records, the autoconfiguration names and PACC, each with why."""
    records = state.admin(lambda admin, me: admin.dns_records(me, domain), create=False)
    if form == "json":
        click.echo(json.dumps(records.as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(records.zone_text(), nl=False)


def _check_lines(check: RecordCheck) -> list[str]:
    lines = [f"{check.status:<8} {check.type:<6} {check.name}"]
    if check.status != "ok":
        lines.append(f"         expected: {check.expected}")
        lines.append(f"         found:    {' | '.join(check.found) or '-'}")
    if check.detail:
        lines.append(f"         {check.detail}")
    return lines


def format_check(result: DomainCheck) -> str:
    lines = [f"DNS of {result.domain} (mail server {result.hostname})"]
    for check in result.checks:
        lines.extend(_check_lines(check))
    counts = result.counts()
    lines.append(", ".join(f"{counts.get(s, 0)} {s}" for s in
                           ("ok", "missing", "wrong", "unknown")))
    return "\n".join(lines)


@dns_group.command("check")
@click.argument("domain")
@click.option("--format", "form", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="One block per record, or JSON.")
@click.pass_obj
def dns_check(state: CliState, domain: str, form: str) -> None:
    """Query the DNS for every record of `dns records DOMAIN` through the resolver that
    delivery uses (delivery.nameservers) and report each as ok, missing, wrong or
    unknown (the DNS did not answer). Exit status 1 unless every record is ok."""
    result = state.admin(lambda admin, me: admin.dns_check(me, domain), create=False)
    if form == "json":
        click.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_check(result))
    if not result.passed:
        click.get_current_context().exit(1)


def register(root: click.Group) -> None:
    """Attach ``dns``; its commands take --config/--data after the name."""
    attach(root, dns_group)
