"""Long-lived answers on the HTTP listeners (JMAP push): a streaming response lives past
the request deadline, hears the client leave, and ends cleanly at shutdown; a WebSocket is
pinged when idle and closed with 1001 at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Request, TextMessage

from mailstead.config.schema import HTTPSettings, ListenerSettings
from mailstead.http import server as http_server
from mailstead.http.server import HTTPServer
from mailstead.net.listener import Listener
from mailstead.net.stream import StreamError

WAIT = 30.0


class _Streaming:
    """Sends a chunk, then waits for the client to go; records what receive() said."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.ended = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.heard.append(f"disconnect {message['code']}")
                    self.ended.set()
                    return
                self.heard.append(f"text {message.get('text')}")
                with contextlib.suppress(StreamError):  # the client may have closed already
                    await send({"type": "websocket.send", "text": message.get("text", "")})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: hello\n\n", "more_body": True})
        try:
            while True:
                message = await receive()
                self.heard.append(message["type"])
                if message["type"] == "http.disconnect":
                    return
        finally:
            self.ended.set()


async def _listener(app: Any, **settings: Any) -> Listener:
    http = HTTPServer(app, HTTPSettings(**settings))
    handler, reject = http.endpoint("http", ListenerSettings())
    listener = Listener("http", "127.0.0.1", 0, handler, reject=reject)
    await listener.start()
    return listener


async def _get(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 200 ")
    return reader, writer


async def test_a_stream_outlives_the_request_deadline_and_hears_the_client_go() -> None:
    app = _Streaming()
    listener = await _listener(app, request_timeout_seconds=1)
    try:
        reader, writer = await _get(listener.port)
        assert b"data: hello" in await asyncio.wait_for(reader.readuntil(b"\n\n"), WAIT)
        await asyncio.sleep(1.5)  # past request_timeout_seconds: the stream stays
        assert not app.ended.is_set()
        writer.close()
        await asyncio.wait_for(app.ended.wait(), WAIT)
        assert app.heard == ["http.request", "http.disconnect"]
    finally:
        await listener.stop(1.0)


async def test_shutdown_ends_a_stream_with_its_last_chunk() -> None:
    app = _Streaming()
    listener = await _listener(app)
    reader, writer = await _get(listener.port)
    await asyncio.wait_for(reader.readuntil(b"\n\n"), WAIT)
    await listener.stop(0.1)
    rest = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    assert rest.endswith(b"0\r\n\r\n")  # the chunked body's end (RFC 9112 §7.1)


async def test_shutdown_closes_a_websocket_with_1001() -> None:
    app = _Streaming()
    listener = await _listener(app)
    async with connect(f"ws://127.0.0.1:{listener.port}/ws", open_timeout=WAIT) as ws:
        await ws.send("echo")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "echo"
        await listener.stop(0.1)
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert ws.close_code == 1001


async def test_an_idle_websocket_is_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "WS_PING_SECONDS", 0.2)
    app = _Streaming()
    listener = await _listener(app)
    try:
        # The client answers pings itself (and sends none: ping_interval=None).
        async with connect(
            f"ws://127.0.0.1:{listener.port}/ws", ping_interval=None, open_timeout=WAIT
        ) as ws:
            await asyncio.sleep(1.0)  # several ping intervals: answered, so still open
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "still here"
    finally:
        await listener.stop(1.0)


async def test_a_websocket_message_above_the_body_limit_closes_with_1009() -> None:
    app = _Streaming()
    listener = await _listener(app, max_body_size=1000)
    try:
        async with connect(f"ws://127.0.0.1:{listener.port}/ws", open_timeout=WAIT) as ws:
            await ws.send("x" * 2000)
            with pytest.raises(Exception):  # noqa: B017 - websockets' ConnectionClosedError
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1009
    finally:
        await listener.stop(1.0)


async def test_a_message_and_the_close_in_one_packet_are_heard_in_order() -> None:
    """A message and a Close read at once: the application hears the message, then the
    end with the client's code."""
    app = _Streaming()
    listener = await _listener(app)
    try:
        client = WSConnection(ConnectionType.CLIENT)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(client.send(Request(host="x", target="/ws")))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101 ")
        client.receive_data(head)
        list(client.events())
        writer.write(
            client.send(TextMessage(data="last")) + client.send(CloseConnection(code=1000))
        )
        await writer.drain()
        await asyncio.wait_for(app.ended.wait(), WAIT)
        writer.close()
        assert app.heard == ["text last", "disconnect 1000"]
    finally:
        await listener.stop(1.0)
