"""Mozilla autoconfig as Thunderbird asks for it and reads it."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree import ElementTree

import httpx
import pytest

from mailstead.testing.server import ServerThread

ADDRESS = "bob@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"hostname": "mail.example.org", "listeners": {"pop3": {"enabled": False}}}
    with ServerThread(tmp_path_factory.mktemp("autoconfig"), config) as srv:
        srv.add_user(ADDRESS, "autoconfig password")
        yield srv


def _servers(document: bytes) -> list[dict[str, str]]:
    """What Thunderbird's readFromXML takes from the answer: the provider's servers in
    order, each with its type, hostname, port, socket type, authentication, user name."""
    root = ElementTree.fromstring(document)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "example.org"
    assert [d.text for d in provider.findall("domain")] == ["example.org"]
    found = []
    for element in provider:
        if element.tag not in ("incomingServer", "outgoingServer"):
            continue
        fields = {child.tag: child.text or "" for child in element}
        found.append({"kind": element.tag, "type": element.get("type", ""), **fields})
    return found


def test_both_urls_list_every_client_listener_implicit_tls_first(
        server: ServerThread) -> None:
    settings = server.services.settings
    well_known = f"http://127.0.0.1:{server.port('http')}" \
        f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={ADDRESS}"
    response = httpx.get(well_known)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    # Thunderbird's second URL: the autoconfig.<domain> host, address in the query or not.
    by_host = httpx.get(f"http://127.0.0.1:{server.port('http')}/mail/config-v1.1.xml",
                        headers={"Host": "autoconfig.example.org"})
    assert by_host.status_code == 200 and by_host.content == response.content
    servers = _servers(response.content)
    assert [(s["kind"], s["type"], s["port"], s["socketType"]) for s in servers] == [
        ("incomingServer", "imap", str(settings.listeners.imaps.port), "SSL"),
        ("incomingServer", "imap", str(settings.listeners.imap.port), "STARTTLS"),
        ("incomingServer", "pop3", str(settings.listeners.pop3s.port), "SSL"),
        ("outgoingServer", "smtp", str(settings.listeners.submissions.port), "SSL"),
        ("outgoingServer", "smtp", str(settings.listeners.submission.port), "STARTTLS"),
    ]  # POP3 with STARTTLS is disabled, so not offered
    for entry in servers:
        assert entry["hostname"] == "mail.example.org"
        assert entry["authentication"] == "password-cleartext"
        assert entry["username"] == "%EMAILADDRESS%"


def test_unknown_domains_and_missing_addresses_are_problems(server: ServerThread) -> None:
    base = f"http://127.0.0.1:{server.port('http')}/mail/config-v1.1.xml"
    unknown = httpx.get(base, params={"emailaddress": "eve@elsewhere.example"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no mail domain elsewhere.example here"
    nothing = httpx.get(base)  # Host 127.0.0.1 says no domain
    assert nothing.status_code == 400
    assert nothing.headers["content-type"] == "application/problem+json"


_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress>{address}</EMailAddress>'
    "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
    "responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
)
_NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
       "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


def test_outlook_autodiscover_pox(server: ServerThread) -> None:
    """Outlook posts its address and reads, per Protocol, the type, server, port, login
    name and encryption (SSL for implicit TLS, TLS for STARTTLS)."""
    settings = server.services.settings
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        response = httpx.post(f"http://127.0.0.1:{server.port('http')}{path}",
                              content=_REQUEST.format(address=ADDRESS),
                              headers={"Content-Type": "text/xml"})
        assert response.status_code == 200
        root = ElementTree.fromstring(response.content)
        assert root.tag == f"{{{_NS['r']}}}Autodiscover"
        account = root.find("o:Response/o:Account", _NS)
        assert account is not None
        assert account.findtext("o:AccountType", namespaces=_NS) == "email"
        assert account.findtext("o:Action", namespaces=_NS) == "settings"
        protocols = [(p.findtext("o:Type", namespaces=_NS), p.findtext("o:Port", namespaces=_NS),
                      p.findtext("o:Encryption", namespaces=_NS),
                      p.findtext("o:Server", namespaces=_NS),
                      p.findtext("o:LoginName", namespaces=_NS))
                     for p in account.findall("o:Protocol", _NS)]
        listeners = settings.listeners
        assert protocols == [
            ("IMAP", str(listeners.imaps.port), "SSL", "mail.example.org", ADDRESS),
            ("IMAP", str(listeners.imap.port), "TLS", "mail.example.org", ADDRESS),
            ("POP3", str(listeners.pop3s.port), "SSL", "mail.example.org", ADDRESS),
            ("SMTP", str(listeners.submissions.port), "SSL", "mail.example.org", ADDRESS),
            ("SMTP", str(listeners.submission.port), "TLS", "mail.example.org", ADDRESS),
        ]


def test_autodiscover_refuses_what_is_not_a_request_for_a_hosted_domain(
        server: ServerThread) -> None:
    url = f"http://127.0.0.1:{server.port('http')}/autodiscover/autodiscover.xml"
    other = httpx.post(url, content=_REQUEST.format(address="eve@elsewhere.example"))
    assert other.status_code == 404
    laughs = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
              + ']><Autodiscover><Request><EMailAddress>&i;@example.org</EMailAddress>'
              "</Request></Autodiscover>")
    # Expanded, this would be a 1 GB address in a hosted domain; expat refuses it.
    assert httpx.post(url, content=laughs).status_code == 400
    assert httpx.post(url, content=b"x" * 20_000).status_code == 413
    assert httpx.post(url, content=b"<not-xml").status_code == 400


def test_autodiscover_v2_points_to_the_pox_service(server: ServerThread) -> None:
    base = f"http://127.0.0.1:{server.port('http')}/autodiscover/autodiscover.json"
    for response in (
        httpx.get(f"{base}/v1.0/{ADDRESS}", params={"Protocol": "AutodiscoverV1"}),
        httpx.get(base, params={"Email": ADDRESS, "Protocol": "AutodiscoverV1"}),
    ):
        assert response.status_code == 200
        assert response.json() == {
            "Protocol": "AutodiscoverV1",
            "Url": f"http://127.0.0.1:{server.port('http')}/Autodiscover/Autodiscover.xml",
        }
    ews = httpx.get(f"{base}/v1.0/{ADDRESS}", params={"Protocol": "Ews"})
    assert ews.status_code == 400


def test_apple_profile(server: ServerThread) -> None:
    """What iOS and macOS read from a configuration profile's mail payload."""
    import plistlib

    settings = server.services.settings
    response = httpx.get(f"http://127.0.0.1:{server.port('http')}/apple/mail.mobileconfig",
                         params={"emailaddress": ADDRESS})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-apple-aspen-config"
    assert 'filename="example.org.mobileconfig"' in response.headers["content-disposition"]
    profile = plistlib.loads(response.content)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    [account] = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"],
            account["IncomingMailServerUseSSL"]) == (
        "mail.example.org", settings.listeners.imaps.port, True)
    assert (account["OutgoingMailServerPortNumber"], account["OutgoingMailServerUseSSL"]) == (
        settings.listeners.submissions.port, True)
    assert account["IncomingMailServerUsername"] == ADDRESS
    assert account["OutgoingPasswordSameAsIncomingPassword"] is True
    assert "IncomingPassword" not in account  # the password never travels in a profile
    again = plistlib.loads(httpx.get(response.request.url).content)
    assert again["PayloadUUID"] == profile["PayloadUUID"]  # installing again replaces it
    other = httpx.get(f"http://127.0.0.1:{server.port('http')}/apple/mail.mobileconfig",
                      params={"emailaddress": "x@nowhere.test"})
    assert other.status_code == 404
