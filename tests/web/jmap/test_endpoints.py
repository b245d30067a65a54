"""The JMAP endpoints over HTTP (RFC 8620 §2, §3, §6): httpx against the routes of
``build_jmap``, with in-memory accounts and blobs (tests/web/jmap/memory.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mailstead.auth.throttle import Throttle, ThrottlePolicy
from mailstead.core import sanity
from mailstead.http.jmap.app import JMAPServices, build_jmap, content_disposition
from mailstead.http.jmap.dispatch import CORE, CallContext, Methods
from mailstead.http.jmap.session import OtherAccount, session_resource
from mailstead.http.jmap.standard import Limits
from tests.web.jmap.memory import MAIL, Blobs, User, World, account_id_of, services

ALICE = ("alice@example.org", "alice's password")
BOB = ("bob@example.org", "bob's password")
JSON = {"Content-Type": "application/json"}
PROBLEM = "application/problem+json"
URN = "urn:ietf:params:jmap:error:"


def client(
    jmap: JMAPServices, *, address: str = "127.0.0.1", scheme: str = "http"
) -> httpx.AsyncClient:
    app = Starlette(routes=build_jmap(jmap))
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://mail.example.org")


def body(*calls: list[Any], using: tuple[str, ...] = (CORE,), **extra: Any) -> bytes:
    return json.dumps({"using": list(using), "methodCalls": list(calls), **extra}).encode()


def problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "Traceback" not in response.text
    document: dict[str, Any] = response.json()
    if kind is not None:
        assert document["type"] == URN + kind
        assert document["status"] == status
    return document


async def test_the_well_known_uri_redirects_to_the_session() -> None:
    async with client(services()) as http:
        response = await http.get("/.well-known/jmap")
    assert response.status_code == 307
    assert response.headers["location"] == "/jmap/session"


async def test_the_session_resource() -> None:
    world = World()
    limits = Limits(max_calls_in_request=7)
    async with client(services(world=world, limits=limits)) as http:
        response = await http.get("/jmap/session", auth=ALICE)
        again = await http.get("/jmap/session", auth=ALICE)
        world.state = "st2"  # the caller says the session changed
        changed = await http.get("/jmap/session", auth=ALICE)
        bobs = await http.get("/jmap/session", auth=BOB)
    assert response.status_code == 200
    session = response.json()
    account = account_id_of(user_named("alice@example.org"))
    assert session["capabilities"][CORE] == {
        "maxSizeUpload": limits.max_size_upload,
        "maxConcurrentUpload": 4,
        "maxSizeRequest": limits.max_size_request,
        "maxConcurrentRequests": 4,
        "maxCallsInRequest": 7,
        "maxObjectsInGet": 500,
        "maxObjectsInSet": 500,
        "collationAlgorithms": ["i;ascii-casemap", "i;octet", "i;unicode-casemap"],
    }
    assert session["capabilities"][MAIL] == {}
    assert session["accounts"] == {
        account: {
            "name": "alice@example.org",
            "isPersonal": True,
            "isReadOnly": False,
            "accountCapabilities": {CORE: {}, MAIL: {"maxMailboxDepth": 10}},
        }
    }
    assert session["primaryAccounts"] == {CORE: account, MAIL: account}
    assert session["username"] == "alice@example.org"
    base = "http://mail.example.org"
    assert session["apiUrl"] == f"{base}/jmap/api"
    assert session["uploadUrl"] == f"{base}/jmap/upload/{{accountId}}"
    assert session["downloadUrl"] == (
        f"{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}"
    )
    assert "{types}" in session["eventSourceUrl"] and "{ping}" in session["eventSourceUrl"]
    assert again.json()["state"] == session["state"]
    assert changed.json()["state"] != session["state"]
    assert bobs.json()["state"] != session["state"] and bobs.json()["username"] == BOB[0]


def user_named(address: str) -> User:
    """A stand-in with the address only: account ids depend on nothing else."""
    return User(address, "")


async def test_credentials_are_required_and_checked() -> None:
    throttle = Throttle(ThrottlePolicy(delay_after=100, lock_after=3, base_delay=0.0))
    async with client(services(throttle=throttle)) as http:
        missing = await http.get("/jmap/session")
        assert problem(missing, 401)["detail"]
        assert missing.headers["www-authenticate"].startswith('Basic realm="mailstead"')
        wrong = await http.get("/jmap/session", auth=(ALICE[0], "guess"))
        assert problem(wrong, 401)["detail"] == "authentication failed"
        assert "www-authenticate" in wrong.headers
        garbled = await http.get("/jmap/session", headers={"Authorization": "Basic %%%"})
        problem(garbled, 401)
        bearer = await http.post(
            "/jmap/api", headers={"Authorization": "Bearer x", **JSON}, content=body()
        )
        problem(bearer, 401)
        for _ in range(2):
            await http.get("/jmap/session", auth=(ALICE[0], "guess"))
        locked = await http.get("/jmap/session", auth=ALICE)  # even the right password
        assert problem(locked, 429) and int(locked.headers["retry-after"]) >= 1


async def test_credentials_over_plain_http_from_elsewhere_are_refused() -> None:
    async with client(services(), address="192.0.2.7") as http:
        refused = await http.get("/jmap/session", auth=ALICE)
        assert "HTTPS" in problem(refused, 403)["detail"]
        upload = await http.post("/jmap/upload/x", auth=ALICE, content=b"data")
        problem(upload, 403)
    async with client(services(), address="192.0.2.7", scheme="https") as http:
        assert (await http.get("/jmap/session", auth=ALICE)).status_code == 200
    async with client(services(allow_plaintext=True), address="192.0.2.7") as http:
        assert (await http.get("/jmap/session", auth=ALICE)).status_code == 200
    async with client(services(), address="::1") as http:
        assert (await http.get("/jmap/session", auth=ALICE)).status_code == 200


async def test_a_batch_with_echo_and_back_references() -> None:
    world = World(state="st7")
    async with client(services(world=world)) as http:
        session = (await http.get("/jmap/session", auth=ALICE)).json()
        response = await http.post(
            "/jmap/api",
            auth=ALICE,
            headers=JSON,
            content=body(
                ["Core/echo", {"list": [{"id": "a", "n": [1]}, {"id": "b", "n": [2, 3]}]}, "c1"],
                [
                    "Core/echo",
                    {
                        "#ids": {"resultOf": "c1", "name": "Core/echo", "path": "/list/*/id"},
                        "#n": {"resultOf": "c1", "name": "Core/echo", "path": "/list/*/n"},
                    },
                    "c2",
                ],
                ["Core/echo", {"#x": {"resultOf": "c9", "name": "Core/echo", "path": "/"}}, "c3"],
                ["Mailbox/get", {}, "c4"],
                createdIds={"k": "M1"},
            ),
        )
    assert response.status_code == 200 and response.headers["content-type"] == ("application/json")
    answer = response.json()
    assert answer["methodResponses"] == [
        ["Core/echo", {"list": [{"id": "a", "n": [1]}, {"id": "b", "n": [2, 3]}]}, "c1"],
        ["Core/echo", {"ids": ["a", "b"], "n": [1, 2, 3]}, "c2"],
        [
            "error",
            {
                "type": "invalidResultReference",
                "description": answer["methodResponses"][2][1]["description"],
            },
            "c3",
        ],
        [
            "error",
            {
                "type": "unknownMethod",
                "description": answer["methodResponses"][3][1]["description"],
            },
            "c4",
        ],
    ]
    assert answer["createdIds"] == {"k": "M1"}
    assert answer["sessionState"] == session["state"]  # RFC 8620 §3.4: the same value


async def test_request_level_errors_are_jmap_problems() -> None:
    limits = Limits(max_calls_in_request=2, max_size_request=1000)
    async with client(services(limits=limits)) as http:

        async def post(content: bytes, headers: dict[str, str] = JSON) -> httpx.Response:
            return await http.post("/jmap/api", auth=ALICE, headers=headers, content=content)

        problem(await post(b"{not json"), 400, "notJSON")
        problem(await post(body(), {"Content-Type": "text/plain"}), 400, "notJSON")
        problem(await post(b"[]"), 400, "notRequest")
        problem(await post(b'{"using": ["x"]}'), 400, "notRequest")
        unknown = problem(
            await post(body(using=(CORE, "urn:example:nope"))), 400, "unknownCapability"
        )
        assert "urn:example:nope" in unknown["detail"]
        calls = problem(
            await post(body(*[["Core/echo", {}, str(i)] for i in range(3)])), 400, "limit"
        )
        assert calls["limit"] == "maxCallsInRequest"
        big = body(["Core/echo", {"pad": "x" * 1000}, "c1"])
        assert problem(await post(big), 400, "limit")["limit"] == "maxSizeRequest"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(20):
                yield b" " * 100

        sent: list[int] = []

        async def counted() -> AsyncIterator[bytes]:
            for _ in range(20):
                sent.append(100)
                yield b" " * 100

        announced = await http.post(
            "/jmap/api",
            auth=ALICE,
            content=counted(),
            headers={**JSON, "Content-Length": "2000"},
        )
        assert problem(announced, 400, "limit")["limit"] == "maxSizeRequest"
        assert sent == []  # refused from Content-Length, before a byte of the body was read
        streamed = await http.post("/jmap/api", auth=ALICE, headers=JSON, content=chunks())
        assert problem(streamed, 400, "limit")["limit"] == "maxSizeRequest"
        # The mail capability is offered, so it may be used.
        assert (await post(body(["Core/echo", {}, "c"], using=(CORE, MAIL)))).status_code == 200


async def test_concurrent_requests_of_an_account_are_limited() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def wait(context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {}

    methods = Methods()
    methods.add("Test/wait", CORE, wait)
    async with client(services(methods, limits=Limits(max_concurrent_requests=1))) as http:
        first = asyncio.create_task(
            http.post("/jmap/api", auth=ALICE, headers=JSON, content=body(["Test/wait", {}, "c1"]))
        )
        await started.wait()
        second = await http.post(
            "/jmap/api", auth=ALICE, headers=JSON, content=body(["Core/echo", {}, "c1"])
        )
        bobs = await http.post(
            "/jmap/api", auth=BOB, headers=JSON, content=body(["Core/echo", {}, "c1"])
        )
        release.set()
        assert (await first).status_code == 200
        third = await http.post(
            "/jmap/api", auth=ALICE, headers=JSON, content=body(["Core/echo", {}, "c1"])
        )
    assert problem(second, 400, "limit")["limit"] == "maxConcurrentRequests"
    assert bobs.status_code == 200  # another account's requests are its own
    assert third.status_code == 200  # the count went down again


async def test_a_failing_method_is_server_fail_without_details(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(sanity.ENV_VAR)

    async def crash(context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("/var/lib/secret")

    methods = Methods()
    methods.add("Test/crash", CORE, crash)
    async with client(services(methods)) as http:
        response = await http.post(
            "/jmap/api", auth=ALICE, headers=JSON, content=body(["Test/crash", {}, "c1"])
        )
    assert response.json()["methodResponses"] == [["error", {"type": "serverFail"}, "c1"]]
    assert "secret" not in response.text


async def test_upload_and_download() -> None:
    blobs = Blobs()
    alice = account_id_of(user_named(ALICE[0]))
    bob = account_id_of(user_named(BOB[0]))
    data = bytes(range(256)) * 10
    async with client(services(blobs=blobs)) as http:
        uploaded = await http.post(
            f"/jmap/upload/{alice}", auth=ALICE, content=data, headers={"Content-Type": "image/png"}
        )
        assert uploaded.status_code == 201, uploaded.text
        answer = uploaded.json()
        assert answer == {
            "accountId": alice,
            "blobId": answer["blobId"],
            "type": "image/png",
            "size": len(data),
        }
        blob = answer["blobId"]
        download = await http.get(
            f"/jmap/download/{alice}/{blob}/photo.png", params={"accept": "image/png"}, auth=ALICE
        )
        assert download.status_code == 200 and download.content == data
        assert download.headers["content-type"] == "image/png"
        assert download.headers["content-disposition"] == 'attachment; filename="photo.png"'
        assert "immutable" in download.headers["cache-control"]
        assert "private" in download.headers["cache-control"]
        assert download.headers["x-content-type-options"] == "nosniff"
        named = await http.get(
            f"/jmap/download/{alice}/{blob}/R%C3%A9sum%C3%A9%20%22x%22.pdf", auth=ALICE
        )
        assert named.headers["content-type"] == "application/octet-stream"
        assert named.headers["content-disposition"] == (
            'attachment; filename="R_sum_ _x_.pdf"; '
            "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22x%22.pdf"
        )
        untyped = await http.post(
            f"/jmap/upload/{alice}", auth=ALICE, content=b"x", headers={"Content-Type": ""}
        )
        assert untyped.json()["type"] == "application/octet-stream"

        # Unknown blobs, other accounts' blobs and other accounts are not found.
        problem(await http.get(f"/jmap/download/{alice}/Bnope/x", auth=ALICE), 404)
        problem(await http.get(f"/jmap/download/{alice}/{blob}/x", auth=BOB), 404)
        problem(await http.get(f"/jmap/download/{bob}/{blob}/x", auth=BOB), 404)
        problem(await http.get(f"/jmap/download/{alice}/..%2Fx/x", auth=ALICE), 404)
        problem(await http.post(f"/jmap/upload/{bob}", auth=ALICE, content=b"x"), 404)
        bad_type = await http.get(
            f"/jmap/download/{alice}/{blob}/x",
            params={"accept": "text/html\r\nX-Evil: 1"},
            auth=ALICE,
        )
        problem(bad_type, 400)
        problem(await http.get(f"/jmap/download/{alice}/{blob}/x"), 401)


async def test_uploads_are_limited_in_size_and_number() -> None:
    alice = account_id_of(user_named(ALICE[0]))
    gate = asyncio.Event()
    entered = asyncio.Event()

    class SlowBlobs(Blobs):
        async def upload(self, user: Any, data: bytes, type: str) -> str:
            entered.set()
            await gate.wait()
            return await super().upload(user, data, type)

    limits = Limits(max_size_upload=100, max_concurrent_upload=1)
    async with client(services(limits=limits, blobs=SlowBlobs())) as http:
        too_big = await http.post(f"/jmap/upload/{alice}", auth=ALICE, content=b"x" * 101)
        assert problem(too_big, 413, "limit")["limit"] == "maxSizeUpload"
        first = asyncio.create_task(
            http.post(f"/jmap/upload/{alice}", auth=ALICE, content=b"x" * 100)
        )
        await entered.wait()
        second = await http.post(f"/jmap/upload/{alice}", auth=ALICE, content=b"y")
        assert problem(second, 429, "limit")["limit"] == "maxConcurrentUpload"
        gate.set()
        assert (await first).status_code == 201


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", 'attachment; filename="a.txt"'),
        ("日本.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        ('a"b\\c', "attachment; filename=\"a_b_c\"; filename*=UTF-8''a%22b%5Cc"),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    assert content_disposition(name) == expected


def test_every_route_is_served() -> None:
    paths = {getattr(route, "path", "") for route in build_jmap(services())}
    assert paths == {
        "/.well-known/jmap",
        "/jmap/session",
        "/jmap/api",
        "/jmap/upload/{accountId}",
        "/jmap/download/{accountId}/{blobId}/{name:path}",
    }


def test_other_accounts_in_the_session_resource() -> None:
    """RFC 8620 §1.6.2: a shared account is listed, not personal, never primary; the
    session's state changes when it comes or goes."""

    def resource(*others: OtherAccount) -> dict[str, Any]:
        return session_resource(
            username="bob@example.org", account_id="A2", account_name="bob@example.org",
            limits=Limits(), capabilities={MAIL: {}}, account_capabilities={MAIL: {"x": 1}},
            base_url="https://mail.example.org", others=others,
        )

    shared = OtherAccount("A1", "alice@example.org", True, {MAIL: {"x": 2}})
    with_share = resource(shared)
    assert with_share["accounts"]["A1"] == {
        "name": "alice@example.org", "isPersonal": False, "isReadOnly": True,
        "accountCapabilities": {CORE: {}, MAIL: {"x": 2}},
    }
    assert with_share["accounts"]["A2"]["isPersonal"] is True
    assert set(with_share["primaryAccounts"].values()) == {"A2"}
    assert resource()["state"] != with_share["state"]
    assert set(resource()["accounts"]) == {"A2"}
