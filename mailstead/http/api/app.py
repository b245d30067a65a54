"""The admin API's routes: one per administrative operation, named by the CLI command it
matches (the OpenAPI extension ``x-cli``), so a test can hold the two lists together.

Who calls: ``Authorization: Bearer <token>`` for every route but the account holder's own
password change, which takes the account's address and current password (HTTP Basic).
Either credential is accepted over plain HTTP only from the loopback interface, unless
``auth.allow_plaintext`` says otherwise; the throttle that slows password guessing on the
other protocols counts wrong tokens too.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at
run time, and they name ``Caller``, a local of :func:`build_api`.
"""

import ipaddress
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from fastapi.types import DecoratedCallable
from starlette.exceptions import HTTPException

from mailstead.admin.actors import Actor
from mailstead.admin.service import Admin
from mailstead.admin.tokens import throttle_account
from mailstead.auth.authenticator import Authenticator
from mailstead.core.errors import (
    AlreadyExists,
    AuthError,
    AuthThrottled,
    InvalidName,
    MailsteadError,
    NotEmpty,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageUnavailable,
)
from mailstead.http.api import models as m
from mailstead.http.server import problem_fields

log = logging.getLogger("mailstead.http.api")

PROBLEM = "application/problem+json"
#: An upload for import is written to a spool file in pieces of this size.
UPLOAD_PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class APIServices:
    """What the admin API calls."""

    admin: Admin
    authenticator: Authenticator
    allow_plaintext: bool = False  # auth.allow_plaintext: credentials over plain HTTP


class Problem(Exception):
    """An answer in RFC 9457 form, raised from anywhere in a route."""

    def __init__(self, status: int, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **members: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.members = members


def problem_json(status: int, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **members: Any) -> JSONResponse:
    body = problem_fields(status, title, detail)
    body.update(members)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


#: How an error of the operations reads over HTTP (the most specific class first).
_ERROR_STATUS: tuple[tuple[type[MailsteadError], int, str], ...] = (
    (NotFound, 404, "Not Found"),
    (AlreadyExists, 409, "Conflict"),
    (NotEmpty, 409, "Conflict"),
    (QuotaExceeded, 422, "Unprocessable Content"),
    (InvalidName, 422, "Unprocessable Content"),
    (PermissionDenied, 403, "Forbidden"),
    (StorageUnavailable, 503, "Service Unavailable"),
)


def _pointer(location: tuple[Any, ...]) -> dict[str, str]:
    """Where a validation error is, in RFC 9457's terms: a JSON pointer into the body
    (RFC 6901), or the name of a query or path parameter."""
    where, *path = location or ("body",)
    if where == "body":
        escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
        return {"pointer": "#/" + "/".join(escaped)}
    return {"parameter": ".".join(str(p) for p in path) or str(where)}


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors()[:50]:
        detail = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            detail = "the body is not valid JSON"
        errors.append({"detail": detail, **_pointer(tuple(error.get("loc", ())))})
    first = errors[0] if errors else {"detail": "invalid request"}
    where = first.get("pointer") or first.get("parameter") or ""
    return problem_json(422, "Unprocessable Content",
                        f"{where.removeprefix('#/') or 'request'}: {first['detail']}",
                        errors=errors)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_json(exc.status, exc.title, exc.detail, exc.headers, **exc.members)


async def _mailstead_error(request: Request, exc: Exception) -> Response:
    for kind, status, title in _ERROR_STATUS:
        if isinstance(exc, kind):
            return problem_json(status, title, str(exc))
    if isinstance(exc, AuthThrottled):
        return problem_json(429, "Too Many Requests", "too many failed logins; wait",
                            {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))})
    log.warning("admin API: %s: %s", type(exc).__name__, exc)
    return problem_json(500, "Internal Server Error")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
    detail = exc.detail if exc.detail not in (None, title) else None
    return problem_json(exc.status_code, title, detail, dict(exc.headers or {}))


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _package_version() -> str:
    try:
        return version("mailstead")
    except PackageNotFoundError:
        return "0"


def build_api(services: APIServices) -> FastAPI:
    """The FastAPI application mounted at ``/api`` by :func:`mailstead.http.app.build_app`."""
    admin = services.admin
    bearer = HTTPBearer(auto_error=False, description="an API token: mailstead token create")
    basic = HTTPBasic(auto_error=False, description="the account's address and password")

    def require_tls(request: Request) -> None:
        if (request.url.scheme != "https" and not services.allow_plaintext
                and not _is_loopback(_client(request))):
            raise Problem(403, "Forbidden", "credentials are accepted over HTTPS only "
                          "(or from this machine); use the https listener")

    async def caller(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
        """The actor the request's bearer token stands for; 401 without a valid one."""
        challenge = {"WWW-Authenticate": 'Bearer realm="mailstead"'}
        if credentials is None:
            raise Problem(401, "Unauthorized", "send Authorization: Bearer <token> "
                          "(mailstead token create)", challenge)
        require_tls(request)
        source = _client(request)
        throttle = services.authenticator.throttle
        account = throttle_account(credentials.credentials, source)
        throttle.check(account, source)
        actor = await admin.authenticate_token(credentials.credentials, source)
        if actor is None:
            log.info("admin API: a wrong or revoked token from %s", source)
            throttle.record_failure(account, source)
            raise Problem(401, "Unauthorized", "the token is wrong or revoked",
                          {"WWW-Authenticate": 'Bearer realm="mailstead", '
                           'error="invalid_token"'})
        throttle.record_success(account, source)
        return actor

    Caller = Annotated[Actor, Depends(caller)]

    def route(router: APIRouter, method: str, path: str, cli: str | None, *,
              status: int = 200, summary: str,
              **kwargs: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """A route; ``cli`` is the command line's name for the same operation."""
        extra: dict[str, Any] = dict(kwargs.pop("openapi_extra", None) or {})
        if cli:
            extra["x-cli"] = cli
        return router.api_route(path, methods=[method], status_code=status, summary=summary,
                                openapi_extra=extra or None, **kwargs)

    api = FastAPI(
        title="mailstead admin API",
        version=_package_version(),
        description="Everything the mailstead command line administers, over HTTP. "
        "Errors are RFC 9457 problem documents; validation errors list each field "
        "(`errors[].pointer`).",
        openapi_url="/openapi.json", docs_url=None, redoc_url=None,
        exception_handlers={
            RequestValidationError: _invalid, Problem: _problem,
            MailsteadError: _mailstead_error, HTTPException: _http_error,
        },
    )
    v1 = APIRouter(prefix="/v1")

    @route(v1, "GET", "/whoami", None, summary="The token's name and scope")
    async def whoami(me: Caller) -> m.WhoAmIOut:
        return m.WhoAmIOut(actor=me.name, scope=me.scope)

    # -- domains ---------------------------------------------------------------------------

    @route(v1, "GET", "/domains", "domain list", summary="List domains")
    async def domain_list(me: Caller) -> list[m.DomainOut]:
        return [m.DomainOut.of(d) for d in await admin.list_domains(me)]

    @route(v1, "POST", "/domains", "domain add", status=201, summary="Add a domain")
    async def domain_add(body: m.DomainIn, me: Caller) -> m.DomainOut:
        return m.DomainOut.of(await admin.add_domain(me, body.name))

    @route(v1, "DELETE", "/domains/{name}", "domain remove", status=204,
           summary="Remove a domain (it must have no users, aliases or groups)")
    async def domain_remove(name: str, me: Caller) -> None:
        await admin.remove_domain(me, name)

    @route(v1, "POST", "/setup", "setup", status=201,
           summary="Quickstart: the domain, postmaster@ and a DKIM key, each if missing")
    async def setup(body: m.SetupIn, me: Caller) -> m.SetupOut:
        return m.SetupOut.of(await admin.setup(me, body.domain))

    # -- users -----------------------------------------------------------------------------

    @route(v1, "GET", "/users", "user list", summary="List accounts")
    async def user_list(me: Caller, domain: Annotated[str | None, Query(
            max_length=255, description="only this domain's accounts")] = None,
            ) -> list[m.UserOut]:
        return [m.UserOut.of(u) for u in await admin.list_users(me, domain)]

    @route(v1, "POST", "/users", "user add", status=201,
           summary="Create an account with the default folders")
    async def user_add(body: m.UserIn, me: Caller) -> m.UserOut:
        return m.UserOut.of(await admin.add_user(me, body.address, body.password,
                                                 quota_bytes=body.quota))

    @route(v1, "GET", "/users/{address}", None, summary="One account")
    async def user_get(address: str, me: Caller) -> m.UserOut:
        return m.UserOut.of(await admin.get_user(me, address))

    @route(v1, "DELETE", "/users/{address}", "user remove", status=204,
           summary="Delete an account and all of its mail")
    async def user_remove(address: str, me: Caller) -> None:
        await admin.remove_user(me, address)

    @route(v1, "PUT", "/users/{address}/password", "user passwd", status=204,
           summary="Set a new password")
    async def user_passwd(address: str, body: m.PasswordIn, me: Caller) -> None:
        await admin.set_password(me, address, body.password)

    @route(v1, "POST", "/users/{address}/disable", "user disable", status=204,
           summary="Refuse logins and mail for the account; its mail is kept")
    async def user_disable(address: str, me: Caller) -> None:
        await admin.set_disabled(me, address, True)

    @route(v1, "POST", "/users/{address}/enable", "user enable", status=204,
           summary="Let a disabled account log in and receive mail again")
    async def user_enable(address: str, me: Caller) -> None:
        await admin.set_disabled(me, address, False)

    @route(v1, "PUT", "/users/{address}/quota", "user quota", status=204,
           summary="Set the storage quota")
    async def user_quota(address: str, body: m.QuotaIn, me: Caller) -> None:
        await admin.set_quota(me, address, body.quota)

    @route(v1, "PUT", "/users/{address}/pop3-policy", "user pop3-policy", status=204,
           summary="What POP3 deletion does for the account")
    async def user_pop3_policy(address: str, body: m.Pop3PolicyIn, me: Caller) -> None:
        await admin.set_pop3_policy(me, address, body.policy)

    @route(v1, "PUT", "/users/{address}/plus-folders", "user plus-folders", status=204,
           summary="Deliver user+tag@ mail into the folder tag")
    async def user_plus_folders(address: str, body: m.PlusFoldersIn, me: Caller) -> None:
        await admin.set_plus_folders(me, address, body.enabled)

    @route(v1, "PUT", "/users/{address}/send-as", "user send-as", status=204,
           summary="Which sender addresses the account may submit with")
    async def user_send_as(address: str, body: m.SendAsIn, me: Caller) -> None:
        await admin.set_send_as(me, address, body.send_as)

    @route(v1, "GET", "/users/{address}/mailboxes", "mailbox list",
           summary="The account's folders with counts and sizes")
    async def mailbox_list(address: str, me: Caller) -> list[m.MailboxOut]:
        return [m.MailboxOut.of(x) for x in await admin.list_mailboxes(me, address)]

    @route(v1, "GET", "/users/{address}/shares", "share list",
           summary="Every grant on the account's folders (IMAP ACL, RFC 4314)")
    async def share_list(address: str, me: Caller) -> list[m.ShareOut]:
        return [m.ShareOut(mailbox=name, grantee=e.identifier, rights=e.rights)
                for name, e in await admin.share_list(me, address)]

    @route(v1, "PUT", "/users/{address}/shares", "share grant",
           summary="Give another account (or anyone) rights on one of the account's folders")
    async def share_grant(address: str, body: m.ShareIn, me: Caller) -> m.ShareOut:
        rights = await admin.share_grant(me, address, body.mailbox, body.grantee, body.rights)
        return m.ShareOut(mailbox=body.mailbox, grantee=body.grantee, rights=rights)

    @route(v1, "DELETE", "/users/{address}/shares", "share revoke", status=204,
           summary="Take every right on one of the account's folders from a grantee")
    async def share_revoke(address: str, me: Caller,
                           mailbox: Annotated[str, Query(min_length=1, max_length=1000)],
                           grantee: Annotated[str, Query(min_length=1, max_length=320)],
                           ) -> None:
        await admin.share_revoke(me, address, mailbox, grantee)

    @route(v1, "POST", "/users/{address}/import", "message import",
           summary="Import an mbox file sent as the request body (application/mbox); "
           "the body limit of [http] applies, the command line has none",
           openapi_extra={"requestBody": {
               "required": True, "content": {"application/mbox": {
                   "schema": {"type": "string", "format": "binary"}}}}})
    async def message_import(address: str, request: Request, me: Caller,
                             folder: Annotated[str | None, Query(max_length=1000)] = None,
                             ) -> list[m.ImportOut]:
        spool = admin.settings.data_dir / "spool"
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="import-", suffix=".mbox", dir=spool)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                async for piece in request.stream():
                    file.write(piece)
            if path.stat().st_size == 0:
                raise Problem(422, "Unprocessable Content",
                              "the body is empty: send the mbox file as the body")
            reports = await admin.import_messages(me, address, path, folder)
        finally:
            path.unlink(missing_ok=True)
        return [m.ImportOut.of(r) for r in reports]

    # -- aliases and groups ----------------------------------------------------------------

    @route(v1, "GET", "/aliases", "alias list", summary="List aliases")
    async def alias_list(me: Caller, domain: Annotated[str | None, Query(
            max_length=255)] = None) -> list[m.AliasOut]:
        return [m.AliasOut.of(a) for a in await admin.list_aliases(me, domain)]

    @route(v1, "POST", "/aliases", "alias add", status=201,
           summary="Deliver mail for an address to others (targets are added)")
    async def alias_add(body: m.AliasIn, me: Caller) -> m.AliasOut:
        return m.AliasOut.of(await admin.add_alias(me, body.source, body.targets))

    @route(v1, "DELETE", "/aliases/{source}", "alias remove", status=204,
           summary="Remove an alias, or with ?target= only that target")
    async def alias_remove(source: str, me: Caller, target: Annotated[str | None, Query(
            max_length=320)] = None) -> None:
        await admin.remove_alias(me, source, target)

    @route(v1, "GET", "/groups", "group list", summary="List groups with their members")
    async def group_list(me: Caller, domain: Annotated[str | None, Query(
            max_length=255)] = None) -> list[m.GroupOut]:
        return [m.GroupOut.of(g) for g in await admin.list_groups(me, domain)]

    @route(v1, "POST", "/groups", "group add", status=201, summary="Create a group")
    async def group_add(body: m.GroupIn, me: Caller) -> m.GroupOut:
        return m.GroupOut.of(await admin.add_group(me, body.address, body.members))

    @route(v1, "GET", "/groups/{address}", None, summary="One group")
    async def group_get(address: str, me: Caller) -> m.GroupOut:
        return m.GroupOut.of(await admin.get_group(me, address))

    @route(v1, "DELETE", "/groups/{address}", "group remove", status=204,
           summary="Delete a group")
    async def group_remove(address: str, me: Caller) -> None:
        await admin.remove_group(me, address)

    @route(v1, "POST", "/groups/{address}/members", "group member add",
           summary="Add a member")
    async def group_member_add(address: str, body: m.MemberIn, me: Caller) -> m.GroupOut:
        return m.GroupOut.of(await admin.add_group_member(me, address, body.member))

    @route(v1, "DELETE", "/groups/{address}/members/{member}", "group member remove",
           summary="Remove a member")
    async def group_member_remove(address: str, member: str, me: Caller) -> m.GroupOut:
        return m.GroupOut.of(await admin.remove_group_member(me, address, member))

    # -- the mailstore and the queue -------------------------------------------------------

    @route(v1, "GET", "/store/check", "check",
           summary="Full integrity check of the mailstore (may take a while)")
    async def check(me: Caller) -> m.CheckOut:
        problems = await admin.integrity_check(me)
        return m.CheckOut(ok=not problems, problems=problems)

    @route(v1, "POST", "/store/index/rebuild", "index rebuild",
           summary="Write the IMAP SEARCH full-text index again (one account, or every one)")
    async def index_rebuild(me: Caller, account: Annotated[str | None, Query(
            max_length=320, description="only this account; default every account")] = None,
    ) -> m.IndexRebuildOut:
        report = await admin.rebuild_index(me, account)
        return m.IndexRebuildOut(indexed=report.indexed, skipped=report.skipped)

    @route(v1, "GET", "/queue", "queue list", summary="Every queued message")
    async def queue_list(me: Caller) -> list[m.QueuedOut]:
        return [m.QueuedOut.of(q) for q in await admin.queue_list(me)]

    @route(v1, "GET", "/queue/{queue_id}", "queue show",
           summary="One queued message with its header fields")
    async def queue_show(queue_id: int, me: Caller) -> m.QueuedOut:
        return m.QueuedOut.detail(await admin.queue_show(me, queue_id))

    @route(v1, "POST", "/queue/retry", "queue retry",
           summary="Make every queued message's pending recipients due now")
    async def queue_retry_all(me: Caller) -> m.CountOut:
        return m.CountOut(count=await admin.queue_retry(me, None))

    @route(v1, "POST", "/queue/{queue_id}/retry", "queue retry",
           summary="Make one message's pending recipients due now")
    async def queue_retry(queue_id: int, me: Caller) -> m.CountOut:
        return m.CountOut(count=await admin.queue_retry(me, queue_id))

    @route(v1, "DELETE", "/queue/{queue_id}", "queue delete", status=204,
           summary="Drop a queued message without delivering it and without a bounce")
    async def queue_delete(queue_id: int, me: Caller) -> None:
        await admin.queue_delete(me, queue_id)

    @route(v1, "POST", "/queue/{queue_id}/hold", "queue hold", status=204,
           summary="Stop attempting a message until it is released")
    async def queue_hold(queue_id: int, me: Caller) -> None:
        await admin.queue_hold(me, queue_id, True)

    @route(v1, "POST", "/queue/{queue_id}/release", "queue release", status=204,
           summary="Attempt a held message again")
    async def queue_release(queue_id: int, me: Caller) -> None:
        await admin.queue_hold(me, queue_id, False)

    # -- DNS -------------------------------------------------------------------------------

    @route(v1, "GET", "/domains/{name}/dns-records", "dns records",
           summary="Every DNS record the domain needs, each with why")
    async def dns_records(name: str, me: Caller) -> dict[str, Any]:
        return (await admin.dns_records(me, name)).as_json()

    @route(v1, "GET", "/domains/{name}/dns-check", "dns check",
           summary="Each record as the DNS publishes it: ok, missing, wrong or unknown")
    async def dns_check(name: str, me: Caller) -> dict[str, Any]:
        return (await admin.dns_check(me, name)).as_json()

    # -- DKIM, tokens, the audit log -------------------------------------------------------

    @route(v1, "GET", "/dkim/keys", "dkim list", summary="Signing keys and their records")
    async def dkim_list(me: Caller) -> list[m.DKIMKeyOut]:
        return [m.DKIMKeyOut.of(k) for k in await admin.dkim_list(me)]

    @route(v1, "POST", "/dkim/keys", "dkim keygen", status=201,
           summary="Make a signing key; publish the record it answers before mail uses it")
    async def dkim_keygen(body: m.DKIMKeyIn, me: Caller) -> m.DKIMKeyOut:
        return m.DKIMKeyOut.of(await admin.dkim_keygen(me, body.domain, body.selector,
                                                       body.algorithm))

    @route(v1, "GET", "/tokens", "token list", summary="API tokens (never their secrets)")
    async def token_list(me: Caller) -> list[m.TokenOut]:
        return [m.TokenOut.of(t) for t in await admin.list_tokens(me)]

    @route(v1, "POST", "/tokens", "token create", status=201,
           summary="Make a token; its secret is in this answer only")
    async def token_create(body: m.TokenIn, me: Caller) -> m.NewTokenOut:
        return m.NewTokenOut.of(await admin.create_token(me, body.name, body.scope))

    @route(v1, "DELETE", "/tokens/{token_id}", "token revoke", status=204,
           summary="Revoke a token")
    async def token_revoke(token_id: int, me: Caller) -> None:
        await admin.revoke_token(me, token_id)

    @route(v1, "GET", "/audit", "audit list", summary="Administrative changes, newest first")
    async def audit_list(me: Caller,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         before: Annotated[int | None, Query(ge=1)] = None,
                         target: Annotated[str | None, Query(max_length=320)] = None,
                         ) -> list[m.AuditOut]:
        records = await admin.audit_log(me, limit=limit, before=before, target=target)
        return [m.AuditOut.of(r) for r in records]

    # -- the account holder ----------------------------------------------------------------

    @route(v1, "PUT", "/account/password", None, status=204,
           summary="Change your own password: HTTP Basic with your address and current "
           "password")
    async def own_password(request: Request, body: m.OwnPasswordIn, credentials: Annotated[
            HTTPBasicCredentials | None, Depends(basic)]) -> None:
        if credentials is None:
            raise Problem(401, "Unauthorized", "log in with your address and current "
                          "password (HTTP Basic)",
                          {"WWW-Authenticate": 'Basic realm="mailstead", charset="UTF-8"'})
        require_tls(request)
        source = _client(request)
        try:
            user = await services.authenticator.authenticate(
                credentials.username, credentials.password, source)
        except AuthThrottled:
            raise
        except AuthError:
            raise Problem(401, "Unauthorized", "authentication failed",
                          {"WWW-Authenticate": 'Basic realm="mailstead", '
                           'charset="UTF-8"'}) from None
        await admin.change_own_password(user.address, source, body.new_password)

    api.include_router(v1)
    return api

