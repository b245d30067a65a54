"""Client autoconfiguration: what a mail client asks before its user types a server name.

Three families, one list of endpoints (config/endpoints.py): Mozilla autoconfig, Microsoft
Autodiscover (POX, and the v2 JSON that points Outlook to it) and an Apple configuration
profile.

Mozilla's autoconfig (Thunderbird, and K-9/Thunderbird for Android, Evolution, KMail read
it too) is asked for at ``http://autoconfig.<domain>/mail/config-v1.1.xml`` and at
``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``, with the address in
``?emailaddress=``. The answer lists every enabled client listener, implicit TLS first
(RFC 8314 §3), the user name being the whole address (``%EMAILADDRESS%``). Only hosted
domains are answered; any other is 404, as for a domain mailstead does not know.
"""

from __future__ import annotations

import plistlib
import uuid
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
    for endpoint in _best_first(endpoints):
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


# -- Microsoft Autodiscover ---------------------------------------------------------------------

_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
#: The largest Autodiscover request read: a request is a few hundred octets.
MAX_AUTODISCOVER_REQUEST = 16 * 1024
_ENCRYPTION = {"implicit": "SSL", "starttls": "TLS", "none": "None"}


def autodiscover_address(request: bytes) -> str | None:
    """The ``EMailAddress`` of a POX Autodiscover request (namespace-agnostic, as Outlook
    versions differ); None for anything else. Entities are never expanded: expat refuses
    an external one, and Python's expat bounds internal expansion."""
    try:
        root = ElementTree.fromstring(request)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "EMailAddress" and element.text:
            address = element.text.strip()
            return address if "@" in address else None
    return None


def autodiscover_pox(address: str, endpoints: Sequence[ClientEndpoint]) -> bytes:
    """The POX Autodiscover answer (MS-OXDSCLI, outlook responseschema 2006a): one
    ``Protocol`` per listener, best first. ``Encryption`` says TLS (STARTTLS) or SSL
    (implicit); ``SSL`` is kept beside it for Outlook versions that read only that."""
    root = ElementTree.Element("Autodiscover", xmlns=_RESPONSE_NS)
    response = ElementTree.SubElement(root, "Response", xmlns=_OUTLOOK_NS)
    user = ElementTree.SubElement(response, "User")
    ElementTree.SubElement(user, "EMailAddress").text = address
    account = ElementTree.SubElement(response, "Account")
    ElementTree.SubElement(account, "AccountType").text = "email"
    ElementTree.SubElement(account, "Action").text = "settings"
    for endpoint in _best_first(endpoints):
        protocol = ElementTree.SubElement(account, "Protocol")
        fields = [
            ("Type", endpoint.protocol), ("Server", endpoint.host),
            ("Port", str(endpoint.port)), ("LoginName", address),
            ("DomainRequired", "off"), ("SPA", "off"),
            ("SSL", "off" if endpoint.security == "none" else "on"),
            ("Encryption", _ENCRYPTION[endpoint.security]), ("AuthRequired", "on"),
        ]
        if endpoint.protocol == "SMTP":
            fields += [("UsePOPAuth", "on"), ("SMTPLast", "off")]
        for tag, text in fields:
            ElementTree.SubElement(protocol, tag).text = text
    ElementTree.indent(root)
    document: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _best_first(endpoints: Sequence[ClientEndpoint]) -> list[ClientEndpoint]:
    """IMAP, POP3, then SMTP; implicit TLS before STARTTLS before none (RFC 8314 §3)."""
    rank = {"IMAP": 0, "POP3": 1, "SMTP": 2}
    return sorted(endpoints, key=lambda e: (rank[e.protocol], _ORDER[e.security]))


# -- Apple configuration profile ----------------------------------------------------------------


def apple_profile(address: str, endpoints: Sequence[ClientEndpoint]) -> bytes | None:
    """A ``.mobileconfig`` profile with one mail account (com.apple.mail.managed) for iOS,
    iPadOS and macOS Mail; None without an incoming and an outgoing listener. The password
    is not in it: Mail asks for it when the profile is installed. Its identifiers are
    derived from the address, so installing it again replaces the account."""
    best = _best_first(endpoints)
    incoming = next((e for e in best if e.protocol != "SMTP"), None)
    outgoing = next((e for e in best if e.protocol == "SMTP"), None)
    if incoming is None or outgoing is None:
        return None
    domain = address.rpartition("@")[2]
    reverse = ".".join(reversed(incoming.host.split(".")))
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mailstead.account.{address}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailstead:account:{address}")),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountName": address,
        "EmailAddress": address,
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "IMAP" else "EmailTypePOP",
        "IncomingMailServerHostName": incoming.host,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": incoming.security != "none",
        "IncomingMailServerUsername": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": outgoing.host,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": outgoing.security != "none",
        "OutgoingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mailstead.{address}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailstead:profile:{address}")),
        "PayloadDisplayName": f"{domain} mail",
        "PayloadDescription": f"The mail account {address}",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
