"""The admin API over real HTTP(S) against a running server: tokens and scopes, every
operation the command line has, errors as problem documents naming the field, the audit
log, and the account holder's own password change."""

from __future__ import annotations

import imaplib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from mailstead.admin.actors import command_line
from mailstead.auth.authenticator import Authenticator
from mailstead.auth.throttle import Throttle, ThrottlePolicy
from mailstead.cli.main import cli
from mailstead.cli.serve import build_admin
from mailstead.http.api.app import APIServices, build_api
from mailstead.store.models import OutboundEnvelope, QueuedRecipient, TextQuery
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import (
    ServerThread,
    build_settings,
    deep_merge,
    settings_dict_for_tests,
)

#: Commands of the command line that have no API operation, and why.
CLI_ONLY = {
    "serve": "starts the server the API runs in",
    "config check": "reads a configuration file on the admin's machine",
    "backup": "writes into a directory of the server's machine; run it there",
    "restore": "needs the server stopped",
    "status": "the API's /health answers the same question",
    "sendmail": "local submission for programs on the server's machine",
}
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def dns() -> Iterator[TestDNSServer]:
    with TestDNSServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           dns: TestDNSServer) -> Iterator[ServerThread]:
    config = deep_merge({"auth": {"allow_plaintext": True}}, dns.settings())
    with ServerThread(tmp_path_factory.mktemp("api"), config) as srv:
        srv.add_user("ann@example.org", PASSWORD)
        yield srv


def _token(server: ServerThread, scope: str = "admin", name: str = "test") -> str:
    admin = build_admin(server.store, server.settings)
    return server.call(admin.create_token(command_line(), name, scope)).text


@pytest.fixture(scope="module")
def api(server: ServerThread) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{server.port('http')}/api/v1"
    headers = {"Authorization": f"Bearer {_token(server)}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        yield client


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and "Traceback" not in response.text
    return body


def _cli_commands(group: click.Group, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            names |= _cli_commands(command, full + " ")
        else:
            names.add(full)
    return names


def test_every_cli_operation_is_in_the_openapi_document(server: ServerThread) -> None:
    response = httpx.get(f"http://127.0.0.1:{server.port('http')}/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    in_api = {operation["x-cli"] for path in schema["paths"].values()
              for operation in path.values() if "x-cli" in operation}
    commands = _cli_commands(cli)
    assert commands - set(CLI_ONLY) - in_api == set(), "CLI commands without an API route"
    assert in_api - commands == set(), "API routes naming a CLI command that does not exist"
    assert set(CLI_ONLY) <= commands, "CLI_ONLY names a command that does not exist"
    # Every operation says who may call it.
    schemes = schema["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer", "basic"}


def test_no_token_a_wrong_token_and_a_revoked_one_are_refused(server: ServerThread) -> None:
    url = f"http://127.0.0.1:{server.port('http')}/api/v1/domains"
    body = _problem(httpx.get(url), 401)
    assert "Bearer" in body["detail"]
    token = _token(server, name="short-lived")
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    wrong = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    response = httpx.get(url, headers={"Authorization": f"Bearer {wrong}"})
    assert _problem(response, 401)["detail"] == "the token is wrong or revoked"
    assert "invalid_token" in response.headers["www-authenticate"]
    token_id = int(token.split("_")[1])
    admin = build_admin(server.store, server.settings)
    server.call(admin.revoke_token(command_line(), token_id))
    _problem(httpx.get(url, headers={"Authorization": f"Bearer {token}"}), 401)
    used = server.call(server.store.find_token(token_id))
    assert used is not None and used.last_used is not None
    assert used.last_used_from == "127.0.0.1"


def test_domains_users_and_the_audit_log(server: ServerThread, api: httpx.Client) -> None:
    assert api.post("/domains", json={"name": "Shop.Example"}).json()["name"] == "shop.example"
    _problem(api.post("/domains", json={"name": "shop.example"}), 409)
    created = api.post("/users", json={"address": "bob@shop.example", "password": PASSWORD,
                                       "quota": 1_000_000})
    assert created.status_code == 201
    assert created.json()["quota"] == 1_000_000 and "password" not in created.text
    assert "password_hash" not in created.text
    listed = api.get("/users", params={"domain": "shop.example"}).json()
    assert [u["address"] for u in listed] == ["bob@shop.example"]
    assert api.put("/users/bob@shop.example/quota", json={"quota": 0}).status_code == 204
    assert api.put("/users/bob@shop.example/pop3-policy",
                   json={"policy": "keep"}).status_code == 204
    assert api.put("/users/bob@shop.example/plus-folders",
                   json={"enabled": True}).status_code == 204
    bob = api.get("/users/bob@shop.example").json()
    assert (bob["quota"], bob["pop3_policy"], bob["plus_folders"]) == (0, "keep", True)
    assert api.post("/users/bob@shop.example/disable").status_code == 204
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap, \
            pytest.raises(imaplib.IMAP4.error):
        imap.login("bob@shop.example", PASSWORD)
    assert api.post("/users/bob@shop.example/enable").status_code == 204
    assert api.put("/users/bob@shop.example/password",
                   json={"password": "another long password"}).status_code == 204
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        assert imap.login("bob@shop.example", "another long password")[0] == "OK"
    folders = api.get("/users/bob@shop.example/mailboxes").json()
    assert {"INBOX", "Sent", "Trash"} <= {f["name"] for f in folders}
    _problem(api.get("/users/nobody@shop.example"), 404)
    body = _problem(api.delete("/domains/shop.example"), 409)
    assert "shop.example" in body["detail"]

    records = api.get("/audit", params={"target": "shop.example"}).json()
    actions = [r["action"] for r in records]
    assert actions[:2] == ["user.passwd", "user.enable"]
    assert actions[-1] == "domain.add" and actions.count("domain.add") == 1  # 409: none
    assert {r["source"] for r in records} == {"127.0.0.1"}
    assert all(r["actor"].startswith("token ") for r in records)
    assert "another long password" not in json.dumps(records)
    assert api.delete("/users/bob@shop.example").status_code == 204
    assert api.delete("/domains/shop.example").status_code == 204


def test_shares(server: ServerThread, api: httpx.Client) -> None:
    api.post("/domains", json={"name": "share.example"})
    for who in ("team@share.example", "ann@share.example"):
        assert api.post("/users", json={"address": who, "password": PASSWORD}).status_code == 201
    granted = api.put("/users/team@share.example/shares",
                      json={"mailbox": "INBOX", "grantee": "ann@share.example", "rights": "lr"})
    assert granted.json() == {"mailbox": "INBOX", "grantee": "ann@share.example", "rights": "lr"}
    added = api.put("/users/team@share.example/shares", json={
        "mailbox": "INBOX", "grantee": "ann@share.example", "rights": "+s"})
    assert added.json()["rights"] == "lrs"
    assert api.get("/users/team@share.example/shares").json() == [
        {"mailbox": "INBOX", "grantee": "ann@share.example", "rights": "lrs"}]
    _problem(api.put("/users/team@share.example/shares", json={
        "mailbox": "INBOX", "grantee": "ann@share.example", "rights": "q"}), 422)
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login("ann@share.example", PASSWORD)
        typ, _ = imap.select('"Other Users/team@share.example/INBOX"')
        assert typ == "OK"
    assert api.delete("/users/team@share.example/shares",
                      params={"mailbox": "INBOX", "grantee": "ann@share.example"}
                      ).status_code == 204
    assert api.get("/users/team@share.example/shares").json() == []
    actions = [r["action"] for r in api.get("/audit", params={"target": "team@share.example"}
                                            ).json()]
    assert actions[:3] == ["share.revoke", "share.grant", "share.grant"]


def test_aliases_groups_dkim_and_import(server: ServerThread, api: httpx.Client) -> None:
    assert api.post("/aliases", json={"source": "sales@example.org",
                                      "targets": ["ann@example.org"]}).status_code == 201
    assert {"source": "sales@example.org", "targets": ["ann@example.org"]} in \
        api.get("/aliases").json()
    assert api.delete("/aliases/sales@example.org").status_code == 204
    assert api.post("/groups", json={"address": "team@example.org",
                                     "members": ["ann@example.org"]}).status_code == 201
    group = api.post("/groups/team@example.org/members", json={"member": "x@elsewhere.test"})
    assert group.json()["members"] == ["ann@example.org", "x@elsewhere.test"]
    group = api.delete("/groups/team@example.org/members/ann@example.org")
    assert group.json()["members"] == ["x@elsewhere.test"]
    assert api.delete("/groups/team@example.org").status_code == 204
    _problem(api.get("/groups/team@example.org"), 404)

    key = api.post("/dkim/keys", json={"domain": "example.org", "selector": "k1",
                                       "algorithm": "ed25519"})
    assert key.status_code == 201
    assert key.json()["record_name"] == "k1._domainkey.example.org"
    assert key.json()["record_value"].startswith("v=DKIM1; k=ed25519; p=")
    assert "private" not in key.text
    assert key.json() in api.get("/dkim/keys").json()

    mbox = (b"From a@b.test Mon Dec  7 10:00:00 2026\nSubject: one\n\nfirst\n"
            b"From a@b.test Mon Dec  7 10:01:00 2026\nSubject: two\n\nsecond\n")
    reports = api.post("/users/ann@example.org/import", params={"folder": "Imported"},
                       content=mbox, headers={"Content-Type": "application/mbox"})
    assert reports.status_code == 200, reports.text
    assert reports.json() == [{"folder": "Imported", "imported": 2, "skipped": {}}]
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login("ann@example.org", PASSWORD)
        assert imap.select("Imported")[1] == [b"2"]
    _problem(api.post("/users/ann@example.org/import", content=b""), 422)
    assert api.get("/store/check").json() == {"ok": True, "problems": []}


def test_the_queue(server: ServerThread, api: httpx.Client) -> None:
    _, queue_id = server.call(server.store.enqueue(
        b"From: ann@example.org\r\nSubject: waiting\r\n\r\nbody\r\n",
        OutboundEnvelope("ann@example.org", (QueuedRecipient("z@remote.test"),))))
    assert queue_id is not None
    listed = api.get("/queue").json()
    assert [q["id"] for q in listed] == [queue_id]
    shown = api.get(f"/queue/{queue_id}").json()
    assert shown["headers"]["Subject"] == "waiting"
    assert shown["recipients"][0]["address"] == "z@remote.test"
    assert api.post(f"/queue/{queue_id}/hold").status_code == 204
    assert api.get(f"/queue/{queue_id}").json()["held"] is True
    assert api.post(f"/queue/{queue_id}/release").status_code == 204
    assert api.post(f"/queue/{queue_id}/retry").json() == {"count": 1}
    assert api.post("/queue/retry").json() == {"count": 1}
    assert api.delete(f"/queue/{queue_id}").status_code == 204
    _problem(api.get(f"/queue/{queue_id}"), 404)
    _problem(api.get("/queue/not-a-number"), 422)


def test_bad_input_is_a_problem_naming_the_field(api: httpx.Client) -> None:
    body = _problem(api.post("/users", json={"address": "x@example.org", "colour": "red"}),
                    422)
    pointers = {e["pointer"] for e in body["errors"]}
    assert pointers == {"#/password", "#/colour"}
    body = _problem(api.post("/users", content=b"{not json",
                             headers={"Content-Type": "application/json"}), 422)
    assert "not valid JSON" in body["detail"]
    body = _problem(api.get("/audit", params={"limit": "0"}), 422)
    assert body["errors"][0]["parameter"] == "limit"
    body = _problem(api.post("/domains", json={"name": "two words"}), 422)
    assert "not a domain name" in body["detail"]
    body = _problem(api.post("/users", json={"address": "y@nowhere.test",
                                             "password": PASSWORD}), 404)
    assert "domain nowhere.test does not exist" in body["detail"]
    _problem(api.get("/no-such-route"), 404)


def test_a_domain_token_manages_its_domain_only(server: ServerThread,
                                                api: httpx.Client) -> None:
    api.post("/domains", json={"name": "tenant.test"})
    token = _token(server, "domain:tenant.test", "tenant")
    base = f"http://127.0.0.1:{server.port('http')}/api/v1"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as tenant:
        assert tenant.get("/whoami").json() == {"actor": f"token {token.split('_')[1]} "
                                                "(tenant)", "scope": "domain:tenant.test"}
        assert [d["name"] for d in tenant.get("/domains").json()] == ["tenant.test"]
        assert tenant.post("/users", json={"address": "t@tenant.test",
                                           "password": PASSWORD}).status_code == 201
        assert {u["address"] for u in tenant.get("/users").json()} == {"t@tenant.test"}
        body = _problem(tenant.post("/users", json={"address": "t@example.org",
                                                    "password": PASSWORD}), 403)
        assert "outside this token's scope" in body["detail"]
        _problem(tenant.get("/users", params={"domain": "example.org"}), 403)
        _problem(tenant.get("/users/ann@example.org"), 403)
        _problem(tenant.post("/domains", json={"name": "more.test"}), 403)
        _problem(tenant.get("/queue"), 403)
        _problem(tenant.get("/tokens"), 403)
        records = tenant.get("/audit").json()
        assert records and all(r["target"].endswith("tenant.test") for r in records)
    sender = _token(server, "send", "app")
    for path in ("/users", "/domains", "/aliases", "/groups", "/dkim/keys", "/audit"):
        response = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {sender}"})
        _problem(response, 403)


def test_tokens_over_the_api(server: ServerThread, api: httpx.Client) -> None:
    new = api.post("/tokens", json={"name": "ci deploy", "scope": "domain:example.org"})
    assert new.status_code == 201
    secret = new.json()["secret"]
    listed = api.get("/tokens").json()
    assert secret not in json.dumps(listed)
    mine = next(t for t in listed if t["name"] == "ci deploy")
    assert mine["scope"] == "domain:example.org" and mine["revoked"] is None
    _problem(api.post("/tokens", json={"name": "x", "scope": "root"}), 422)
    assert api.delete(f"/tokens/{mine['id']}").status_code == 204
    revoked = next(t for t in api.get("/tokens").json() if t["id"] == mine["id"])
    assert revoked["revoked"] is not None


def test_users_change_their_own_password_over_https(server: ServerThread) -> None:
    server.add_user("carol@example.org", PASSWORD)
    url = f"https://127.0.0.1:{server.port('https')}/api/v1/account/password"
    context = server.client_ssl_context()
    with httpx.Client(verify=context) as client:
        _problem(client.put(url, json={"new_password": "x" * 12}), 401)
        refused = client.put(url, json={"new_password": "carol's new password"},
                             auth=("carol@example.org", "wrong password"))
        assert _problem(refused, 401)["detail"] == "authentication failed"
        done = client.put(url, json={"new_password": "carol's new password"},
                          auth=("carol@example.org", PASSWORD))
        assert done.status_code == 204
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        assert imap.login("carol@example.org", "carol's new password")[0] == "OK"
    admin = build_admin(server.store, server.settings)
    records = server.call(admin.audit_log(command_line(), target="carol@example.org"))
    assert (records[0].actor, records[0].action) == ("user carol@example.org", "user.passwd")


async def test_credentials_over_plain_http_from_elsewhere_are_refused(tmp_path: Path) -> None:
    """Without TLS a token crosses the network readable; only loopback may do that, unless
    auth.allow_plaintext says so. Guessing tokens is throttled like guessing passwords."""
    settings = build_settings(settings_dict_for_tests(tmp_path / "data"))
    async with SQLiteStore(settings.data_dir) as store:
        admin = build_admin(store, settings)
        token = (await admin.create_token(command_line(), "t", "admin")).text
        throttle = Throttle(ThrottlePolicy(delay_after=1, lock_after=3, base_delay=0.0))
        services = APIServices(admin, Authenticator(store, throttle))
        headers = {"Authorization": f"Bearer {token}"}

        async def get(client: tuple[str, int], allow: bool = False,
                      auth: dict[str, str] = headers, scheme: str = "http") -> httpx.Response:
            app = build_api(APIServices(admin, services.authenticator, allow_plaintext=allow))
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport,
                                         base_url=f"{scheme}://test") as http:
                return await http.get("/v1/domains", headers=auth)

        body = _problem(await get(("192.0.2.7", 5000)), 403)
        assert "HTTPS" in body["detail"]
        assert (await get(("192.0.2.7", 5000), scheme="https")).status_code == 200
        assert (await get(("192.0.2.7", 5000), allow=True)).status_code == 200
        assert (await get(("::1", 5000))).status_code == 200
        assert (await get(("198.51.100.9", 1), allow=True)).status_code == 200
        wrong = {"Authorization": "Bearer mst_1_wrong"}
        for _ in range(3):
            _problem(await get(("198.51.100.1", 1), allow=True, auth=wrong), 401)
        locked = await get(("198.51.100.1", 1), allow=True, auth=headers)
        assert _problem(locked, 429) and int(locked.headers["retry-after"]) >= 1
        # Guessing token 1 from elsewhere does not lock out its owner's address, which
        # has used it before (a shared counter for every token would).
        assert (await get(("198.51.100.9", 1), allow=True)).status_code == 200


def test_dns_records_and_check(api: httpx.Client, dns: TestDNSServer) -> None:
    records = api.get("/domains/example.org/dns-records")
    assert records.status_code == 200
    published = records.json()["records"]
    mx = next(r for r in published if r["type"] == "MX")
    assert mx["name"] == "example.org" and mx["value"].endswith("localhost.")
    before = api.get("/domains/example.org/dns-check").json()
    assert {c["status"] for c in before["checks"]} == {"missing"}
    for record in published:
        dns.add(record["name"], record["type"], record["value"])
    after = api.get("/domains/example.org/dns-check").json()
    assert next(c for c in after["checks"] if c["type"] == "MX")["status"] == "ok"
    _problem(api.get("/domains/nowhere.test/dns-records"), 404)
    _problem(api.get("/domains/not a domain/dns-records"), 422)


def test_index_rebuild_is_scoped_and_audited(server: ServerThread, api: httpx.Client) -> None:
    """POST /store/index/rebuild (mailstead index rebuild, decision 0027): the account's
    messages are indexed again; every account only for an administrator."""
    store = server.store
    ann = server.call(store.find_user("ann@example.org"))
    assert ann is not None
    inbox = server.call(store.get_mailbox(ann.id, "INBOX"))
    server.call(store.append(inbox.id, b"Subject: rebuilt\r\n\r\nfind the walrus\r\n"))
    body = api.post("/store/index/rebuild", params={"account": "ann@example.org"}).json()
    assert body["indexed"] >= 1 and body["skipped"] == 0
    assert api.post("/store/index/rebuild").json()["indexed"] >= body["indexed"]
    found = server.call(store.search_text(inbox.id, [TextQuery(("body",), "walrus")]))
    assert len(found.hits[0]) == 1 and not found.unindexed
    records = api.get("/audit", params={"target": "ann@example.org"}).json()
    assert any(r["action"] == "index.rebuild" for r in records)
    _problem(api.post("/store/index/rebuild", params={"account": "nobody@example.org"}), 404)
    token = _token(server, "domain:example.org", "domain admin")
    base = f"http://127.0.0.1:{server.port('http')}/api/v1"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as tenant:
        assert tenant.post("/store/index/rebuild",
                           params={"account": "ann@example.org"}).status_code == 200
        _problem(tenant.post("/store/index/rebuild"), 403)
