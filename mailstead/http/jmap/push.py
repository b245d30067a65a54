"""JMAP push: state changes as Server-Sent Events (RFC 8620 §7.3) and over a WebSocket
(RFC 8887 §4.3.5), from the store's change bus.

Invariants:

- a push stream holds one subscription to its account's changes (the bus wakes only the
  subscriptions of the account that changed, so an event costs O(streams of that
  account)); an idle stream is its coroutine waiting on that subscription, plus the
  connection's watch for the client leaving (and a timer when it asked for pings);
- a burst of changes becomes one StateChange: the first change of a quiet period goes out
  at once, later ones at most every :data:`COALESCE_SECONDS`, each with the account's
  state read after the burst (so always the latest);
- every type's state is the account's mod-sequence (http/jmap/mail/ids.py), which is also
  the WebSocket ``pushState``; a type is in a StateChange only when its state differs from
  the last one this stream sent, and only if the client asked for it;
- a stream ends when the client goes, at ``closeafter=state`` after its first state event,
  or at shutdown (the HTTP server ends the response or sends Close 1001).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from mailstead.auth.authenticator import UserRecord
from mailstead.core import sanity
from mailstead.http.jmap.errors import RequestError
from mailstead.http.jmap.request import parse_json
from mailstead.http.jmap.session import EVENT_SOURCE_PATH, WEBSOCKET_PATH
from mailstead.http.jmap.standard import Limits
from mailstead.http.server import problem_fields
from mailstead.net.stream import StreamError
from mailstead.store.models import ChangeEvent, ChangeKind

log = logging.getLogger("mailstead.http.jmap")

#: RFC 8620 §7.1: the data types whose states push reports (those of RFC 8621 served here).
DATA_TYPES: tuple[str, ...] = ("Mailbox", "Email", "Thread")
#: At most one StateChange per stream in this many seconds; a burst is told as one.
COALESCE_SECONDS = 0.1
#: RFC 8620 §7.3: "The server MAY choose a different interval"; ``interval`` says which.
MIN_PING_SECONDS = 5
MAX_PING_SECONDS = 300
#: RFC 8887 §4.2: the WebSocket subprotocol a JMAP client asks for.
SUBPROTOCOL = "jmap"
#: WebSocket messages larger than this are parsed in a worker thread, as the API's bodies.
_PARSE_IN_THREAD = 256 * 1024

_MESSAGE_KINDS = {ChangeKind.EXISTS, ChangeKind.EXPUNGE}
_MAILBOX_KINDS = {
    ChangeKind.MAILBOX_CREATED,
    ChangeKind.MAILBOX_DELETED,
    ChangeKind.MAILBOX_RENAMED,
    ChangeKind.SUBSCRIPTION,  # Mailbox isSubscribed
    ChangeKind.ACL,  # Mailbox myRights
}


def changed_types(event: ChangeEvent) -> frozenset[str]:
    """The data types whose state a change moves. A message arriving or going changes its
    Email, its Thread and the Mailbox counts; flags change the Email and the unread
    counts; the rest of a mailbox's life is Mailbox alone. Metadata (RFC 5464) is not
    seen through JMAP."""
    if event.kind in _MESSAGE_KINDS:
        return frozenset({"Email", "Mailbox", "Thread"})
    if event.kind in (ChangeKind.FLAGS, ChangeKind.PRIVATE_SEEN):
        return frozenset({"Email", "Mailbox"})
    if event.kind in _MAILBOX_KINDS:
        return frozenset({"Mailbox"})
    return frozenset()


def parse_types(value: str) -> frozenset[str]:
    """RFC 8620 §7.3 ``types``: a comma-separated list of type names, or ``*`` for all.
    Names this server has no state for are kept: they simply never change."""
    names = {name.strip() for name in value.split(",") if name.strip()}
    if "*" in names:
        return frozenset(DATA_TYPES)
    return frozenset(names)


def ping_interval(value: int) -> int:
    """The interval the server uses for a requested ``ping`` (0: no pings)."""
    if value <= 0:
        return 0
    return min(max(value, MIN_PING_SECONDS), MAX_PING_SECONDS)


def state_change(
    account_id: str, changed: dict[str, str], push_state: str | None = None
) -> dict[str, Any]:
    """RFC 8620 §7.1 StateChange (with RFC 8887 §4.3.5.1 ``pushState`` over a WebSocket)."""
    body: dict[str, Any] = {"@type": "StateChange", "changed": {account_id: changed}}
    if push_state is not None:
        body["pushState"] = push_state
    return body


def server_sent_event(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    """One Server-Sent Event (HTML Living Standard §9.2): its JSON data on one line."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


class ChangeFeed(Protocol):
    """An account's changes, in commit order (the store's change bus subscription)."""

    async def get(self) -> ChangeEvent: ...

    def drain(self) -> list[ChangeEvent]: ...

    def close(self) -> None: ...


class PushSource(Protocol):
    """What push reads: an account's changes and its state (serve.py gives the store)."""

    async def subscribe(self, user: UserRecord) -> ChangeFeed:
        """A feed of the account's changes from now on; the caller closes it."""
        ...

    async def state(self, user: UserRecord) -> str:
        """The account's state now (every type's: its mod-sequence)."""
        ...


class StateWatch:
    """The coalesced state changes of one account, for one push stream."""

    def __init__(
        self, feed: ChangeFeed, source: PushSource, user: UserRecord, types: AbstractSet[str]
    ) -> None:
        self._feed = feed
        self._source = source
        self._user = user
        self.types = frozenset(types)
        self._sent: dict[str, str] = {}
        self._last = float("-inf")  # when the last StateChange went out (loop time)

    async def next(self, timeout: float | None = None) -> dict[str, str] | None:
        """The next change of the wanted types, as type -> new state; None when
        ``timeout`` seconds pass without one. Only the wait for the first event of a burst
        is timed: what is taken from the feed is never lost to a timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    first = await self._feed.get()
            except TimeoutError:
                return None
            wait = self._last + COALESCE_SECONDS - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            types = set(changed_types(first))
            for event in self._feed.drain():
                types |= changed_types(event)
            changed = await self.current(types & self.types)
            if changed:
                return changed

    async def current(self, types: AbstractSet[str]) -> dict[str, str]:
        """The states of ``types`` that differ from the last ones sent (noted as sent)."""
        if not types:
            return {}
        state = await self._source.state(self._user)
        changed = {name: state for name in sorted(types) if self._sent.get(name) != state}
        self._sent.update(changed)
        if changed:
            self._last = asyncio.get_running_loop().time()
        return changed

    def assume_sent(self, state: str) -> None:
        """The client has seen every wanted type at ``state`` (it says so on reconnecting:
        Last-Event-ID, or a WebSocket pushState)."""
        self._sent.update(dict.fromkeys(self.types, state))

    def close(self) -> None:
        self._feed.close()


@dataclass(frozen=True, slots=True)
class PushEndpoints:
    """What the push routes need of the JMAP core (http/jmap/app.py hands them in)."""

    #: The account of a request's credentials, or the refusal to answer with.
    authenticate: Callable[[HTTPConnection], Awaitable[UserRecord | Response]]
    account_id_of: Callable[[UserRecord], str]
    source: PushSource
    #: The Response object of a Request object; RequestError when refused as a whole.
    execute: Callable[[HTTPConnection, UserRecord, dict[str, Any]], Awaitable[dict[str, Any]]]
    #: Holds one of the account's concurrent requests; RequestError when none is free.
    request_slot: Callable[[str], AbstractContextManager[None]]
    limits: Limits


def _bad_request(detail: str) -> Response:
    return JSONResponse(
        problem_fields(400, "Bad Request", detail),
        status_code=400,
        media_type="application/problem+json",
    )


@dataclass(frozen=True, slots=True)
class EventSourceQuery:
    """RFC 8620 §7.3: the parameters of the event source URL."""

    types: frozenset[str]
    closeafter: Literal["state", "no"]
    ping: int  # the interval used, in seconds (0: none)

    @classmethod
    def parse(cls, request: Request) -> EventSourceQuery:
        """ValueError with the reason for a query the server cannot follow."""
        params = request.query_params
        closeafter = params.get("closeafter", "no")
        if closeafter not in ("state", "no"):
            raise ValueError("closeafter must be state or no")
        raw_ping = params.get("ping", "0")
        if not raw_ping.isdigit() or len(raw_ping) > 9:
            raise ValueError("ping must be a number of seconds (0: none)")
        return cls(
            parse_types(params.get("types", "*")),
            "state" if closeafter == "state" else "no",
            ping_interval(int(raw_ping)),
        )


class _EventStream(Response):
    """A ``text/event-stream`` response that lasts until the client goes, the first state
    event with ``closeafter=state``, or shutdown."""

    media_type = "text/event-stream"

    def __init__(
        self, watch: StateWatch, account_id: str, query: EventSourceQuery, resume: str | None
    ) -> None:
        super().__init__(
            headers={
                "Cache-Control": "no-cache, no-store",
                # Proxies (nginx) would otherwise hold events back to fill a buffer.
                "X-Accel-Buffering": "no",
            },
            media_type=self.media_type,
        )
        del self.headers["content-length"]
        self.watch = watch
        self.account_id = account_id
        self.query = query
        self.resume = resume

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        me = asyncio.current_task()
        assert me is not None

        def client_gone(_: object) -> None:
            me.cancel()

        # The client leaving is learnt from the connection (http.disconnect), not from a
        # failed write: with pings off, nothing else would be written to find out.
        watcher = asyncio.ensure_future(_disconnect(receive))
        watcher.add_done_callback(client_gone)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            await self._events(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # shutdown: the HTTP server ends the response
            me.uncancel()  # the client went: nothing more to do
        finally:
            watcher.remove_done_callback(client_gone)
            if not watcher.done():
                watcher.cancel()
            elif not watcher.cancelled():
                watcher.exception()  # retrieved: the connection reports its own failures
            self.watch.close()

    async def _events(self, send: Send) -> None:
        query = self.query
        if self.resume is not None:
            # The client says which state it last saw (Last-Event-ID): if the account has
            # moved on since, it hears so at once rather than at the next change.
            changed = await self.watch.current(query.types)
            if changed:
                await self._state(send, changed)
                if query.closeafter == "state":
                    return
        while True:
            news = await self.watch.next(query.ping or None)
            if news is None:  # RFC 8620 §7.3: a ping when the interval passes quietly
                await send(
                    {
                        "type": "http.response.body",
                        "body": server_sent_event("ping", {"interval": query.ping}),
                        "more_body": True,
                    }
                )
                continue
            await self._state(send, news)
            if query.closeafter == "state":
                return

    async def _state(self, send: Send, changed: dict[str, str]) -> None:
        state = next(iter(changed.values()))
        body = server_sent_event("state", state_change(self.account_id, changed), state)
        await send({"type": "http.response.body", "body": body, "more_body": True})


async def _disconnect(receive: Receive) -> None:
    """Returns when the client has gone (the request's empty body is read on the way)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def push_routes(endpoints: PushEndpoints) -> list[BaseRoute]:
    """The event source and the WebSocket endpoint."""

    async def event_source(request: Request) -> Response:
        """RFC 8620 §7.3: state changes of the account as Server-Sent Events."""
        user = await endpoints.authenticate(request)
        if isinstance(user, Response):
            return user
        try:
            query = EventSourceQuery.parse(request)
        except ValueError as exc:
            return _bad_request(str(exc))
        resume = request.headers.get("last-event-id")
        feed = await endpoints.source.subscribe(user)
        watch = StateWatch(feed, endpoints.source, user, query.types)
        if resume is not None:
            watch.assume_sent(resume)
        return _EventStream(watch, endpoints.account_id_of(user), query, resume)

    async def websocket_required(request: Request) -> Response:
        """A plain GET of the WebSocket URL: RFC 9110 §15.5.22, ask for the upgrade."""
        return JSONResponse(
            problem_fields(426, "Upgrade Required", "JMAP over WebSocket: upgrade to websocket"),
            status_code=426,
            media_type="application/problem+json",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )

    async def websocket(socket: WebSocket) -> None:
        """RFC 8887: JMAP over WebSocket, authenticated at the upgrade."""
        user = await endpoints.authenticate(socket)
        if isinstance(user, Response):
            await socket.send_denial_response(user)
            return
        if SUBPROTOCOL not in socket.scope.get("subprotocols", ()):
            # RFC 8887 §4.2: the client asks for the "jmap" subprotocol.
            await socket.send_denial_response(
                _bad_request("ask for the jmap WebSocket subprotocol (RFC 8887)")
            )
            return
        await socket.accept(subprotocol=SUBPROTOCOL)
        await _WebSocketSession(endpoints, socket, user).run()

    return [
        Route(EVENT_SOURCE_PATH, event_source, methods=["GET"]),
        WebSocketRoute(WEBSOCKET_PATH, websocket),
        Route(WEBSOCKET_PATH, websocket_required, methods=["GET"]),
    ]


class _WebSocketSession:
    """One JMAP WebSocket: Requests answered as they finish (each in its own task, within
    the account's concurrent-request limit), push turned on and off by the client."""

    def __init__(self, endpoints: PushEndpoints, socket: WebSocket, user: UserRecord) -> None:
        self.endpoints = endpoints
        self.socket = socket
        self.user = user
        self.account_id = endpoints.account_id_of(user)
        self._send_lock = asyncio.Lock()
        self._requests: set[asyncio.Task[None]] = set()
        self._push: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            await self._receive()
        except asyncio.CancelledError:  # shutdown: nothing is waited for
            for task in self._requests:
                task.cancel()
            raise
        finally:
            self._disable()
        # Requests under way finish (a write is not cut short because its client left).
        if self._requests:
            await asyncio.wait(set(self._requests))

    async def _receive(self) -> None:
        try:
            while True:
                message = await self.socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    await self._error(RequestError("notJSON", "send JMAP as text frames"), None)
                    continue
                await self._message(text)
        except WebSocketDisconnect:
            return

    async def _message(self, text: str) -> None:
        limits = self.endpoints.limits
        data = text.encode()
        if len(data) > limits.max_size_request:
            too_big = RequestError(
                "limit",
                f"a request is at most {limits.max_size_request} octets",
                limit="maxSizeRequest",
            )
            await self._error(too_big, None)
            return
        try:
            if len(data) > _PARSE_IN_THREAD:  # big JSON is parsed off the event loop
                document = await asyncio.to_thread(parse_json, data)
            else:
                document = parse_json(data)
        except RequestError as error:
            await self._error(error, None)
            return
        kind = document.get("@type") if isinstance(document, dict) else None
        request_id = document.get("id") if isinstance(document, dict) else None
        if not isinstance(request_id, str):
            request_id = None
        match kind:
            case "Request":  # RFC 8887 §4.3.3
                task = asyncio.ensure_future(self._request(document, request_id))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
            case "WebSocketPushEnable":  # RFC 8887 §4.3.5.2
                await self._enable(document)
            case "WebSocketPushDisable":  # RFC 8887 §4.3.5.3
                self._disable()
            case _:
                unknown = RequestError(
                    "notRequest",
                    "@type must be Request, WebSocketPushEnable or WebSocketPushDisable",
                )
                await self._error(unknown, request_id)

    async def _request(self, document: dict[str, Any], request_id: str | None) -> None:
        try:
            with self.endpoints.request_slot(self.account_id):
                body = {key: value for key, value in document.items() if key not in ("@type", "id")}
                response = await self.endpoints.execute(self.socket, self.user, body)
        except RequestError as error:
            await self._error(error, request_id)
            return
        except (WebSocketDisconnect, StreamError):
            return
        except Exception as exc:  # a bug: the socket lives on, the log has the traceback
            sanity.degrade(log, exc, "JMAP request over WebSocket failed", exc_info=True)
            failed: dict[str, Any] = {"@type": "RequestError", "requestId": request_id}
            failed.update(problem_fields(500, "Internal Server Error"))
            await self._send(failed)
            return
        answer: dict[str, Any] = {"@type": "Response"}
        if request_id is not None:
            answer["requestId"] = request_id  # RFC 8887 §4.3.4
        answer.update(response)
        await self._send(answer)

    async def _enable(self, document: dict[str, Any]) -> None:
        data_types = document.get("dataTypes")
        if data_types is None:
            types = frozenset(DATA_TYPES)
        elif isinstance(data_types, list) and all(isinstance(t, str) for t in data_types):
            types = frozenset(data_types)
        else:
            await self._error(RequestError("notRequest", "dataTypes must be names or null"), None)
            return
        push_state = document.get("pushState")
        self._disable()  # a new enable replaces the one before
        feed = await self.endpoints.source.subscribe(self.user)
        watch = StateWatch(feed, self.endpoints.source, self.user, types)
        self._push = asyncio.ensure_future(self._pushes(watch, push_state))

    def _disable(self) -> None:
        if self._push is not None:
            self._push.cancel()
            self._push = None

    async def _pushes(self, watch: StateWatch, push_state: object) -> None:
        try:
            if isinstance(push_state, str):
                # RFC 8887 §4.3.5.2: changes since the client's pushState, at once.
                watch.assume_sent(push_state)
                changed = await watch.current(watch.types)
                if changed:
                    await self._state(changed)
            while True:
                changed_now = await watch.next()
                if changed_now is not None:
                    await self._state(changed_now)
        except (WebSocketDisconnect, StreamError, RuntimeError):
            return  # the socket is gone
        except Exception as exc:
            sanity.degrade(log, exc, "JMAP WebSocket push failed", exc_info=True)
        finally:
            watch.close()

    async def _state(self, changed: dict[str, str]) -> None:
        push_state = next(iter(changed.values()))
        await self._send(state_change(self.account_id, changed, push_state))

    async def _error(self, error: RequestError, request_id: str | None) -> None:
        """RFC 8887 §4.3.4: a problem document with ``@type`` RequestError."""
        body: dict[str, Any] = {"@type": "RequestError"}
        if request_id is not None:
            body["requestId"] = request_id
        body.update(error.to_json())
        await self._send(body)

    async def _send(self, body: dict[str, Any]) -> None:
        text = json.dumps(body, separators=(",", ":"))
        async with self._send_lock:
            await self.socket.send_text(text)
