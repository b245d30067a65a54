"""First start on an empty mailstore: a development account, or the way to a real domain.

``make serve`` on a fresh machine (hostname ``localhost``, the development profile) should
end with a working account and the settings a mail client asks for, printed like a mail
provider's help page; that domain is announced as what it is, a local development domain.
With a real hostname nothing is created behind the admin's back: the first start says to
run ``mailstead setup DOMAIN``, which makes the domain, the postmaster, the DKIM key and
prints the DNS records. The password is shown once and only its hash is stored, so the
table is printed only on that first start.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstead.admin.actors import Actor
from mailstead.admin.service import Admin
from mailstead.auth.passwords import generate_password
from mailstead.cli.tables import format_table
from mailstead.config.endpoints import client_endpoints
from mailstead.config.schema import Settings

SECURITY_NAMES = {"starttls": "STARTTLS", "implicit": "SSL/TLS", "none": "none"}


@dataclass(frozen=True, slots=True)
class FirstRun:
    """What the bootstrap created; the password exists nowhere else in clear."""

    domain: str
    user: str
    password: str


#: Host names that mean "this machine only": the development profile.
DEVELOPMENT_HOSTNAMES = ("localhost", "localhost.localdomain")
#: How the audit log names the first start.
FIRST_START = Actor(name="serve:first-start", source="local")


def is_development(settings: Settings) -> bool:
    return settings.hostname.lower().rstrip(".") in DEVELOPMENT_HOSTNAMES


async def bootstrap_if_empty(admin: Admin, settings: Settings) -> FirstRun | None:
    """On a store without domains in the development profile, create the domain
    ``localhost`` and ``postmaster@localhost`` (RFC 5321 §4.5.1 requires a postmaster) with
    a random password, through the audited admin operations. None otherwise."""
    if not is_development(settings) or await admin.store.list_domains():
        return None
    domain = settings.hostname.lower().rstrip(".")
    await admin.add_domain(FIRST_START, domain)
    password = generate_password()
    user = await admin.add_user(FIRST_START, f"postmaster@{domain}", password)
    return FirstRun(domain=domain, user=user.address, password=password)


def no_domain_yet(settings: Settings) -> str:
    """What the first start with a real hostname prints instead of making a domain."""
    return (f"\nmailstead is running as {settings.hostname} and has no mail domain yet.\n"
            "Make one, with its postmaster, DKIM key and the DNS records to publish:\n"
            f"  mailstead setup {settings.hostname.partition('.')[2] or 'example.org'}\n")


def format_client_table(settings: Settings, user: str, password: str) -> str:
    """Client settings, one row per enabled listener that a mail client uses."""
    rows = [(e.protocol, e.host, e.port, SECURITY_NAMES[e.security], user, password)
            for e in client_endpoints(settings)]
    table = format_table(("protocol", "server", "port", "security", "user name", "password"), rows)
    indented = "\n".join(f"  {line}" for line in table.splitlines())
    notes = [""]
    if is_development(settings):
        notes += ["mailstead created a development domain, localhost: mail to it stays on "
                  "this machine.", "For a real domain: mailstead setup example.org"]
    notes += [
        "Configure your mail client with:",
        "",
        indented,
        "",
        "The password is shown only this once; change it with:",
        f"  mailstead user passwd {user}",
    ]
    if settings.cert_path == settings.data_dir / "tls" / "cert.pem":  # generated on first start
        notes += [
            "The certificate is self-signed: your client will warn about it the first time.",
            "Install a real one with [tls] cert/key in the configuration and send SIGHUP.",
        ]
    return "\n".join(notes) + "\n"
