"""Who is making an administrative change, from where, and what they may touch.

Every admin operation takes an :class:`Actor`. The command line acts as ``admin`` (whoever
can run it can read the data directory anyway); an API token acts with the scope it was
created with. The scope is checked here, in the operations, so no front end can forget it.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from mailstead.core.errors import InvalidName, PermissionDenied

ADMIN = "admin"
SEND = "send"
#: ``mail:ADDRESS``: a token that reads and writes one account's mail over JMAP, as its
#: password would (for programs and devices that should not hold the password).
MAIL_PREFIX = "mail:"
DOMAIN_PREFIX = "domain:"


def parse_scope(text: str) -> str:
    """``admin``, ``send``, ``domain:NAME`` or ``mail:ADDRESS`` in its stored form;
    InvalidName otherwise."""
    scope = text.strip()
    if scope in (ADMIN, SEND):
        return scope
    if scope.lower().startswith(MAIL_PREFIX):
        address = scope[len(MAIL_PREFIX):].strip().lower()
        local, at, domain = address.rpartition("@")
        if at and local and domain and " " not in address and ".." not in domain:
            return MAIL_PREFIX + address
    if scope.lower().startswith(DOMAIN_PREFIX):
        domain = scope[len(DOMAIN_PREFIX):].strip().lower().rstrip(".")
        if domain and "@" not in domain and " " not in domain and ".." not in domain:
            return DOMAIN_PREFIX + domain
    raise InvalidName(f"not a token scope: {text!r} (admin, send, domain:example.org or "
                      "mail:user@example.org)")


def domain_of(address: str) -> str:
    """The domain part of an address (or of ``@domain``), lower case."""
    return address.rpartition("@")[2].strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Actor:
    """The one making a change: how the audit log names it, where it came from, its scope."""

    name: str  # "cli:root", "token 3 (deploy)"
    source: str  # "local", or the client's IP address
    scope: str = ADMIN

    @property
    def is_admin(self) -> bool:
        return self.scope == ADMIN

    @property
    def domain(self) -> str | None:
        """The one domain a ``domain:`` scope may manage; None for other scopes."""
        return self.scope[len(DOMAIN_PREFIX):] if self.scope.startswith(DOMAIN_PREFIX) else None

    @property
    def mail_account(self) -> str | None:
        """The one account a ``mail:`` scope reads and writes mail of; None otherwise."""
        return self.scope[len(MAIL_PREFIX):] if self.scope.startswith(MAIL_PREFIX) else None

    def may_manage(self, domain: str) -> bool:
        return self.is_admin or self.domain == domain.lower().rstrip(".")

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise PermissionDenied(f"{what} needs a token with the admin scope "
                                   f"(this one has {self.scope})")

    def require_manager(self, what: str) -> None:
        """PermissionDenied for a scope that administers nothing (``send``)."""
        if not self.is_admin and self.domain is None:
            raise PermissionDenied(f"{what} needs an admin or domain token "
                                   f"(this one has {self.scope})")

    def require_domain(self, domain: str, what: str) -> None:
        """PermissionDenied unless the scope covers ``domain``."""
        if not self.may_manage(domain):
            raise PermissionDenied(f"{what} in {domain or '?'} is outside this token's scope "
                                   f"({self.scope})")

    def require_address(self, address: str, what: str) -> None:
        self.require_domain(domain_of(address), what)


def command_line() -> Actor:
    """The person at the command line, named by their Unix account."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return Actor(name=f"cli:{user}", source="local")
