"""Where a mail client connects: the enabled client listeners, as clients name them.

One list for everything that tells a client how to connect: the table printed on the first
start and the autoconfiguration answers of the HTTP front end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailstead.config.schema import Settings

Protocol = Literal["IMAP", "POP3", "SMTP"]
Security = Literal["implicit", "starttls", "none"]

# Listeners a mail client connects to, with the protocol name clients show. The MX
# listener (smtp) receives from other servers and HTTP is not a mail protocol.
CLIENT_LISTENERS: tuple[tuple[str, Protocol], ...] = (
    ("imap", "IMAP"),
    ("imaps", "IMAP"),
    ("pop3", "POP3"),
    ("pop3s", "POP3"),
    ("submission", "SMTP"),
    ("submissions", "SMTP"),
)


@dataclass(frozen=True, slots=True)
class ClientEndpoint:
    """One way to reach one protocol."""

    protocol: Protocol
    host: str
    port: int
    security: Security


def client_endpoints(settings: Settings) -> list[ClientEndpoint]:
    """The enabled client listeners in ``CLIENT_LISTENERS`` order."""
    found = []
    for name, protocol in CLIENT_LISTENERS:
        listener = getattr(settings.listeners, name)
        if listener.enabled:
            found.append(ClientEndpoint(protocol, settings.hostname, listener.port,
                                        listener.tls))
    return found
