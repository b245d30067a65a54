"""VAPID (RFC 8292) for JMAP Web Push (RFC 9749): who the pushes come from.

Push services (the browser vendors' among them) accept pushes for a subscription made with
an application server key only when each carries ``Authorization: vapid t=<JWT>,
k=<key>``, the JWT signed with that key. The key pair is the server's, made once and kept
in the data directory; the session announces the public half as ``applicationServerKey``
in the ``urn:ietf:params:jmap:webpush-vapid`` capability (RFC 9749 §3) so a client gives it
to its push service when it subscribes.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

#: RFC 9749 §3: the capability that carries the application server key.
WEBPUSH_VAPID = "urn:ietf:params:jmap:webpush-vapid"
#: RFC 8292 §2: ``exp`` no more than 24 hours ahead; 12 leaves room for clock skew.
LIFETIME = timedelta(hours=12)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class VapidKey:
    """The server's P-256 key pair for VAPID and the contact it names (``sub``)."""

    def __init__(self, private: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self.private = private
        self.subject = subject
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        #: RFC 8292 §3.2: the uncompressed point, base64url without padding.
        self.application_server_key = _b64url(public)

    @classmethod
    def load_or_create(cls, path: Path, subject: str) -> VapidKey:
        """The key in ``path`` (PEM), made there first if there is none: written to a temp
        file readable by the owner only and renamed into place."""
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path} does not hold a P-256 key")
            return cls(loaded, subject)
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temp = path.with_name(path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
        return cls(private, subject)

    def authorization(self, url: str, now: datetime) -> str:
        """The ``Authorization`` header of a push to ``url`` (RFC 8292 §3): a JWT for the
        push service's origin, signed ES256 (RFC 7518 §3.4: r and s, 32 octets each)."""
        parts = urlsplit(url)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int((now + LIFETIME).timestamp()),
            "sub": self.subject,
        }
        header = {"typ": "JWT", "alg": "ES256"}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"vapid t={signing_input}.{_b64url(signature)}, k={self.application_server_key}"
