"""The JMAP endpoints (RFC 8620 §2, §3, §6): routes the composition root mounts in the
HTTP application.

=====================================  ================================================
``GET /.well-known/jmap``              307 to the session resource (RFC 8620 §2.2)
``GET /jmap/session``                  the Session object (§2)
``POST /jmap/api``                     a Request in, a Response out (§3)
``POST /jmap/upload/{accountId}``      a blob in, its id out (§6.1)
``GET /jmap/download/{accountId}/...`` a blob out (§6.2)
``GET /jmap/eventsource``              push as Server-Sent Events (§7.3; http/jmap/push.py)
``GET /jmap/ws`` (WebSocket)           JMAP over WebSocket with push (RFC 8887; push.py)
=====================================  ================================================

Every route but the redirect needs HTTP Basic with the account's address and password,
checked by the same :class:`~mailstead.auth.authenticator.Authenticator` as IMAP, POP3 and
SMTP AUTH (its throttle counts JMAP's failures too); credentials are refused over plain
HTTP unless the client is on this machine or ``auth.allow_plaintext`` says so, as the admin
API does. Limits are checked before the work they bound: the request's size from its
Content-Length and again as it is read, the account's requests and uploads in flight before
the body is read. Request-level errors are RFC 7807 problem documents with the JMAP
``urn:ietf:params:jmap:error:`` types (§3.6.1); nothing of an exception reaches the client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailstead.auth.authenticator import Authenticator, UserRecord
from mailstead.core.errors import AuthError, AuthThrottled
from mailstead.http.jmap.dispatch import CallContext, Methods, process
from mailstead.http.jmap.errors import RequestError
from mailstead.http.jmap.push import PushEndpoints, PushSource, push_routes
from mailstead.http.jmap.request import Request as JMAPRequest
from mailstead.http.jmap.request import parse_request, request_of
from mailstead.http.jmap.session import (
    API_PATH,
    SESSION_PATH,
    WEBSOCKET_PATH,
    Capabilities,
    OtherAccount,
    session_resource,
)
from mailstead.http.jmap.standard import Limits, is_id
from mailstead.http.server import problem_fields

log = logging.getLogger("mailstead.http.jmap")

PROBLEM = "application/problem+json"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="mailstead", charset="UTF-8"'}
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mailstead"'}
#: The name bearer token failures are counted under in the throttle (with the address).
_BEARER = "<bearer token>"
#: Bodies larger than this are parsed in a worker thread, off the event loop.
_PARSE_IN_THREAD = 256 * 1024
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
#: RFC 9110 §8.3.1 media type with parameters: what ``?accept=`` may set as Content-Type.
_MEDIA_TYPE = re.compile(rf'{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}=({_TOKEN}|"[^"\\\r\n]*"))*')
_MAX_TYPE = 255


class JMAPBlobs(Protocol):
    """Where uploaded blobs go and downloads come from (the store, through serve.py)."""

    async def upload(self, user: UserRecord, data: bytes, type: str) -> str:
        """Keep ``data`` (of media type ``type``) for the user's account; its blob id."""
        ...

    async def download(self, user: UserRecord, blob_id: str, account_id: str | None = None
                       ) -> bytes | None:
        """The blob's content if the user may read it in the account (its own when
        ``account_id`` is None, or one shared with it), else None."""
        ...


#: The session's capabilities for a user: (server capabilities, the account's), beyond core.
CapabilitiesOf = Callable[[UserRecord], tuple[Capabilities, Capabilities]]


@dataclass(frozen=True, slots=True)
class JMAPServices:
    """What the JMAP endpoints call."""

    authenticator: Authenticator
    methods: Methods
    blobs: JMAPBlobs
    account_id_of: Callable[[UserRecord], str]  # the JMAP account id of a user
    capabilities: CapabilitiesOf
    state: Callable[[UserRecord], Awaitable[str]]  # changes when the session should
    limits: Limits = field(default_factory=Limits)
    allow_plaintext: bool = False  # auth.allow_plaintext: credentials over plain HTTP
    #: Where push (EventSource, WebSocket) learns of an account's changes; None: no push.
    push: PushSource | None = None
    #: The account an ``Authorization: Bearer`` token stands for (a ``mail:`` API token),
    #: None for a token that stands for none; None here: Basic only.
    bearer: Callable[[str, str], Awaitable[UserRecord | None]] | None = None
    #: The other accounts the user may use: owners who share mailboxes with it (RFC 8620
    #: §1.6.2, decision 0028); None: the own account only.
    others: Callable[[UserRecord], Awaitable[list[OtherAccount]]] | None = None


class _Refused(Exception):
    """An answer other than the route's own (401, 403, 404, 429, a JMAP problem)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _problem(
    status: int, title: str, detail: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        problem_fields(status, title, detail),
        status_code=status,
        media_type=PROBLEM,
        headers=headers,
    )


def _jmap_problem(error: RequestError) -> Response:
    return JSONResponse(error.to_json(), status_code=error.status, media_type=PROBLEM)


def _client(request: HTTPConnection) -> str:
    return request.client.host if request.client is not None else "unknown"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def content_disposition(name: str) -> str:
    """``attachment`` with the file name, RFC 6266 §4.3: an ASCII ``filename`` for old
    clients, and ``filename*`` in UTF-8 (RFC 8187) when the name is not plain ASCII."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in name)
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        encoded = quote(name.encode("utf-8", "surrogateescape"), safe="")
        value += f"; filename*=UTF-8''{encoded}"
    return value


def build_jmap(services: JMAPServices) -> list[BaseRoute]:
    """The JMAP routes, for the HTTP application (http/app.py) to include."""
    limits = services.limits
    requests_in_flight: Counter[str] = Counter()
    uploads_in_flight: Counter[str] = Counter()

    async def authenticate(request: HTTPConnection) -> UserRecord:
        """The account of the request's HTTP Basic credentials, or _Refused (a WebSocket's
        are checked at its upgrade request, RFC 8887 §4.1)."""
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "bearer" and services.bearer is not None:
            require_tls(request)
            return await bearer(encoded.strip(), _client(request))
        if scheme.lower() != "basic":
            raise _Refused(
                _problem(
                    401,
                    "Unauthorized",
                    "log in with your address and password (HTTP Basic)",
                    _CHALLENGE,
                )
            )
        require_tls(request)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon:
            raise _Refused(_problem(401, "Unauthorized", "malformed Basic credentials", _CHALLENGE))
        try:
            return await services.authenticator.authenticate_request(
                username, password, _client(request)
            )
        except AuthThrottled as exc:
            raise _Refused(
                _problem(
                    429,
                    "Too Many Requests",
                    "too many failed logins; wait",
                    {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))},
                )
            ) from None
        except AuthError:
            raise _Refused(
                _problem(401, "Unauthorized", "authentication failed", _CHALLENGE)
            ) from None

    def require_tls(request: HTTPConnection) -> None:
        if (
            request.url.scheme not in ("https", "wss")
            and not services.allow_plaintext
            and not _is_loopback(_client(request))
        ):
            raise _Refused(
                _problem(
                    403,
                    "Forbidden",
                    "credentials are accepted over HTTPS "
                    "only (or from this machine); use the https listener",
                )
            )

    async def bearer(token: str, client: str) -> UserRecord:
        """The account of a ``mail:`` API token. Wrong tokens count against the client's
        address in the same throttle as wrong passwords, so guessing tokens gets the
        address banned as guessing passwords does."""
        assert services.bearer is not None
        throttle = services.authenticator.throttle
        try:
            throttle.check(_BEARER, client)
        except AuthThrottled as exc:
            raise _Refused(_problem(
                429, "Too Many Requests", "too many failed logins; wait",
                {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))},
            )) from None
        user = await services.bearer(token, client)
        if user is None:
            throttle.record_failure(_BEARER, client)
            raise _Refused(_problem(401, "Unauthorized", "authentication failed",
                                    _BEARER_CHALLENGE))
        return user

    def own_account(request: Request, user: UserRecord) -> str:
        account_id = services.account_id_of(user)
        if request.path_params["accountId"] != account_id:
            raise _Refused(_problem(404, "Not Found", "no such account for these credentials"))
        return account_id

    async def read_body(request: Request, limit: int, error: RequestError) -> bytes:
        """The body, or ``error`` as soon as it is known to be longer than ``limit``."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise _Refused(_jmap_problem(error))
        pieces: list[bytes] = []
        size = 0
        async for piece in request.stream():
            size += len(piece)
            if size > limit:
                raise _Refused(_jmap_problem(error))
            pieces.append(piece)
        return b"".join(pieces)

    @contextmanager
    def in_flight(
        counter: Counter[str], account_id: str, most: int, error: RequestError
    ) -> Iterator[None]:
        if counter[account_id] >= most:
            raise _Refused(_jmap_problem(error))
        counter[account_id] += 1
        try:
            yield
        finally:
            counter[account_id] -= 1
            if counter[account_id] <= 0:
                del counter[account_id]

    def base_url(request: HTTPConnection) -> str:
        """Scheme and authority the client used; a WebSocket's as the http(s) URL it was
        upgraded from, so that the session (and its state) is the same over both."""
        url = str(request.base_url).rstrip("/")
        if url.startswith("ws"):
            url = "http" + url[2:]
        return url

    async def session_of(request: HTTPConnection, user: UserRecord) -> dict[str, Any]:
        server, account = services.capabilities(user)
        return session_resource(
            username=user.address,
            account_id=services.account_id_of(user),
            account_name=user.address,
            limits=limits,
            capabilities=server,
            account_capabilities=account,
            base_url=base_url(request),
            state=await services.state(user),
            websocket_path=WEBSOCKET_PATH if services.push is not None else None,
            others=await services.others(user) if services.others is not None else (),
        )

    def refusals(
        route: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            try:
                return await route(request)
            except _Refused as refused:
                return refused.response

        answer.__doc__ = route.__doc__
        return answer

    async def well_known(request: Request) -> Response:
        """RFC 8620 §2.2: the well-known URI leads to the session resource."""
        return RedirectResponse(SESSION_PATH, status_code=307)

    @refusals
    async def session(request: Request) -> Response:
        """RFC 8620 §2: the Session object of the credentials."""
        user = await authenticate(request)
        return JSONResponse(
            await session_of(request, user),
            headers={"Cache-Control": "no-cache, no-store, must-revalidate"},
        )

    @refusals
    async def api(request: Request) -> Response:
        """RFC 8620 §3: one Request, its method calls in order, one Response."""
        user = await authenticate(request)
        account_id = services.account_id_of(user)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise _Refused(
                _jmap_problem(
                    RequestError("notJSON", "the request's Content-Type must be application/json")
                )
            )
        too_many = RequestError(
            "limit",
            f"at most {limits.max_concurrent_requests} requests of one account at a time",
            limit="maxConcurrentRequests",
        )
        with in_flight(requests_in_flight, account_id, limits.max_concurrent_requests, too_many):
            body = await read_body(
                request,
                limits.max_size_request,
                RequestError(
                    "limit",
                    f"a request is at most {limits.max_size_request} octets",
                    limit="maxSizeRequest",
                ),
            )
            try:
                response = await execute(request, user, body)
            except RequestError as error:
                return _jmap_problem(error)
        return JSONResponse(response)

    async def execute(
        request: HTTPConnection, user: UserRecord, body: bytes | dict[str, Any]
    ) -> dict[str, Any]:
        """The Response to a Request (the body of a POST, or the object of a WebSocket
        message); RequestError when it is refused as a whole (RFC 8620 §3.6.1)."""
        session = await session_of(request, user)
        supported = frozenset(session["capabilities"])
        parsed: JMAPRequest
        if isinstance(body, dict):
            parsed = request_of(body, supported=supported, max_calls=limits.max_calls_in_request)
        elif len(body) > _PARSE_IN_THREAD:
            parsed = await asyncio.to_thread(
                parse_request, body, supported=supported, max_calls=limits.max_calls_in_request
            )
        else:
            parsed = parse_request(
                body, supported=supported, max_calls=limits.max_calls_in_request
            )
        context = CallContext(
            account_id=services.account_id_of(user),
            user=user,
            created_ids={},
            using=parsed.using,
            session_state=session["state"],
            client_ip=_client(request),
            accounts={
                account_id: frozenset(account["accountCapabilities"])
                for account_id, account in session["accounts"].items()
            },
        )
        return await process(parsed, services.methods, context)

    @contextmanager
    def request_slot(account_id: str) -> Iterator[None]:
        """One of the account's ``maxConcurrentRequests`` (RFC 8620 §2), for a request that
        came over a WebSocket: the same count as the API's, refused as a RequestError."""
        try:
            with in_flight(
                requests_in_flight,
                account_id,
                limits.max_concurrent_requests,
                RequestError("limit", "", limit="maxConcurrentRequests"),
            ):
                yield
        except _Refused:
            raise RequestError(
                "limit",
                f"at most {limits.max_concurrent_requests} requests of one account at a time",
                limit="maxConcurrentRequests",
            ) from None

    async def authenticated(connection: HTTPConnection) -> UserRecord | Response:
        try:
            return await authenticate(connection)
        except _Refused as refused:
            return refused.response

    @refusals
    async def upload(request: Request) -> Response:
        """RFC 8620 §6.1: the body is the blob, its Content-Type the blob's type."""
        user = await authenticate(request)
        account_id = own_account(request, user)
        too_many = RequestError(
            "limit",
            f"at most {limits.max_concurrent_upload} uploads of one account at a time",
            limit="maxConcurrentUpload",
            status=429,
        )
        with in_flight(uploads_in_flight, account_id, limits.max_concurrent_upload, too_many):
            data = await read_body(
                request,
                limits.max_size_upload,
                RequestError(
                    "limit",
                    f"an upload is at most {limits.max_size_upload} octets",
                    limit="maxSizeUpload",
                    status=413,
                ),
            )
            media_type = request.headers.get("content-type", "").strip()[:_MAX_TYPE]
            media_type = media_type or "application/octet-stream"
            blob_id = await services.blobs.upload(user, data, media_type)
        return JSONResponse(
            {"accountId": account_id, "blobId": blob_id, "type": media_type, "size": len(data)},
            status_code=201,
        )

    @refusals
    async def download(request: Request) -> Response:
        """RFC 8620 §6.2: the blob, with the type and file name the client asked for."""
        user = await authenticate(request)
        account_id = request.path_params["accountId"]
        if account_id == services.account_id_of(user):
            shared: str | None = None
        elif services.others is not None and any(
                other.account_id == account_id for other in await services.others(user)):
            shared = account_id  # RFC 8620 §1.6.2: a shared account's blobs, by its grants
        else:
            raise _Refused(_problem(404, "Not Found", "no such account for these credentials"))
        blob_id = request.path_params["blobId"]
        accept = request.query_params.get("accept", "") or "application/octet-stream"
        if len(accept) > _MAX_TYPE or not _MEDIA_TYPE.fullmatch(accept):
            return _problem(
                400,
                "Bad Request",
                "accept must be a media type such as text/plain or application/pdf",
            )
        data = (
            await services.blobs.download(user, blob_id, shared)
            if is_id(blob_id, references=False)
            else None
        )
        if data is None:
            return _problem(404, "Not Found", "no such blob in the account")
        return Response(
            data,
            media_type=accept,
            headers={
                "Content-Disposition": content_disposition(request.path_params["name"]),
                # A blob id names content that never changes (RFC 8620 §6).
                "Cache-Control": "private, immutable, max-age=31536000",
                # A blob is the mail's content, not this site's: never run it as a page here.
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
            },
        )

    routes: list[BaseRoute] = [
        Route("/.well-known/jmap", well_known, methods=["GET"]),
        Route(SESSION_PATH, session, methods=["GET"]),
        Route(API_PATH, api, methods=["POST"]),
        Route("/jmap/upload/{accountId}", upload, methods=["POST"]),
        Route("/jmap/download/{accountId}/{blobId}/{name:path}", download, methods=["GET"]),
    ]
    if services.push is not None:
        routes.extend(
            push_routes(
                PushEndpoints(
                    authenticate=authenticated,
                    account_id_of=services.account_id_of,
                    source=services.push,
                    execute=execute,
                    request_slot=request_slot,
                    limits=limits,
                )
            )
        )
    return routes
