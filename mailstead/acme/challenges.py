"""The challenges being validated right now, and how mailstead's own listeners answer them.

An ACME server proves that we control a name by fetching something from it (RFC 8555 §8):

- **HTTP-01** (RFC 8555 §8.3): ``GET /.well-known/acme-challenge/{token}`` on port 80 must
  return the key authorization. The HTTP front end asks :meth:`PendingChallenges.http01`.
- **TLS-ALPN-01** (RFC 8737): a TLS handshake on port 443 with SNI set to the name and
  ALPN ``acme-tls/1`` must present a self-signed certificate for the name that carries the
  SHA-256 of the key authorization in a critical ``id-pe-acmeIdentifier`` extension. The
  listeners' TLS contexts ask :meth:`PendingChallenges.challenge_context` from their SNI
  callback (net/tls.py); decision 0012 says why that is the approach and what ordinary
  clients see meanwhile.

Entries are added by the ACME client in a worker thread and read on the event loop, so a
lock guards them. Each lives only from just before the challenge is answered until the
authorization is settled; the table is empty the rest of the time.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from mailstead.net.tls import new_server_context, self_signed_pem, write_atomically

#: RFC 8737 §6.1: id-pe-acmeIdentifier.
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
#: RFC 8737 §6.2: the ALPN protocol of the validation handshake.
ACME_TLS_ALPN = "acme-tls/1"
#: RFC 8555 §8.1: a token is base64url, at least 128 bits of entropy; we cap its length.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
_MAX_PENDING = 200  # one order covers at most 100 names ([acme] names)


class PendingChallenges:
    """What is being validated now: HTTP-01 tokens and TLS-ALPN-01 names."""

    def __init__(self, work_dir: Path) -> None:
        """``work_dir`` holds the challenge certificate's files for the instant ``ssl``
        needs them on disk (it loads certificates only from files)."""
        self._work_dir = work_dir
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}

    # -- the ACME client's side ------------------------------------------------------------

    def add_http01(self, token: str, key_authorization: str) -> None:
        if not TOKEN_RE.match(token):
            raise ValueError("the ACME server sent a malformed challenge token")
        with self._lock:
            self._check_room()
            self._tokens[token] = key_authorization

    def add_tls_alpn01(self, name: str, key_authorization: str) -> None:
        context = tls_alpn01_context(name, key_authorization, self._work_dir)
        with self._lock:
            self._check_room()
            self._contexts[name.lower()] = context

    def remove_http01(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def remove_tls_alpn01(self, name: str) -> None:
        with self._lock:
            self._contexts.pop(name.lower(), None)

    def _check_room(self) -> None:
        if len(self._tokens) + len(self._contexts) >= _MAX_PENDING:
            raise ValueError("too many challenges pending at once")

    # -- the listeners' side ---------------------------------------------------------------

    def http01(self, token: str) -> str | None:
        """The key authorization for ``token`` while its challenge is pending, else None."""
        with self._lock:
            return self._tokens.get(token)

    def challenge_context(self, server_name: str) -> ssl.SSLContext | None:
        """The TLS-ALPN-01 context for exactly ``server_name`` while it is pending."""
        with self._lock:
            if not self._contexts:
                return None
            return self._contexts.get(server_name.lower().rstrip("."))


def tls_alpn01_certificate(name: str, key_authorization: str) -> tuple[bytes, bytes]:
    """RFC 8737 §3: the self-signed validation certificate for ``name`` (PEM cert, key)."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    # The extension's value is the DER encoding of an OCTET STRING holding the digest.
    acme_identifier = bytes([0x04, len(digest)]) + digest
    return self_signed_pem(name, [x509.DNSName(name)], datetime.timedelta(days=7), [
        (x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, acme_identifier), True),
    ])


def tls_alpn01_context(name: str, key_authorization: str, work_dir: Path) -> ssl.SSLContext:
    """A server context presenting the validation certificate, offering only acme-tls/1
    (RFC 8737 §3: the validation handshake negotiates that protocol and nothing else)."""
    cert_pem, key_pem = tls_alpn01_certificate(name, key_authorization)
    context = new_server_context()
    context.set_alpn_protocols([ACME_TLS_ALPN])
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        write_atomically(key_path, key_pem, 0o600)
        write_atomically(cert_path, cert_pem, 0o600)
        context.load_cert_chain(cert_path, key_path)
    return context
