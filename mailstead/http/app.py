"""The ASGI application of the HTTP listeners: its routes, and errors as RFC 9457 problems.

Built by the composition root from the services the other front ends use; routes are thin
(ARCHITECTURE.md): they call a service and shape its answer. This first part serves
``/health``, ``/metrics`` and the autoconfig answers, and mounts the admin API at ``/api``
(http/api/) and JMAP at ``/jmap`` (http/jmap/); the sending API and the webmail mount here
as they come.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from mailstead.admin.dns import PACC_MEDIA_TYPE, MTASTSPolicy, pacc_document
from mailstead.config.endpoints import ClientEndpoint
from mailstead.core import metrics
from mailstead.http.api.app import APIServices, build_api
from mailstead.http.autoconfig import (
    MAX_AUTODISCOVER_REQUEST,
    apple_profile,
    autodiscover_address,
    autodiscover_pox,
    domain_of,
    mozilla_config,
)
from mailstead.http.jmap.app import JMAPServices, build_jmap
from mailstead.http.server import problem_fields
from mailstead.http.wellknown import MTA_STS_LABEL, PACC_LABEL, domain_under
from mailstead.store.interfaces import Directory, OutboundQueue

log = logging.getLogger("mailstead.http")

PROBLEM = "application/problem+json"


class QueueState(Protocol):
    """What the health check asks of the outbound scheduler."""

    @property
    def running(self) -> bool: ...


class ACMEChallenges(Protocol):
    """Who knows the pending ACME HTTP-01 challenges (mailstead/acme, through serve.py)."""

    def http01(self, token: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HTTPServices:
    """What the routes call: the same services the CLI and the other front ends use."""

    directory: Directory
    queue: QueueState | None  # None: outbound delivery is off
    endpoints: Sequence[ClientEndpoint] = ()  # where mail clients connect (autoconfig)
    outbound: OutboundQueue | None = None  # the queue's summary for /metrics
    metrics_from: Sequence[str] = ("127.0.0.0/8", "::1/128")  # who may read /metrics
    api: APIServices | None = None  # the admin API at /api; None: not served
    mta_sts: MTASTSPolicy | None = None  # the policy of every hosted domain; None: not served
    acme: ACMEChallenges | None = None  # None: [acme] is off
    jmap: JMAPServices | None = None  # JMAP at /jmap; None: not served


def problem_response(status: int, title: str, detail: str | None = None,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem_fields(status, title, detail), status_code=status,
                        media_type=PROBLEM, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
    detail = exc.detail if exc.detail not in (None, title) else None
    return problem_response(exc.status_code, title, detail, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The exception itself goes to the log from the server (http/server.py), once.
    return problem_response(500, "Internal Server Error")


def build_app(services: HTTPServices) -> Starlette:
    """The application, its routes bound to ``services``."""

    async def health(request: Request) -> Response:
        """Liveness and readiness: the store answers a read, the outbound queue runs."""
        checks: dict[str, str] = {}
        try:
            await services.directory.list_domains()
            checks["store"] = "ok"
        except Exception as exc:  # any failure of the store is "not ready", with a reason
            log.warning("health: the store does not answer: %s", exc)
            checks["store"] = "failing"
        if services.queue is None:
            checks["queue"] = "disabled"
        else:
            checks["queue"] = "ok" if services.queue.running else "stopped"
        ready = all(v in ("ok", "disabled") for v in checks.values())
        if not ready:
            response = problem_response(503, "Service Unavailable", "not ready: " + ", ".join(
                f"{name} {state}" for name, state in checks.items() if state != "ok"))
            return response
        return JSONResponse({"status": "ok", "checks": checks})

    async def autoconfig(request: Request) -> Response:
        """Mozilla autoconfig for a hosted domain (see http/autoconfig.py)."""
        domain = domain_of(request.query_params.get("emailaddress"),
                           request.headers.get("host"))
        if domain is None:
            return problem_response(400, "Bad Request",
                                    "which domain: give ?emailaddress=user@domain")
        if not await services.directory.has_domain(domain):
            return problem_response(404, "Not Found", f"no mail domain {domain} here")
        return Response(mozilla_config(domain, services.endpoints),
                        media_type="application/xml")

    async def unknown_domain(address: str) -> Response | None:
        """404 unless ``address`` is in a domain hosted here."""
        domain = domain_of(address, None)
        if domain is None:
            return problem_response(400, "Bad Request", "not an e-mail address")
        if not await services.directory.has_domain(domain):
            return problem_response(404, "Not Found", f"no mail domain {domain} here")
        return None

    async def autodiscover(request: Request) -> Response:
        """Outlook's POX Autodiscover: the address in an XML request body."""
        body = b""
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_AUTODISCOVER_REQUEST:
                return problem_response(413, "Content Too Large",
                                        "an Autodiscover request is a few hundred octets")
        address = autodiscover_address(body)
        if address is None:
            return problem_response(400, "Bad Request",
                                    "expected an Autodiscover request with an EMailAddress")
        refused = await unknown_domain(address)
        if refused is not None:
            return refused
        return Response(autodiscover_pox(address, services.endpoints),
                        media_type="application/xml")

    async def autodiscover_v2(request: Request) -> Response:
        """Autodiscover v2: where the v1 (POX) service is, for the protocol asked."""
        address = request.path_params.get("address") or request.query_params.get("Email", "")
        protocol = request.query_params.get("Protocol", "")
        if protocol.lower() != "autodiscoverv1":
            return problem_response(400, "Bad Request",
                                    f"protocol {protocol[:40]!r} is not served; "
                                    "AutodiscoverV1 is")
        refused = await unknown_domain(address)
        if refused is not None:
            return refused
        url = request.url.replace(path="/Autodiscover/Autodiscover.xml", query="")
        return JSONResponse({"Protocol": "AutodiscoverV1", "Url": str(url)})

    async def mobileconfig(request: Request) -> Response:
        """An Apple configuration profile with the account of ``?emailaddress=``."""
        address = request.query_params.get("emailaddress", "").strip()
        refused = await unknown_domain(address)
        if refused is not None:
            return refused
        profile = apple_profile(address, services.endpoints)
        if profile is None:
            return problem_response(404, "Not Found",
                                    "no IMAP or POP3 and submission listener is enabled")
        name = domain_of(address, None)
        return Response(profile, media_type="application/x-apple-aspen-config", headers={
            "Content-Disposition": f'attachment; filename="{name}.mobileconfig"'})

    async def hosted_under(request: Request, label: str) -> str | Response:
        """The hosted domain of a ``<label>.<domain>`` Host, or the 404 to answer."""
        domain = domain_under(request.headers.get("host"), label)
        if domain is None:
            return problem_response(404, "Not Found", f"ask on the host {label}.<mail domain>")
        if not await services.directory.has_domain(domain):
            return problem_response(404, "Not Found", f"no mail domain {domain} here")
        return domain

    async def mta_sts_policy(request: Request) -> Response:
        """The MTA-STS policy (RFC 8461 §3.3) on ``mta-sts.<hosted domain>``."""
        domain = await hosted_under(request, MTA_STS_LABEL)
        if isinstance(domain, Response):
            return domain
        if services.mta_sts is None:
            return problem_response(404, "Not Found", "MTA-STS is not served here")
        return Response(services.mta_sts.text(), media_type="text/plain")

    async def pacc(request: Request) -> Response:
        """The PACC configuration (draft-ietf-mailmaint-pacc) on ``ua-auto-config.<hosted
        domain>``: the same listeners as the other autoconfiguration answers."""
        domain = await hosted_under(request, PACC_LABEL)
        if isinstance(domain, Response):
            return domain
        document = pacc_document(domain, services.endpoints)
        if document is None:
            return problem_response(404, "Not Found", "no implicit-TLS listener on a standard "
                                    "port (993, 995, 465) to announce")
        return Response(document, media_type=PACC_MEDIA_TYPE)

    allowed = [ipaddress.ip_network(n, strict=False) for n in services.metrics_from]

    async def metrics_page(request: Request) -> Response:
        """Prometheus exposition of core/metrics.py, for the networks of http.metrics_from."""
        client = request.client.host if request.client is not None else ""
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            address = None
        if address is None or not any(address in network for network in allowed):
            return problem_response(403, "Forbidden",
                                    "metrics are for the networks of http.metrics_from")
        if services.outbound is not None:
            waiting, oldest = await services.outbound.queue_summary()
            metrics.QUEUE_RECIPIENTS.set(waiting)
            age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0
            metrics.QUEUE_OLDEST_SECONDS.set(max(0.0, age))
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def acme_challenge(request: Request) -> Response:
        """RFC 8555 §8.3: the key authorization of a pending HTTP-01 challenge, as text."""
        token = request.path_params["token"]
        answer = services.acme.http01(token) if services.acme is not None else None
        if answer is None:
            return problem_response(404, "Not Found", "no such ACME challenge is pending")
        return Response(answer, media_type="application/octet-stream")

    routes: list[BaseRoute] = [
        Route("/.well-known/acme-challenge/{token}", acme_challenge, methods=["GET"]),
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/mail/config-v1.1.xml", autoconfig, methods=["GET"]),
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig,
              methods=["GET"]),
        Route("/autodiscover/autodiscover.xml", autodiscover, methods=["POST"]),
        Route("/Autodiscover/Autodiscover.xml", autodiscover, methods=["POST"]),
        Route("/autodiscover/autodiscover.json", autodiscover_v2, methods=["GET"]),
        Route("/autodiscover/autodiscover.json/v1.0/{address}", autodiscover_v2,
              methods=["GET"]),
        Route("/apple/mail.mobileconfig", mobileconfig, methods=["GET"]),
        Route("/.well-known/mta-sts.txt", mta_sts_policy, methods=["GET"]),
        Route("/.well-known/user-agent-configuration.json", pacc, methods=["GET"]),
    ]
    if services.api is not None:
        routes.append(Mount("/api", app=build_api(services.api)))
    if services.jmap is not None:
        routes.extend(build_jmap(services.jmap))
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
