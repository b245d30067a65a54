"""Which server gets mail for a domain: a static route, the smarthost, or its MX hosts.

Order (first match wins):

1. a static route from ``[delivery.routes]``: ``"example.org" = "mail.example.net:2525"``
   (exact domain match; the host may be a name, resolved by A/AAAA only, or an
   ``[IP]`` literal). Real deployments use these for internal domains; the tests use them
   to point a domain at a sink on a loopback port;
2. an address literal recipient (``user@[192.0.2.1]``, RFC 5321 §4.1.3): that address;
3. the relay host (``[delivery.relay]``), with its own TLS mode and AUTH, when set;
4. otherwise MX lookup (:mod:`mailstead.delivery.dns`) on ``delivery.smtp_port``.

Each :class:`Destination` carries a ``key``: messages with the same key share connections
and the per-destination connection limit, so mail for many domains through one smarthost
reuses one connection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from mailstead.config.schema import DeliverySettings
from mailstead.core.errors import ConfigError
from mailstead.delivery.remote import ClientTLS, TLSPolicy


class RouteKind(Enum):
    """Which rule chose the destination, in the order they are tried."""

    STATIC = "static"  # [delivery.routes]
    LITERAL = "literal"  # an address literal recipient, user@[192.0.2.1]
    RELAY = "relay"  # the smarthost, [delivery.relay]
    MX = "mx"  # the domain's MX hosts (RFC 5321 §5.1)


#: ``delivery.relay.tls`` as the client's policy: "starttls" there means STARTTLS or nothing.
_RELAY_TLS = {
    "starttls": ClientTLS.REQUIRED,
    "implicit": ClientTLS.IMPLICIT,
    "opportunistic": ClientTLS.OPPORTUNISTIC,
    "none": ClientTLS.NONE,
}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to connect for one domain.

    For :attr:`RouteKind.MX` the hosts come from DNS; otherwise ``host`` (a name or an IP)
    and ``port`` are fixed.
    """

    key: str
    kind: RouteKind
    domain: str
    host: str
    port: int
    tls: TLSPolicy
    auth: tuple[str, str] | None = None


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v4 or v6 address]:port`` or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"unclosed [ in {text!r}")
        host = inner.removeprefix("IPv6:")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = int(port_text)
    else:
        host, port = text, default_port
    if not host or not 0 < port < 65536:
        raise ValueError(f"not host[:port]: {text!r}")
    return host.lower().rstrip("."), port


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def domain_literal(domain: str) -> str | None:
    """The IP address in ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 §4.1.3)."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    inner = inner[5:] if inner.lower().startswith("ipv6:") else inner
    return inner if is_ip(inner) else None


class RouteTable:
    """Routing decisions from ``[delivery]``; built once per scheduler."""

    def __init__(self, settings: DeliverySettings, base_dir: Path | None = None) -> None:
        self.settings = settings
        self.static: dict[str, tuple[str, int]] = {}
        for domain, target in settings.routes.items():
            try:
                self.static[domain.lower().rstrip(".")] = parse_host_port(
                    target, settings.smtp_port)
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"delivery.routes.{domain}") from None
        self.require_tls = {d.lower().rstrip(".") for d in settings.require_tls}
        relay = settings.relay
        self.relay: tuple[str, int] | None = None
        self.relay_auth: tuple[str, str] | None = None
        if relay.host:
            try:
                self.relay = parse_host_port(relay.host, relay.port)
            except ValueError as exc:
                raise ConfigError(str(exc), key="delivery.relay.host") from None
            if relay.username:
                self.relay_auth = (relay.username, _read_password(relay.password_file,
                                                                  base_dir))

    def _tls_for(self, domain: str, host: str) -> TLSPolicy:
        if domain in self.require_tls:
            return TLSPolicy(ClientTLS.REQUIRED, verify=self.settings.verify_required_tls,
                             server_name=host)
        return TLSPolicy(ClientTLS.OPPORTUNISTIC, server_name=host)

    def route(self, domain: str) -> Destination:
        domain = domain.lower().rstrip(".")
        static = self.static.get(domain)
        if static is not None:
            host, port = static
            return Destination(f"static:{host}:{port}", RouteKind.STATIC, domain, host, port,
                               self._tls_for(domain, host))
        literal = domain_literal(domain)
        if literal is not None:
            port = self.settings.smtp_port
            return Destination(f"literal:{literal}:{port}", RouteKind.LITERAL, domain,
                               literal, port, self._tls_for(domain, literal))
        if self.relay is not None:
            host, port = self.relay
            mode = _RELAY_TLS[self.settings.relay.tls]
            # Opportunistic TLS checks nothing by definition (RFC 7435); none has nothing.
            verify = self.settings.relay.verify_certificate and mode in (
                ClientTLS.REQUIRED, ClientTLS.IMPLICIT)
            policy = TLSPolicy(mode, verify=verify, server_name=host)
            return Destination(f"relay:{host}:{port}", RouteKind.RELAY, domain, host, port,
                               policy, self.relay_auth)
        return Destination(f"mx:{domain}", RouteKind.MX, domain, "", self.settings.smtp_port,
                           self._tls_for(domain, domain))


def _read_password(path: Path | None, base_dir: Path | None) -> str:
    if path is None:
        raise ConfigError("a relay username needs password_file", key="delivery.relay")
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}",
                          key="delivery.relay.password_file") from None
    if not lines or not lines[0]:
        raise ConfigError(f"{path} is empty", key="delivery.relay.password_file")
    return lines[0]
