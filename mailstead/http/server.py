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
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import h11

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
        exchange = _Exchange(self, request)
        try:
            await self.server.app(exchange.scope(), exchange.receive, exchange.send)
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
            await asyncio.Event().wait()
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
