"""First start on an empty mailstore: one domain, one postmaster, and how to connect.

``make serve`` on a fresh machine should end with a working account and the settings a
mail client asks for, printed like a mail provider's help page. The password is shown
once and only its hash is stored, so the table is printed only on that first start.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstead.auth.passwords import PasswordPolicy, generate_password, hash_password
from mailstead.cli.tables import format_table
from mailstead.config.endpoints import client_endpoints
from mailstead.config.schema import Settings
from mailstead.store.interfaces import Store

SECURITY_NAMES = {"starttls": "STARTTLS", "implicit": "SSL/TLS", "none": "none"}


@dataclass(frozen=True, slots=True)
class FirstRun:
    """What the bootstrap created; the password exists nowhere else in clear."""

    domain: str
    user: str
    password: str


async def bootstrap_if_empty(
    store: Store, settings: Settings, policy: PasswordPolicy
) -> FirstRun | None:
    """On a store without domains, create ``settings.hostname`` as the domain and
    ``postmaster@<domain>`` (RFC 5321 §4.5.1 requires a postmaster) with a random password,
    hashed at the configured cost."""
    if await store.list_domains():
        return None
    domain = settings.hostname.lower().rstrip(".")
    await store.add_domain(domain)
    password = generate_password()
    password_hash = hash_password(password, policy)
    user = await store.add_user(f"postmaster@{domain}", password_hash)
    return FirstRun(domain=domain, user=user.address, password=password)


def format_client_table(settings: Settings, user: str, password: str) -> str:
    """Client settings, one row per enabled listener that a mail client uses."""
    rows = [(e.protocol, e.host, e.port, SECURITY_NAMES[e.security], user, password)
            for e in client_endpoints(settings)]
    table = format_table(("protocol", "server", "port", "security", "user name", "password"), rows)
    indented = "\n".join(f"  {line}" for line in table.splitlines())
    notes = [
        "",
        "mailstead created the first account. Configure your mail client with:",
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
