"""JMAP PushSubscription (RFC 8620 §7.2) against a running server, pushing to a receiver
on 127.0.0.1 that this file starts: the PushVerification on creation, StateChange objects
once verified (in the clear, and encrypted per RFC 8291 and decrypted here with the
client's keys), a 410 destroying the subscription, and what /get and /set refuse."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailstead.testing.server import ServerThread
from mailstead.testing.waiting import poll_until

PASSWORD = "a long enough password"
CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
MESSAGE = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
_users = itertools.count(1)
_paths = itertools.count(1)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Receiver:
    """A push service stand-in: records every POST by path and answers 201, or the
    status set for the path."""

    def __init__(self) -> None:
        self.requests: dict[str, list[Received]] = {}
        self.status: dict[str, int] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner._lock:
                    owner.requests.setdefault(self.path, []).append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = owner.status.get(self.path, 201)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> tuple[str, str]:
        path = f"/push/{next(_paths)}"
        return path, f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait(self, path: str, count: int) -> list[Received]:
        def arrived() -> list[Received] | None:
            with self._lock:
                found = list(self.requests.get(path, []))
            return found if len(found) >= count else None

        return poll_until(arrived, timeout=15, failure=lambda: f"{count} POSTs to {path}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {
        "auth": {"allow_plaintext": True},
        "jmap": {"push_allow_http": True, "push_allow_private_destinations": True},
    }
    with ServerThread(tmp_path_factory.mktemp("webpush"), config) as srv:
        yield srv


class Account:
    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.user = server.add_user(f"push{next(_users)}@example.org", PASSWORD)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{server.port('http')}",
            auth=(self.user.address, PASSWORD),
            timeout=30,
        )
        self.account_id: str = self.http.get("/jmap/session").json()["primaryAccounts"][MAIL]

    def one(self, name: str, **args: Any) -> dict[str, Any]:
        """One call, without an accountId (RFC 8620 §7.2.1: there is none)."""
        body = {"using": [CORE, MAIL], "methodCalls": [[name, args, "c"]]}
        response = self.http.post("/jmap/api", json=body)
        assert response.status_code == 200, response.text
        [[answered, result, _]] = response.json()["methodResponses"]
        assert answered == name, result
        return result  # type: ignore[no-any-return]

    def create(self, **obj: Any) -> dict[str, Any]:
        result = self.one("PushSubscription/set", create={"k": {"deviceClientId": "d1", **obj}})
        assert result["created"] is not None, result["notCreated"]
        return result["created"]["k"]  # type: ignore[no-any-return]

    def verify(self, subscription_id: str, code: str) -> dict[str, Any]:
        return self.one(
            "PushSubscription/set", update={subscription_id: {"verificationCode": code}}
        )


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_verification_then_state_changes(server: ServerThread, receiver: Receiver) -> None:
    account = Account(server)
    path, url = receiver.url()
    created = account.create(url=url, types=["Mailbox", "Email"])
    [verification] = receiver.wait(path, 1)
    assert verification.headers["content-type"].startswith("application/json")
    assert int(verification.headers["ttl"]) > 0
    sent = verification.json()
    assert sent["@type"] == "PushVerification"
    assert sent["pushSubscriptionId"] == created["id"]

    # RFC 8620 §7.2.1: never url or keys; the code only once the client has set it.
    [listed] = account.one("PushSubscription/get", ids=None)["list"]
    assert listed["id"] == created["id"] and listed["deviceClientId"] == "d1"
    assert listed["verificationCode"] is None and "url" not in listed and "keys" not in listed
    assert listed["types"] == ["Mailbox", "Email"]

    # Nothing but the verification before the client proves it read it.
    server.deliver(account.user.id, MESSAGE)
    wrong = account.verify(created["id"], "not the code")
    assert wrong["notUpdated"][created["id"]]["type"] == "invalidProperties"
    assert wrong["notUpdated"][created["id"]]["properties"] == ["verificationCode"]
    assert len(receiver.requests[path]) == 1

    right = account.verify(created["id"], sent["verificationCode"])
    assert right["updated"] == {created["id"]: None}
    [listed] = account.one("PushSubscription/get", ids=[created["id"]])["list"]
    assert listed["verificationCode"] == sent["verificationCode"]

    # A second subscription of the account that is never verified hears nothing more.
    other_path, other_url = receiver.url()
    account.create(url=other_url)
    receiver.wait(other_path, 1)

    server.deliver(account.user.id, MESSAGE)
    state_change = receiver.wait(path, 2)[1].json()
    assert state_change["@type"] == "StateChange"
    [(account_id, changed)] = state_change["changed"].items()
    assert account_id == account.account_id
    assert set(changed) == {"Email", "Mailbox"}  # Thread was not asked for
    state = account.http.post(
        "/jmap/api",
        json={
            "using": [CORE, MAIL],
            "methodCalls": [["Email/get", {"accountId": account.account_id, "ids": []}, "0"]],
        },
    ).json()["methodResponses"][0][1]["state"]
    assert changed["Email"] == state
    server.deliver(account.user.id, MESSAGE)
    receiver.wait(path, 3)
    assert len(receiver.requests[other_path]) == 1


def test_encrypted_pushes(server: ServerThread, receiver: Receiver) -> None:
    """RFC 8291: the receiver decrypts with the device's private key and auth secret."""
    account = Account(server)
    device_key = ec.generate_private_key(ec.SECP256R1())
    public = device_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    auth = b"0123456789abcdef"

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decrypt(received: Received) -> dict[str, Any]:
        assert received.headers["content-encoding"] == "aes128gcm"
        plain = http_ece.decrypt(
            received.body, private_key=device_key, auth_secret=auth, version="aes128gcm"
        )
        value: dict[str, Any] = json.loads(plain)
        return value

    path, url = receiver.url()
    created = account.create(url=url, keys={"p256dh": b64(public), "auth": b64(auth)})
    [verification] = receiver.wait(path, 1)
    assert b"PushVerification" not in verification.body
    sent = decrypt(verification)
    assert sent["@type"] == "PushVerification" and sent["pushSubscriptionId"] == created["id"]
    account.verify(created["id"], sent["verificationCode"])
    server.deliver(account.user.id, MESSAGE)
    state_change = decrypt(receiver.wait(path, 2)[1])
    assert state_change["@type"] == "StateChange"
    assert set(state_change["changed"][account.account_id]) == {"Email", "Mailbox", "Thread"}


def test_gone_destroys_the_subscription(server: ServerThread, receiver: Receiver) -> None:
    account = Account(server)
    path, url = receiver.url()
    receiver.status[path] = 410  # RFC 8030 §7.3: the push service forgot it
    created = account.create(url=url)
    receiver.wait(path, 1)
    poll_until(
        lambda: (
            True if account.one("PushSubscription/get", ids=[created["id"]])["notFound"] else None
        ),
        timeout=10,
        failure=lambda: "the subscription is still there",
    )


def test_expires_is_clamped(server: ServerThread, receiver: Receiver) -> None:
    account = Account(server)
    _, url = receiver.url()
    now = datetime.now(UTC)
    far = (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = account.create(url=url, expires=far)
    clamped = _utc(created["expires"])
    assert now + timedelta(days=6) < clamped <= now + timedelta(days=7, seconds=5)

    soon = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    renewed = account.one("PushSubscription/set", update={created["id"]: {"expires": soon}})
    assert renewed["updated"] == {created["id"]: None}  # taken as asked: nothing to say
    again = account.one("PushSubscription/set", update={created["id"]: {"expires": far}})
    lowered = _utc(again["updated"][created["id"]]["expires"])
    assert timedelta(0) <= lowered - clamped < timedelta(seconds=5)  # lowered to the maximum
    [listed] = account.one("PushSubscription/get", ids=[created["id"]])["list"]
    assert _utc(listed["expires"]) == lowered
    past = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused = account.one(
        "PushSubscription/set", create={"p": {"deviceClientId": "d", "url": url, "expires": past}}
    )
    assert refused["notCreated"]["p"]["properties"] == ["expires"]


def test_fixed_properties_and_bad_objects(server: ServerThread, receiver: Receiver) -> None:
    account = Account(server)
    _, url = receiver.url()
    _, other_url = receiver.url()
    created = account.create(url=url)
    for patch, prop in (
        ({"url": other_url}, "url"),
        ({"deviceClientId": "d2"}, "deviceClientId"),
        ({"keys": {"p256dh": "AA", "auth": "AA"}}, "keys"),
    ):
        result = account.one("PushSubscription/set", update={created["id"]: patch})
        error = result["notUpdated"][created["id"]]
        assert error["type"] == "invalidProperties" and error["properties"] == [prop], error
    result = account.one(
        "PushSubscription/set",
        create={
            "a": {"deviceClientId": "d", "url": url, "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
            "b": {"deviceClientId": "d", "url": url, "verificationCode": "mine"},
            "c": {"url": url},
            "d": {"deviceClientId": "d", "url": url, "types": "Email"},
        },
    )
    assert {k: v["properties"] for k, v in result["notCreated"].items()} == {
        "a": ["keys"],
        "b": ["verificationCode"],
        "c": ["deviceClientId"],
        "d": ["types"],
    }
    # RFC 8620 §7.2.2: no accountId argument.
    body = {
        "using": [CORE],
        "methodCalls": [["PushSubscription/get", {"accountId": account.account_id}, "0"]],
    }
    [[name, error, _]] = account.http.post("/jmap/api", json=body).json()["methodResponses"]
    assert name == "error" and error["type"] == "invalidArguments"


def test_another_accounts_subscription_is_not_seen(
    server: ServerThread, receiver: Receiver
) -> None:
    owner, stranger = Account(server), Account(server)
    _, url = receiver.url()
    created = owner.create(url=url)
    seen = stranger.one("PushSubscription/get", ids=[created["id"]])
    assert seen == {"list": [], "notFound": [created["id"]]}
    assert stranger.one("PushSubscription/get", ids=None)["list"] == []
    destroyed = stranger.one("PushSubscription/set", destroy=[created["id"]])
    assert destroyed["notDestroyed"][created["id"]]["type"] == "notFound"
    updated = stranger.one("PushSubscription/set", update={created["id"]: {"types": None}})
    assert updated["notUpdated"][created["id"]]["type"] == "notFound"
    mine = owner.one("PushSubscription/set", destroy=[created["id"]])
    assert mine["destroyed"] == [created["id"]]


def test_default_settings_refuse_http_and_private_destinations(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with ServerThread(
        tmp_path_factory.mktemp("webpush-default"), {"auth": {"allow_plaintext": True}}
    ) as srv:
        account = Account(srv)
        result = account.one(
            "PushSubscription/set",
            create={
                "plain": {"deviceClientId": "d", "url": "http://push.example.com/x"},
                "loopback": {"deviceClientId": "d", "url": "https://127.0.0.1/x"},
                "private": {"deviceClientId": "d", "url": "https://[::ffff:10.0.0.1]/x"},
                "credentials": {"deviceClientId": "d", "url": "https://u:p@push.example.com/x"},
            },
        )
        assert result["created"] is None
        refused = result["notCreated"]
        assert {k: v["properties"] for k, v in refused.items()} == {
            "plain": ["url"],
            "loopback": ["url"],
            "private": ["url"],
            "credentials": ["url"],
        }
        assert "https" in refused["plain"]["description"]
        assert "public" in refused["loopback"]["description"]
        assert "public" in refused["private"]["description"]
        assert "user information" in refused["credentials"]["description"]


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_pushes_are_signed_with_the_announced_vapid_key(
    server: ServerThread, receiver: Receiver
) -> None:
    """RFC 9749: the session announces the application server key; RFC 8292: every push
    carries ``Authorization: vapid t=<JWT>, k=<that key>``, the JWT ES256-signed by it for
    the push service's origin, expiring within a day."""
    account = Account(server)
    session = account.http.get("/jmap/session").json()
    key = session["capabilities"]["urn:ietf:params:jmap:webpush-vapid"]["applicationServerKey"]
    path, url = receiver.url()
    account.create(url=url)
    [verification] = receiver.wait(path, 1)
    scheme, _, params = verification.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == key
    header, claims, signature = fields["t"].split(".")
    assert json.loads(_unb64(header)) == {"typ": "JWT", "alg": "ES256"}
    body = json.loads(_unb64(claims))
    origin = url.split("/", 3)
    assert body["aud"] == f"{origin[0]}//{origin[2]}"
    now = datetime.now(UTC).timestamp()
    assert now < body["exp"] <= now + 24 * 3600
    assert body["sub"].startswith("mailto:")
    raw = _unb64(signature)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(key))
    public.verify(  # raises InvalidSignature if the JWT was not signed by that key
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        f"{header}.{claims}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
