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
