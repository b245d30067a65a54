"""API tokens: how they look, how they are checked, and what is stored of them.

A token reads ``mst_<id>_<secret>``: the id finds the row in one indexed read, the secret
(32 random octets, base64url) proves possession. Only SHA-256 of the secret is stored. A
slow password hash (argon2) protects guessable secrets; a 256-bit random one cannot be
guessed, and a fast hash keeps every API request from costing 20 MiB and tens of
milliseconds (decision 0016). Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from mailstead.store.models import ApiToken

PREFIX = "mst_"
_SECRET_OCTETS = 32
#: Longest token text worth parsing: the prefix, a 19-digit id, the separator, the secret.
MAX_TOKEN_LENGTH = 100


def new_secret() -> str:
    return secrets.token_urlsafe(_SECRET_OCTETS)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_text(token_id: int, secret: str) -> str:
    """What the admin is shown, once, and the client sends as ``Authorization: Bearer``."""
    return f"{PREFIX}{token_id}_{secret}"


@dataclass(frozen=True, slots=True)
class PresentedToken:
    """A token as a client sent it, parsed but not yet checked."""

    token_id: int
    secret: str


def parse_token(text: str) -> PresentedToken | None:
    """None for anything that is not shaped like a token (it then fails as a wrong one)."""
    if len(text) > MAX_TOKEN_LENGTH or not text.startswith(PREFIX):
        return None
    id_text, sep, secret = text[len(PREFIX):].partition("_")
    if not sep or not id_text.isdigit() or not secret or len(id_text) > 19:
        return None
    return PresentedToken(int(id_text), secret)


def matches(token: ApiToken, presented: PresentedToken) -> bool:
    """The stored token is live and the secret is its secret."""
    if token.revoked is not None or token.id != presented.token_id:
        return False
    return hmac.compare_digest(token.secret_hash, secret_hash(presented.secret))


def throttle_account(text: str, source: str) -> str:
    """The login throttle's account for a presented token: the token it names, so wrong
    secrets for one token slow down guessing that token without locking out the others
    (the address's own counter still applies); an unparsable token counts against the
    address alone."""
    presented = parse_token(text)
    return f"api-token:{presented.token_id}" if presented else f"api-token:?{source}"
