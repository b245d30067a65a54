"""JMAP push against a running server: the event source (RFC 8620 §7.3) read with httpx
streaming, and JMAP over WebSocket (RFC 8887) with the ``websockets`` client, woken by
deliveries and by IMAP on another connection."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from mailstead.testing.server import ServerThread
from tests.web.jmap.test_jmap_mail import CORE, MAIL, PASSWORD, Account, mail

WEBSOCKET = "urn:ietf:params:jmap:websocket"
WAIT = 30.0  # generous bound for anything the server should do "at once"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    # maxSizeRequest below http.max_body_size: a message between the two is JMAP's to refuse.
    config = {"auth": {"allow_plaintext": True}, "jmap": {"max_size_request": 100_000}}
    with ServerThread(tmp_path_factory.mktemp("push"), config) as srv:
        yield srv


@pytest.fixture
def account(server: ServerThread) -> Iterator[Account]:
    made = Account(server)
    yield made
    made.http.close()


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(event name, data, id) of each Server-Sent Event in a stream of lines."""
    name, data, event_id = "message", "", None
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads(data), event_id
            name, data, event_id = "message", "", None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data += value
            elif field == "id":
                event_id = value


def email_state(account: Account) -> str:
    state: str = account.one("Email/get", ids=[])["state"]
    return state


def subscriptions(server: ServerThread, account: Account) -> int:
    return len(server.store.changes._subscribers.get(account.user.id, ()))


def wait_until(condition: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- the event source ---------------------------------------------------------------------


def test_a_delivery_is_a_state_event(account: Account) -> None:
    with account.http.stream(
        "GET", "/jmap/eventsource?types=*&closeafter=no&ping=0", timeout=WAIT
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        account.deliver(mail(1))
        name, data, event_id = next(sse_events(response.iter_lines()))
    assert name == "state"
    state = email_state(account)
    assert data == {
        "@type": "StateChange",
        "changed": {account.account_id: {"Email": state, "Mailbox": state, "Thread": state}},
    }
    assert event_id == state


def test_an_imap_store_elsewhere_is_an_email_change(account: Account) -> None:
    account.deliver(mail(2))
    with account.http.stream(
        "GET", "/jmap/eventsource?types=Email&closeafter=no&ping=0", timeout=WAIT
    ) as response:
        imap = account.imap()
        try:
            imap.select("INBOX")
            imap.store("1", "+FLAGS", "(\\Flagged)")
        finally:
            imap.logout()
        name, data, _ = next(sse_events(response.iter_lines()))
    assert name == "state"
    assert data["changed"] == {account.account_id: {"Email": email_state(account)}}


def test_types_filter_what_is_told(account: Account) -> None:
    with account.http.stream(
        "GET", "/jmap/eventsource?types=Mailbox&closeafter=state&ping=0", timeout=WAIT
    ) as response:
        account.one("Mailbox/set", create={"new": {"name": "Projects"}})
        events = list(sse_events(response.iter_lines()))
    # closeafter=state: the stream ends after its first state event.
    assert [name for name, _, _ in events] == ["state"]
    assert list(events[0][1]["changed"][account.account_id]) == ["Mailbox"]


def test_closeafter_state_ends_the_stream(account: Account) -> None:
    with account.http.stream(
        "GET", "/jmap/eventsource?types=*&closeafter=state&ping=0", timeout=WAIT
    ) as response:
        account.deliver(mail(3))
        events = list(sse_events(response.iter_lines()))
    assert len(events) == 1 and events[0][0] == "state"


def test_pings_keep_an_idle_stream_alive(account: Account) -> None:
    # 1 s is below the server's minimum: it pings at its minimum and says so.
    with account.http.stream(
        "GET", "/jmap/eventsource?types=*&closeafter=no&ping=1", timeout=WAIT
    ) as response:
        name, data, _ = next(sse_events(response.iter_lines()))
    assert name == "ping"
    assert data == {"interval": 5}


def test_last_event_id_resumes_with_the_missed_change(account: Account) -> None:
    before = email_state(account)
    account.deliver(mail(4))
    with account.http.stream(
        "GET",
        "/jmap/eventsource?types=Email&closeafter=state&ping=0",
        headers={"Last-Event-ID": before},
        timeout=WAIT,
    ) as response:
        events = list(sse_events(response.iter_lines()))
    assert events[0][1]["changed"] == {account.account_id: {"Email": email_state(account)}}


def test_a_client_that_leaves_lets_go_of_its_subscription(
    server: ServerThread, account: Account
) -> None:
    with account.http.stream(
        "GET", "/jmap/eventsource?types=*&closeafter=no&ping=0", timeout=WAIT
    ) as response:
        assert response.status_code == 200
        assert subscriptions(server, account) == 1
    account.http.close()  # the connection goes with the client
    wait_until(lambda: subscriptions(server, account) == 0)


def test_the_event_source_needs_credentials_and_a_sound_query(
    server: ServerThread, account: Account
) -> None:
    url = f"http://127.0.0.1:{server.port('http')}/jmap/eventsource?types=*&closeafter=no&ping=0"
    assert httpx.get(url, timeout=WAIT).status_code == 401
    wrong = httpx.get(url, auth=(account.address, "not the password"), timeout=WAIT)
    assert wrong.status_code == 401
    bad = account.http.get("/jmap/eventsource?types=*&closeafter=maybe&ping=0")
    assert bad.status_code == 400
    bad_ping = account.http.get("/jmap/eventsource?types=*&closeafter=no&ping=soon")
    assert bad_ping.status_code == 400


# -- WebSocket ----------------------------------------------------------------------------


def ws_url(server: ServerThread) -> str:
    return f"ws://127.0.0.1:{server.port('http')}/jmap/ws"


def basic(address: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{address}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def open_ws(server: ServerThread, account: Account) -> ClientConnection:
    return connect(
        ws_url(server),
        subprotocols=["jmap"],  # type: ignore[list-item]
        additional_headers=basic(account.address),
        open_timeout=WAIT,
    )


def receive(ws: ClientConnection) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(ws.recv(timeout=WAIT))
    return answer


def test_the_session_offers_the_websocket(server: ServerThread, account: Account) -> None:
    capability = account.session["capabilities"][WEBSOCKET]
    assert capability == {"url": ws_url(server), "supportsPush": True}


def test_a_request_over_the_websocket(server: ServerThread, account: Account) -> None:
    with open_ws(server, account) as ws:
        assert ws.subprotocol == "jmap"
        ws.send(
            json.dumps(
                {
                    "@type": "Request",
                    "id": "R1",
                    "using": [CORE, MAIL],
                    "methodCalls": [
                        ["Core/echo", {"hello": True}, "c0"],
                        ["Mailbox/get", {"accountId": account.account_id, "ids": None}, "c1"],
                    ],
                }
            )
        )
        answer = receive(ws)
    assert answer["@type"] == "Response"
    assert answer["requestId"] == "R1"
    assert answer["methodResponses"][0] == ["Core/echo", {"hello": True}, "c0"]
    assert answer["methodResponses"][1][0] == "Mailbox/get"
    # The same session, whichever way the client came in.
    assert answer["sessionState"] == account.session["state"]


def test_request_errors_over_the_websocket(server: ServerThread, account: Account) -> None:
    with open_ws(server, account) as ws:
        ws.send("{not json")
        not_json = receive(ws)
        ws.send(json.dumps({"@type": "Request", "id": "R2", "using": [CORE]}))
        not_request = receive(ws)
        ws.send(json.dumps({"@type": "Hello", "id": "R3"}))
        unknown = receive(ws)
    assert not_json["@type"] == "RequestError"
    assert not_json["type"] == "urn:ietf:params:jmap:error:notJSON"
    assert not_request == {
        "@type": "RequestError",
        "requestId": "R2",
        "type": "urn:ietf:params:jmap:error:notRequest",
        "status": 400,
        "detail": not_request["detail"],
    }
    assert unknown["requestId"] == "R3"
    assert unknown["type"] == "urn:ietf:params:jmap:error:notRequest"


def test_push_over_the_websocket(server: ServerThread, account: Account) -> None:
    with open_ws(server, account) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Email"]}))
        # The enable has no answer; an echo round trip shows it was taken before the delivery.
        ws.send(
            json.dumps(
                {
                    "@type": "Request",
                    "id": "sync",
                    "using": [CORE],
                    "methodCalls": [["Core/echo", {}, "0"]],
                }
            )
        )
        assert receive(ws)["requestId"] == "sync"
        account.deliver(mail(5))
        pushed = receive(ws)
        state = email_state(account)
        assert pushed == {
            "@type": "StateChange",
            "changed": {account.account_id: {"Email": state}},
            "pushState": state,
        }
        ws.send(json.dumps({"@type": "WebSocketPushDisable"}))
    # Enabling again with the pushState seen last: what happened since comes at once.
    account.deliver(mail(6))
    with open_ws(server, account) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": state}))
        caught_up = receive(ws)
    now = email_state(account)
    assert caught_up["pushState"] == now
    assert caught_up["changed"][account.account_id] == {"Email": now, "Mailbox": now, "Thread": now}


def test_the_websocket_needs_credentials(server: ServerThread, account: Account) -> None:
    with pytest.raises(InvalidStatus) as anonymous:
        connect(
            ws_url(server),
            subprotocols=["jmap"],  # type: ignore[list-item]
            open_timeout=WAIT,
        )
    assert anonymous.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as wrong:
        connect(
            ws_url(server),
            subprotocols=["jmap"],  # type: ignore[list-item]
            additional_headers=basic(account.address, "wrong password"),
            open_timeout=WAIT,
        )
    assert wrong.value.response.status_code == 401


def test_the_websocket_needs_the_jmap_subprotocol(server: ServerThread, account: Account) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(server), additional_headers=basic(account.address), open_timeout=WAIT)
    assert refused.value.response.status_code == 400


def test_bad_upgrades_are_refused(server: ServerThread, account: Account) -> None:
    plain = account.http.get("/jmap/ws")
    assert plain.status_code == 426 and plain.headers["upgrade"] == "websocket"
    auth = basic(account.address)["Authorization"]
    # No Sec-WebSocket-Key (RFC 6455 §4.2.1): not a handshake the server can complete.
    request = (
        "GET /jmap/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\nAuthorization: {auth}"
        "\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port("http")), timeout=WAIT) as sock:
        sock.sendall(request)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    assert answer.startswith(b"HTTP/1.1 400 ")
    # A WebSocket where the server has none.
    with pytest.raises(InvalidStatus) as nowhere:
        connect(
            f"ws://127.0.0.1:{server.port('http')}/jmap/nowhere",
            additional_headers=basic(account.address),
            open_timeout=WAIT,
        )
    assert nowhere.value.response.status_code == 403


def test_a_message_above_max_size_request_is_a_limit_error(
    server: ServerThread, account: Account
) -> None:
    limit = account.session["capabilities"][CORE]["maxSizeRequest"]
    assert limit == 100_000
    with open_ws(server, account) as ws:
        ws.send(
            json.dumps(
                {
                    "@type": "Request",
                    "id": "big",
                    "using": [CORE],
                    "methodCalls": [["Core/echo", {"pad": "x" * limit}, "0"]],
                }
            )
        )
        answer = receive(ws)
    assert answer["type"] == "urn:ietf:params:jmap:error:limit"
    assert answer["limit"] == "maxSizeRequest"


def test_wss_on_the_https_listener(server: ServerThread, account: Account) -> None:
    base = f"https://localhost:{server.port('https')}"
    with httpx.Client(
        base_url=base, auth=(account.address, PASSWORD), verify=server.client_ssl_context()
    ) as client:
        url = client.get("/jmap/session").json()["capabilities"][WEBSOCKET]["url"]
    assert url == f"wss://localhost:{server.port('https')}/jmap/ws"
    with connect(
        url,
        subprotocols=["jmap"],  # type: ignore[list-item]
        additional_headers=basic(account.address),
        ssl=server.client_ssl_context(),
        open_timeout=WAIT,
    ) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}))
        ws.send(
            json.dumps(
                {
                    "@type": "Request",
                    "id": "s",
                    "using": [CORE],
                    "methodCalls": [["Core/echo", {}, "0"]],
                }
            )
        )
        assert receive(ws)["requestId"] == "s"
        account.deliver(mail(7))
        pushed = receive(ws)
    assert list(pushed["changed"][account.account_id]) == ["Mailbox"]
