"""What the server counts, for Prometheus at ``GET /metrics`` (docs/monitoring.md).

The metrics are process-wide, on a registry of their own (not prometheus_client's default,
which also carries the client library's process metrics under other names): every front
end and service counts into the same objects, and the HTTP front end renders them. Label
values come from fixed sets (listener names, command names of a command table, outcome
words), never from client input, so no client can grow the number of series.

``docs/monitoring/alerts.yml`` has the alert rules; a test checks that every metric a rule
names is defined here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONNECTIONS = Counter(
    "mailstead_connections", "Connections accepted, by listener",
    ["listener"], registry=REGISTRY)
CONNECTIONS_REJECTED = Counter(
    "mailstead_connections_rejected", "Connections refused over the connection caps",
    ["listener"], registry=REGISTRY)
CONNECTIONS_OPEN = Gauge(
    "mailstead_connections_open", "Connections open now, by listener",
    ["listener"], registry=REGISTRY)
TLS_HANDSHAKE_FAILURES = Counter(
    "mailstead_tls_handshake_failures", "TLS handshakes that failed (implicit or STARTTLS)",
    ["listener"], registry=REGISTRY)
COMMANDS = Counter(
    "mailstead_commands", "Commands run, by protocol and command",
    ["protocol", "command"], registry=REGISTRY)
COMMAND_SECONDS = Histogram(
    "mailstead_command_duration_seconds", "Time to answer a command",
    ["protocol"], buckets=_LATENCY, registry=REGISTRY)
MESSAGES_RECEIVED = Counter(
    "mailstead_messages_received", "Messages at the end of SMTP DATA or BDAT, by outcome "
    "(accepted, refused: 5xx, deferred: 4xx)",
    ["outcome"], registry=REGISTRY)
OUTBOUND_RECIPIENTS = Counter(
    "mailstead_outbound_recipients", "Outbound delivery attempts per recipient, by outcome "
    "(delivered, deferred, bounced, expired)",
    ["outcome"], registry=REGISTRY)
QUEUE_RECIPIENTS = Gauge(
    "mailstead_queue_recipients", "Recipients waiting in the outbound queue",
    registry=REGISTRY)
QUEUE_OLDEST_SECONDS = Gauge(
    "mailstead_queue_oldest_age_seconds", "Age of the oldest message in the outbound queue",
    registry=REGISTRY)
AUTH_FAILURES = Counter(
    "mailstead_auth_failures", "Failed logins (wrong credentials)", registry=REGISTRY)
AUTH_THROTTLED = Counter(
    "mailstead_auth_throttled", "Login attempts refused unchecked: the account or the "
    "address is being throttled or locked", registry=REGISTRY)
STORE_COMMIT_SECONDS = Histogram(
    "mailstead_store_commit_duration_seconds",
    "Time of one group commit of the store's writer (SQL and fsync)",
    buckets=_LATENCY, registry=REGISTRY)
STORE_COMMIT_WRITES = Histogram(
    "mailstead_store_commit_writes", "Writes in one group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "mailstead_http_requests", "HTTP requests answered, by status class (2xx, 4xx, ...)",
    ["status"], registry=REGISTRY)
CERTIFICATE_EXPIRY = Gauge(
    "mailstead_certificate_expiry_timestamp_seconds",
    "When the certificate the TLS listeners serve expires (Unix time)", registry=REGISTRY)
ACME_FAILURES = Counter(
    "mailstead_acme_failures", "ACME attempts to obtain or renew the certificate that "
    "failed (the old certificate kept serving)", registry=REGISTRY)
ACME_ISSUED = Counter(
    "mailstead_acme_certificates_issued", "Certificates obtained by ACME and installed",
    registry=REGISTRY)
UP_SINCE = Gauge(
    "mailstead_start_time_seconds", "When the server started (Unix time)",
    registry=REGISTRY)


#: The labelled children of the command metrics, looked up once per (protocol, command):
#: ``labels()`` validates and joins its arguments on every call, and it ran for every
#: command of every session (about 3 % of the IMAP event loop's time under load).
_COMMAND_CHILDREN: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


@contextmanager
def command(protocol: str, name: str) -> Iterator[None]:
    """Count one command and time it (the name must come from the command table)."""
    children = _COMMAND_CHILDREN.get((protocol, name))
    if children is None:
        children = (COMMANDS.labels(protocol, name), COMMAND_SECONDS.labels(protocol))
        _COMMAND_CHILDREN[(protocol, name)] = children
    counter, seconds = children
    counter.inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds.observe(time.perf_counter() - started)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
