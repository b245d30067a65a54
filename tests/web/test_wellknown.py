"""The MTA-STS policy and the PACC document, fetched as senders and clients fetch them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailstead.admin.dns import expected_records
from mailstead.config.endpoints import ClientEndpoint
from mailstead.http.app import HTTPServices, build_app
from mailstead.store.models import Domain
from mailstead.testing.server import ServerThread, build_settings, settings_dict_for_tests

DOMAIN = "example.org"
HOST = "mail.example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"hostname": HOST, "mta_sts": {"mode": "enforce", "max_age_seconds": 86400,
                                            "extra_mx": ["backup.example.net"]}}
    with ServerThread(tmp_path_factory.mktemp("wellknown"), config) as srv:
        srv.call(srv.store.add_domain(DOMAIN))
        yield srv


def _get(server: ServerThread, path: str, host: str, *, tls: bool = False) -> httpx.Response:
    if tls:
        # The certificate names the hostname, not 127.0.0.1: trust it, skip the name.
        context = server.client_ssl_context()
        context.check_hostname = False
        url = f"https://127.0.0.1:{server.port('https')}{path}"
        return httpx.get(url, headers={"Host": host}, verify=context)
    return httpx.get(f"http://127.0.0.1:{server.port('http')}{path}", headers={"Host": host})


def _sts_policy(text: str) -> dict[str, list[str]]:
    """RFC 8461 §3.2 as a sender parses it: ``key: value`` lines, CRLF or LF."""
    fields: dict[str, list[str]] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if line:
            key, sep, value = line.partition(":")
            assert sep, line
            fields.setdefault(key.strip(), []).append(value.strip())
    return fields


def test_the_mta_sts_policy_on_its_host_over_https(server: ServerThread) -> None:
    response = _get(server, "/.well-known/mta-sts.txt", f"mta-sts.{DOMAIN}", tls=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    policy = _sts_policy(response.text)
    assert policy == {"version": ["STSv1"], "mode": ["enforce"],
                      "mx": [HOST, "backup.example.net"], "max_age": ["86400"]}
    # The id published in the DNS is the one of this very policy.
    settings = server.services.settings
    txt = next(r.value for r in expected_records(DOMAIN, settings, []).records
               if r.name == f"_mta-sts.{DOMAIN}")
    assert txt == "v=STSv1; id=" + hashlib.sha256(response.content).hexdigest()[:32]
    # The same over plain HTTP (behind a proxy that ends TLS), with the port in Host.
    plain = _get(server, "/.well-known/mta-sts.txt", f"MTA-STS.{DOMAIN}.:443")
    assert plain.status_code == 200 and plain.content == response.content


@pytest.mark.parametrize(("host", "detail"), [
    ("mta-sts.elsewhere.example", "no mail domain elsewhere.example here"),
    (DOMAIN, "ask on the host mta-sts.<mail domain>"),
    ("127.0.0.1", "ask on the host mta-sts.<mail domain>"),
    ("mta-sts." + ".".join(["a" * 60] * 5), "ask on the host mta-sts.<mail domain>"),
])
def test_other_hosts_get_a_404_problem(server: ServerThread, host: str, detail: str) -> None:
    response = _get(server, "/.well-known/mta-sts.txt", host)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail


def test_pacc_leaves_out_what_it_cannot_describe(server: ServerThread) -> None:
    # The test server's listeners are on ephemeral ports, not 993/995/465: a PACC client
    # would connect to the standard port, so nothing may be announced.
    response = _get(server, "/.well-known/user-agent-configuration.json",
                    f"ua-auto-config.{DOMAIN}")
    assert response.status_code == 404
    assert "standard port" in response.json()["detail"]
    other = _get(server, "/.well-known/user-agent-configuration.json", "ua-auto-config.x.test")
    assert other.status_code == 404 and other.json()["detail"] == "no mail domain x.test here"


class _Directory:
    async def has_domain(self, name: str) -> bool:
        return name == DOMAIN

    async def list_domains(self) -> list[Domain]:
        return []


#: The client listeners of a production configuration.
PRODUCTION = [
    ClientEndpoint("IMAP", HOST, 993, "implicit"), ClientEndpoint("IMAP", HOST, 143, "starttls"),
    ClientEndpoint("POP3", HOST, 995, "implicit"), ClientEndpoint("SMTP", HOST, 465, "implicit"),
    ClientEndpoint("SMTP", HOST, 587, "starttls"),
]
#: What a PACC document's protocol names imply (draft-ietf-mailmaint-pacc): implicit TLS
#: on the protocol's port.
IMPLIED = {"imap": ("IMAP", 993), "pop3": ("POP3", 995), "smtp": ("SMTP", 465)}


async def test_pacc_parsed_and_verified_as_a_client_does(tmp_path: Path) -> None:
    app = build_app(HTTPServices(_Directory(), None, PRODUCTION))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/.well-known/user-agent-configuration.json",
                                    headers={"Host": f"ua-auto-config.{DOMAIN}"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # A client accepts the body only if its SHA-256 is the one in _ua-auto-config TXT.
    settings = build_settings(settings_dict_for_tests(tmp_path, {"hostname": HOST}))
    record = next(r.value for r in expected_records(DOMAIN, settings, [], PRODUCTION).records
                  if r.name == f"_ua-auto-config.{DOMAIN}")
    tags = dict(part.strip().split("=", 1) for part in record.split(";"))
    assert tags["v"] == "UAAC1" and tags["a"] == "sha256"
    assert base64.b64decode(tags["d"]) == hashlib.sha256(response.content).digest()
    document = json.loads(response.content)
    assert document["authentication"]["password"] is True
    assert document["info"]["provider"]["name"]
    announced = {name: (*IMPLIED[name], entry["host"])
                 for name, entry in document["protocols"].items()}
    assert announced == {"imap": ("IMAP", 993, HOST), "pop3": ("POP3", 995, HOST),
                         "smtp": ("SMTP", 465, HOST)}
    for protocol, port, host in announced.values():
        assert ClientEndpoint(protocol, host, port, "implicit") in PRODUCTION
