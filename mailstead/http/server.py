"""The HTTP front end: one ASGI application served over HTTP/1.1 on mailstead's own listeners.

HTTP is a front end like SMTP, IMAP and POP3 (decision 0011): each connection is a
:class:`~mailstead.net.stream.Stream` from the same listeners, with the same connection
caps (per listener and per client address), TLS from the same certificates (reloaded on
SIGHUP), and the same drain on SIGTERM. The wire is h11 (sans-I/O HTTP/1.1, the library
uvicorn's pure-Python mode is built on); this module only moves its events between the
stream and the application:

- one request at a time per connection (HTTP/1.1 keep-alive; a pipelined request waits
  in the stream's buffer until the response before it is sent);
- limits before the application runs: ``http.max_header_size`` (431, the connection
  closes), ``http.max_body_size`` (413 from Content-Length, before a byte of the body is
  read; a chunked body that grows past it ends the connection), the whole request by
  ``http.request_timeout_seconds`` (408), ``http.keepalive_timeout_seconds`` idle between
  requests;
- every error the server itself answers is ``application/problem+json`` (RFC 9457), and
  nothing of an exception reaches the client: a failing application gets 500 and the
  traceback goes to the log.

Long-lived answers (JMAP push, RFC 8620 §7.3 and RFC 8887) have their own rules. The
request's limits bound only reading the request: a response may stream for as long as the
application sends, each piece written and drained at once (a peer that stops reading for
the stream's write timeout is dropped). Once the request is read, ``receive`` watches the
connection and reports ``http.disconnect`` when the client goes, so an idle stream costs
its coroutine and nothing ends it but the client, the application or shutdown. A
WebSocket upgrade (``Upgrade: websocket``, RFC 6455) is handed to wsproto on the same
connection and served as an ASGI ``websocket`` scope; an idle WebSocket is pinged every
:data:`WS_PING_SECONDS` and closed when a ping goes unanswered for as long again. At
shutdown (the listener's drain cancels what is left after the grace period) a streaming
response ends with its last chunk and a WebSocket with Close 1001, so clients see a clean
end and reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

import h11
import wsproto
import wsproto.events as ws
from wsproto.utilities import RemoteProtocolError as WSProtocolError

from mailstead.config.schema import HTTPSettings, ListenerSettings
from mailstead.core import metrics, sanity
from mailstead.net.listener import Handler, RejectHook
from mailstead.net.stream import ConnectionClosed, IdleTimeout, Stream, StreamError

log = logging.getLogger("mailstead.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_READ = 64 * 1024
_SERVER = b"mailstead"
#: An idle WebSocket is pinged this often; a ping unanswered for as long ends it.
WS_PING_SECONDS = 30.0


def problem_fields(status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    """The members of an RFC 9457 problem document (the routes' answers use them too)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return body


def problem(status: int, title: str, detail: str | None = None) -> bytes:
    """An RFC 9457 problem document, as the server itself sends it."""
    return json.dumps(problem_fields(status, title, detail)).encode()


class _Closing(Exception):
    """The connection ends after what was sent (an error answered, or the peer is gone)."""


class HTTPServer:
    """Serves ``app`` on the ``http`` and ``https`` listeners."""

    def __init__(self, app: ASGIApp, settings: HTTPSettings) -> None:
        self.app = app
        self.settings = settings

    def endpoint(self, name: str, listener: ListenerSettings) -> tuple[Handler, RejectHook]:
        scheme = "https" if listener.tls == "implicit" else "http"

        async def handle(stream: Stream) -> None:
            await _Connection(self, stream, scheme).run()

        return handle, reject


async def reject(stream: Stream, reason: str) -> None:
    """Connection cap reached: 503 with Retry-After instead of reading a request."""
    body = problem(503, "Service Unavailable", f"{reason}, try again later")
    stream.write(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        b"Retry-After: 10\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


class _Connection:
    """One HTTP connection: requests, one after another, until either side closes."""

    def __init__(self, server: HTTPServer, stream: Stream, scheme: str) -> None:
        self.server = server
        self.settings = server.settings
        self.stream = stream
        self.scheme = scheme
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.settings.max_header_size)
        self.log = stream.log
        self._deadline = float("inf")  # when the request being read must be complete

    async def run(self) -> None:
        try:
            while True:
                request = await self._next_request()
                if request is None:
                    return
                await self._serve(request)
                if self.h11.our_state is h11.MUST_CLOSE or not await self._next_cycle():
                    return
        except _Closing:
            return
        except (ConnectionClosed, StreamError):
            return
        finally:
            await self.stream.close(timeout=1.0)

    # -- reading ------------------------------------------------------------------------------

    async def _event(self, timeout: float, until: float | None) -> Any:
        """The next h11 event, reading as much as it needs."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc.error_status_hint, exc)
                raise _Closing from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.read_some(_READ, timeout=timeout, until=until)
            except ConnectionClosed:
                data = b""
            self.h11.receive_data(data)

    async def _next_request(self) -> h11.Request | None:
        """The next request's head, or None when the client has gone between requests."""
        if not self.stream.pending_bytes() and not self.h11.trailing_data[0]:
            try:  # idle between requests, up to the keep-alive time
                await self._wait_for_data(self.settings.keepalive_timeout_seconds)
            except IdleTimeout:
                return None  # close without a word: nothing of a request was sent
        # From its first byte, the whole request (head, then body) by one deadline.
        timeout = self.settings.request_timeout_seconds
        self._deadline = asyncio.get_running_loop().time() + timeout
        try:
            event = await self._event(timeout, self._deadline)
        except IdleTimeout:
            await self._refuse(408, None)
            raise _Closing from None
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request)
        # h11 bounds a head that arrives in pieces; one that arrives whole is measured here.
        size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
        if size > self.settings.max_header_size:
            await self._refuse(431, None)
            raise _Closing
        return event

    async def _wait_for_data(self, seconds: float) -> None:
        data = await self.stream.read_some(_READ, timeout=seconds)
        self.stream.unread(data)

    async def _next_cycle(self) -> bool:
        """Ready the connection for the next request; False when it must close. A body the
        application left unread is read and dropped first (within the request's limits)."""
        received = 0
        while self.h11.their_state is h11.SEND_BODY:
            try:
                event = await self._event(self.settings.request_timeout_seconds,
                                          self._deadline)
            except IdleTimeout:
                return False
            if isinstance(event, h11.Data):
                received += len(event.data)
                if received > self.settings.max_body_size:
                    return False
            elif not isinstance(event, h11.EndOfMessage):
                return False
        if self.h11.their_state is not h11.DONE:
            return False
        try:
            self.h11.start_next_cycle()
        except h11.LocalProtocolError:
            return False
        return True

    # -- one request --------------------------------------------------------------------------

    async def _serve(self, request: h11.Request) -> None:
        length = _content_length(request)
        if length is not None and length > self.settings.max_body_size:
            await self._refuse(413, None, f"the body may be at most "
                                          f"{self.settings.max_body_size} octets")
            raise _Closing
        if _wants_websocket(request):
            await _WebSocket(self, request).run()
            raise _Closing  # the connection ends with its WebSocket (or the refusal)
        exchange = _Exchange(self, request)
        try:
            await self.server.app(exchange.scope(), exchange.receive, exchange.send)
        except asyncio.CancelledError:
            # Shutdown: a streaming response (JMAP EventSource) ends cleanly with its last
            # chunk, not with a cut connection the client would take for a network error.
            if exchange.started and not exchange.finished:
                with contextlib.suppress(h11.LocalProtocolError):
                    self._send(h11.EndOfMessage())
            raise
        except _Closing:
            raise
        except (ConnectionClosed, StreamError):
            raise
        except Exception as exc:  # the application failed: 500, never its traceback
            sanity.degrade(self.log, exc, "bug (%s) serving %s %s", request.method.decode(),
                           request.target.decode("latin-1")[:200], exc_info=True)
            if exchange.started:
                raise _Closing from None  # half a response is out: only closing is honest
            await self._respond(500, "Internal Server Error", close=True)
            raise _Closing from None
        if not exchange.started:
            await self._respond(500, "Internal Server Error", close=True)
            raise _Closing
        if not exchange.finished:
            raise _Closing

    async def _refuse(self, status: int, exc: Exception | None, detail: str | None = None,
                      ) -> None:
        """Answer a request the server refuses itself, then the connection closes."""
        if exc is not None:
            self.log.info("bad request: %s", exc)
        titles = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
                  414: "URI Too Long", 431: "Request Header Fields Too Large",
                  505: "HTTP Version Not Supported"}
        if status not in titles:
            status = 400
        await self._respond(status, titles[status], close=True, detail=detail)

    async def _respond(self, status: int, title: str, *, close: bool,
                       detail: str | None = None) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # a response has begun; nothing sensible can be said
        metrics.HTTP_REQUESTS.labels(f"{status // 100}xx").inc()
        body = problem(status, title, detail)
        headers = [(b"content-type", b"application/problem+json"),
                   (b"content-length", b"%d" % len(body)), (b"server", _SERVER)]
        if close:
            headers.append((b"connection", b"close"))
        try:
            self._send(h11.Response(status_code=status, headers=headers,
                                    reason=_reason(status)))
            self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
            await self.stream.drain()
        except (h11.LocalProtocolError, StreamError):
            pass

    def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.stream.write(data)


class _Exchange:
    """The ASGI side of one request: its scope, ``receive`` and ``send``."""

    def __init__(self, conn: _Connection, request: h11.Request) -> None:
        self.conn = conn
        self.request = request
        self.started = False
        self.finished = False
        #: The server answered the request itself (413, 408 while the body was read): what
        #: the application sends after that goes nowhere, and the connection closes.
        self.aborted = False
        self._received = 0
        self._body_done = False

    def scope(self) -> Scope:
        target = self.request.target
        path, _, query = target.partition(b"?")
        stream = self.conn.stream
        host = stream.local
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": self.request.http_version.decode(),
            "method": self.request.method.decode("ascii"),
            "scheme": self.conn.scheme,
            "path": _percent_decoded(path),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in self.request.headers],
            "client": stream.peer,
            "server": host,
            "state": {},
        }

    async def receive(self) -> Message:
        if self._body_done:
            # After the body: nothing more comes until the client goes (ASGI: disconnect).
            return await self._disconnected()
        conn = self.conn
        try:
            event = await conn._event(conn.settings.request_timeout_seconds, conn._deadline)
        except IdleTimeout:
            await self._abort(408, None)
            raise _Closing from None
        if isinstance(event, h11.Data):
            self._received += len(event.data)
            if self._received > conn.settings.max_body_size:
                await self._abort(413, f"the body may be at most "
                                       f"{conn.settings.max_body_size} octets")
                raise _Closing
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self._body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self._body_done = True
        return {"type": "http.disconnect"}

    async def _disconnected(self) -> Message:
        """``http.disconnect`` once the client closes the connection, which a long-lived
        response (an event stream) needs to know to end. Bytes that come instead are the
        next pipelined request: they go back for the connection to read after this
        response, and the watch ends (nothing more can be learnt without reading them)."""
        stream = self.conn.stream
        if not stream.pending_bytes() and not self.conn.h11.trailing_data[0]:
            try:
                data = await stream.read_some(_READ, timeout=math.inf)
            except (ConnectionClosed, StreamError):
                return {"type": "http.disconnect"}
            stream.unread(data)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _abort(self, status: int, detail: str | None) -> None:
        """Answer for the application, before it has (else only closing is left)."""
        if not self.started:
            await self.conn._refuse(status, None, detail)
        self.aborted = True

    async def send(self, message: Message) -> None:
        if self.aborted:
            return  # the server has answered this request already
        conn = self.conn
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the response has already started")
            self.started = True
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            headers.append((b"server", _SERVER))
            status = int(message["status"])
            metrics.HTTP_REQUESTS.labels(f"{status // 100}xx").inc()
            conn._send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        elif kind == "http.response.body":
            if not self.started or self.finished:
                raise RuntimeError("response body outside a response")
            body = message.get("body", b"")
            if body:
                conn._send(h11.Data(data=body))
            if not message.get("more_body", False):
                conn._send(h11.EndOfMessage())
                self.finished = True
            await conn.stream.drain()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")


class _WebSocket:
    """The ASGI ``websocket`` side of an upgrade request (RFC 6455 over wsproto).

    The handshake is wsproto's, from the request h11 has parsed; a refusal (the
    application closes before accepting, or sends a denial response) goes out through h11
    as an ordinary response. After the 101 the connection is wsproto's until either side
    closes; then it ends (no HTTP after a WebSocket).
    """

    def __init__(self, conn: _Connection, request: h11.Request) -> None:
        self.conn = conn
        self.request = request
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.state: Literal["connecting", "open", "refusing", "closed"] = "connecting"
        self.subprotocols: list[str] = []
        self._ready: deque[Message] = deque()
        self._text: list[str] = []
        self._bytes: list[bytes] = []
        self._size = 0
        self._connect_sent = False
        self._refused_started = False

    async def run(self) -> None:
        conn = self.conn
        while True:  # the rest of the request: an upgrade has no body
            try:
                event = await conn._event(conn.settings.request_timeout_seconds,
                                          conn._deadline)
            except IdleTimeout:
                await conn._refuse(408, None)
                return
            if isinstance(event, h11.EndOfMessage):
                break
            if isinstance(event, h11.Data) and not event.data:
                continue
            await conn._refuse(400, None, "a WebSocket upgrade request has no body")
            return
        try:
            self.ws.initiate_upgrade_connection(list(self.request.headers), self.request.target)
            for event in self.ws.events():
                if isinstance(event, ws.Request):
                    self.subprotocols = list(event.subprotocols)
        except WSProtocolError as exc:
            hint = exc.event_hint
            status = hint.status_code if isinstance(hint, ws.RejectConnection) else 400
            await self._deny(status, f"not a valid WebSocket upgrade: {exc}")
            return
        try:
            await conn.server.app(self.scope(), self.receive, self.send)
        except asyncio.CancelledError:
            if self.state == "open":  # shutdown: RFC 6455 §7.4.1 1001, going away
                self._write(ws.CloseConnection(code=1001, reason="server shutting down"))
                self.state = "closed"
            raise
        except (ConnectionClosed, StreamError):
            return
        except Exception as exc:
            sanity.degrade(conn.log, exc, "bug in a WebSocket application at %s",
                           self.request.target.decode("latin-1")[:200], exc_info=True)
            if self.state == "connecting":
                await conn._respond(500, "Internal Server Error", close=True)
            elif self.state == "open":
                self._write(ws.CloseConnection(code=1011))
                self.state = "closed"
            return
        if self.state == "connecting":  # ASGI: returning before accept is a refusal
            await self._deny(403, None)
        elif self.state == "open":
            self._write(ws.CloseConnection(code=1000))
            self.state = "closed"
        await self._drain_quietly()

    def scope(self) -> Scope:
        target = self.request.target
        path, _, query = target.partition(b"?")
        stream = self.conn.stream
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": self.request.http_version.decode(),
            "scheme": "wss" if self.conn.scheme == "https" else "ws",
            "path": _percent_decoded(path),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in self.request.headers],
            "client": stream.peer,
            "server": stream.local,
            "subprotocols": self.subprotocols,
            "state": {},
            "extensions": {"websocket.http.response": {}},
        }

    # -- receive ------------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        if self._ready:  # what arrived before the end is heard before the end
            return self._ready.popleft()
        if self.state != "open":
            if self.state == "connecting":
                raise RuntimeError("receive before the WebSocket was accepted")
            return {"type": "websocket.disconnect", "code": 1006}
        while not self._ready:
            await self._read()
        return self._ready.popleft()

    async def _read(self) -> None:
        """Read frames until a message (or the end) is ready; ping an idle peer."""
        stream = self.conn.stream
        pinged = False
        while not self._ready:
            try:
                data = await stream.read_some(_READ, timeout=WS_PING_SECONDS)
            except IdleTimeout:
                if pinged:  # RFC 6455 §5.5.2: a live peer answers a Ping
                    self._lost(1006)
                    return
                pinged = True
                self._write(ws.Ping(payload=b"mailstead"))
                await self.conn.stream.drain()
                continue
            except (ConnectionClosed, StreamError):
                self._lost(1006)
                return
            pinged = False
            self.ws.receive_data(data)
            try:
                for event in self.ws.events():
                    self._take(event)
            except WSProtocolError:
                self._write(ws.CloseConnection(code=1002))
                self._lost(1002)
            await stream.drain()

    def _take(self, event: ws.Event) -> None:
        limit = self.conn.settings.max_body_size
        if isinstance(event, ws.TextMessage | ws.BytesMessage):
            if self.state != "open":
                return
            self._size += len(event.data)
            if self._size > limit:  # RFC 6455 §7.4.1: 1009, too big to process
                self._write(ws.CloseConnection(code=1009, reason="message too big"))
                self._lost(1009)
                return
            if isinstance(event, ws.TextMessage):
                self._text.append(event.data)
            else:
                self._bytes.append(bytes(event.data))
            if event.message_finished:
                if isinstance(event, ws.TextMessage):
                    self._ready.append({"type": "websocket.receive",
                                        "text": "".join(self._text)})
                else:
                    self._ready.append({"type": "websocket.receive",
                                        "bytes": b"".join(self._bytes)})
                self._text.clear()
                self._bytes.clear()
                self._size = 0
        elif isinstance(event, ws.Ping):
            self._write(event.response())
        elif isinstance(event, ws.CloseConnection):
            if self.state == "open":
                self._write(event.response())
            self._lost(event.code)

    def _lost(self, code: int) -> None:
        """The WebSocket is over: the application hears ``websocket.disconnect``."""
        self.state = "closed"
        self._ready.append({"type": "websocket.disconnect", "code": code})

    # -- send ---------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if self.state != "connecting":
                raise RuntimeError("the WebSocket was accepted already")
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self._write(ws.AcceptConnection(subprotocol=message.get("subprotocol"),
                                            extra_headers=headers))
            self.state = "open"
            early = self.conn.h11.trailing_data[0]  # frames sent right behind the request
            if early:
                self.ws.receive_data(bytes(early))
                try:
                    for event in self.ws.events():
                        self._take(event)
                except WSProtocolError:
                    self._write(ws.CloseConnection(code=1002))
                    self._lost(1002)
        elif kind == "websocket.send":
            if self.state != "open":
                raise ConnectionClosed("the WebSocket is closed")
            text = message.get("text")
            if text is not None:
                self._write(ws.TextMessage(data=text))
            else:
                self._write(ws.BytesMessage(data=bytes(message.get("bytes") or b"")))
        elif kind == "websocket.close":
            if self.state == "connecting":
                await self._deny(403, None)
            elif self.state == "open":
                self._write(ws.CloseConnection(code=int(message.get("code", 1000)),
                                               reason=message.get("reason") or None))
                self.state = "closed"
        elif kind == "websocket.http.response.start":
            if self.state != "connecting":
                raise RuntimeError("a denial response after the handshake")
            self.state = "refusing"
            self._refused_started = True
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            headers += [(b"server", _SERVER), (b"connection", b"close")]
            status = int(message["status"])
            metrics.HTTP_REQUESTS.labels(f"{status // 100}xx").inc()
            self.conn._send(h11.Response(status_code=status, headers=headers,
                                         reason=_reason(status)))
        elif kind == "websocket.http.response.body":
            if self.state != "refusing":
                raise RuntimeError("a denial body outside a denial response")
            body = message.get("body", b"")
            if body:
                self.conn._send(h11.Data(data=body))
            if not message.get("more_body", False):
                self.conn._send(h11.EndOfMessage())
                self.state = "closed"
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        await self.conn.stream.drain()

    def _write(self, event: ws.Event) -> None:
        try:
            data = self.ws.send(event)
        except wsproto.utilities.LocalProtocolError:
            return  # the connection is closing: nothing more may be sent
        self.conn.stream.write(data)

    async def _deny(self, status: int, detail: str | None) -> None:
        """Refuse the upgrade with an HTTP answer (RFC 6455 §4.2.2: any status but 101)."""
        if self._refused_started:
            return
        self.state = "closed"
        await self.conn._respond(status, _reason(status).decode() or "Bad Request",
                                 close=True, detail=detail)

    async def _drain_quietly(self) -> None:
        with contextlib.suppress(StreamError):
            await self.conn.stream.drain(timeout=5.0)


def _wants_websocket(request: h11.Request) -> bool:
    """RFC 6455 §4.1: a GET with ``Upgrade: websocket`` and ``Connection: upgrade``."""
    if request.method != b"GET":
        return False
    upgrade = connection = False
    for name, value in request.headers:
        if name == b"upgrade":
            upgrade = upgrade or any(
                token.strip().lower() == b"websocket" for token in value.split(b","))
        elif name == b"connection":
            connection = connection or any(
                token.strip().lower() == b"upgrade" for token in value.split(b","))
    return upgrade and connection


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 checked it is one decimal number
    return None


def _percent_decoded(path: bytes) -> str:
    return unquote_to_bytes(path).decode("utf-8", "surrogateescape")
