"""Client autoconfiguration: what a mail client asks before its user types a server name.

Mozilla's autoconfig (Thunderbird, and K-9/Thunderbird for Android, Evolution, KMail read
it too) is asked for at ``http://autoconfig.<domain>/mail/config-v1.1.xml`` and at
``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``, with the address in
``?emailaddress=``. The answer lists every enabled client listener, implicit TLS first
(RFC 8314 §3), the user name being the whole address (``%EMAILADDRESS%``). Only hosted
domains are answered; any other is 404, as for a domain mailstead does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree

from mailstead.config.endpoints import ClientEndpoint

_SOCKET_TYPES = {"implicit": "SSL", "starttls": "STARTTLS", "none": "plain"}
_ORDER = {"implicit": 0, "starttls": 1, "none": 2}
_TYPES = {"IMAP": "imap", "POP3": "pop3", "SMTP": "smtp"}


def domain_of(address: str | None, host: str | None) -> str | None:
    """The mail domain a request is about: from ``emailaddress``, else from the Host
    (``autoconfig.<domain>``), lower case; None when neither says."""
    if address and "@" in address:
        return address.rpartition("@")[2].strip().lower().rstrip(".") or None
    if host:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        if name.startswith("autoconfig."):
            return name.removeprefix("autoconfig.") or None
    return None


def mozilla_config(domain: str, endpoints: Sequence[ClientEndpoint]) -> bytes:
    """The clientConfig document (version 1.1) for ``domain``."""
    root = ElementTree.Element("clientConfig", version="1.1")
    provider = ElementTree.SubElement(root, "emailProvider", id=domain)
    ElementTree.SubElement(provider, "domain").text = domain
    ElementTree.SubElement(provider, "displayName").text = f"{domain} mail"
    ElementTree.SubElement(provider, "displayShortName").text = domain
    for endpoint in sorted(endpoints, key=lambda e: (e.protocol == "SMTP",
                                                     e.protocol, _ORDER[e.security])):
        tag = "outgoingServer" if endpoint.protocol == "SMTP" else "incomingServer"
        server = ElementTree.SubElement(provider, tag, type=_TYPES[endpoint.protocol])
        ElementTree.SubElement(server, "hostname").text = endpoint.host
        ElementTree.SubElement(server, "port").text = str(endpoint.port)
        ElementTree.SubElement(server, "socketType").text = _SOCKET_TYPES[endpoint.security]
        ElementTree.SubElement(server, "authentication").text = "password-cleartext"
        ElementTree.SubElement(server, "username").text = "%EMAILADDRESS%"
    ElementTree.indent(root)
    document: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
