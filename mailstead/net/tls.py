"""TLS contexts shared by every listener: self-signed certificate on first start, SIGHUP reload.

Listeners never hold an ``ssl.SSLContext`` of their own. They ask :class:`TLSContexts` for
``server_context`` each time a connection starts TLS (implicit TLS or STARTTLS), so a reload
takes effect for the next handshake without restarting any listener, and sessions already
running keep the certificate they negotiated. A reload may also name other files (SIGHUP
after the configuration changed, a certificate the ACME client just wrote).

While an ACME TLS-ALPN-01 challenge is pending, a handshake whose SNI names exactly the
name being validated is switched to the challenge's context (RFC 8737; decision 0012):
the object passed as ``challenges`` says which, if any.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailstead.core import metrics
from mailstead.core.errors import ConfigError
from mailstead.net.channel_binding import register_certificate

# Mozilla "intermediate" TLS 1.2 suites (forward secrecy + AEAD only). TLS 1.3 suites are
# fixed by OpenSSL and all acceptable.
_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
_VALIDITY = datetime.timedelta(days=730)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write via temp file + fsync + rename so a crash never leaves a half-written key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # before any byte of the key is written
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def self_signed_pem(name: str, names: Sequence[x509.GeneralName],
                    validity: datetime.timedelta,
                    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
                    ) -> tuple[bytes, bytes]:
    """A self-signed EC P-256 certificate for ``name`` (the subject's common name) with
    ``names`` as its subjectAltName and ``extensions`` (value, critical) besides:
    ``(certificate PEM, private key PEM)``. Valid from five minutes ago, to tolerate a
    little clock skew on the other side."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_self_signed(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """Create a self-signed EC P-256 certificate if either file is missing.

    Gives a fresh install working TLS (STARTTLS and implicit TLS) with zero set-up; operators
    replace the files with a real certificate later and send SIGHUP. Returns True if created.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    if cert_path.exists() and key_path.exists():
        return False
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname == "localhost":
        names += [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    cert_pem, key_pem = self_signed_pem(hostname, names, _VALIDITY, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ])
    # Key first: a certificate without its key is useless, the reverse is harmless.
    write_atomically(key_path, key_pem, 0o600)
    write_atomically(cert_path, cert_pem, 0o644)
    return True


class ChallengeCertificates(Protocol):
    """Who answers TLS-ALPN-01 (the ACME client, through the composition root)."""

    def challenge_context(self, server_name: str) -> ssl.SSLContext | None:
        """The context that presents the challenge certificate for ``server_name``, while
        a challenge for exactly that name is pending; None otherwise (the usual case)."""
        ...


def new_server_context() -> ssl.SSLContext:
    """A server context with mailstead's protocol versions, ciphers and options."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    # No compression (CRIME), no renegotiation (client-initiated DoS), fresh ECDH keys.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context


def _build_server_context(
    cert_path: Path, key_path: Path
) -> tuple[ssl.SSLContext, datetime.datetime]:
    """Load and validate both files, naming the one at fault in the ConfigError; the
    context and when the certificate (the first of the chain) expires."""
    try:
        cert_pem = cert_path.read_bytes()
        chain = x509.load_pem_x509_certificates(cert_pem)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load TLS certificate: {exc}", file=str(cert_path)) from exc
    if not chain:
        raise ConfigError("cannot load TLS certificate: no certificate in the file",
                          file=str(cert_path))
    try:
        serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load TLS private key: {exc}", file=str(key_path)) from exc

    context = new_server_context()
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"TLS private key does not match certificate {cert_path}: {exc}", file=str(key_path)
        ) from exc
    register_certificate(context, chain[0])  # for SCRAM-SHA-256-PLUS (decision 0026)
    return context, chain[0].not_valid_after_utc


class TLSContexts:
    """Holds the current server context; :meth:`reload` swaps it atomically."""

    def __init__(
        self, cert_path: Path, key_path: Path, *, challenges: ChallengeCertificates | None = None
    ) -> None:
        self.cert_path = Path(cert_path)
        self.key_path = Path(key_path)
        self._challenges = challenges
        self._server_context, self.expires = self._build(self.cert_path, self.key_path)

    @property
    def server_context(self) -> ssl.SSLContext:
        """The context to use for a handshake starting now (read it per connection)."""
        return self._server_context

    def reload(self, cert_path: Path | None = None, key_path: Path | None = None) -> bool:
        """Re-read the files (SIGHUP), or switch to other files. On error keep serving the
        old certificate, from the old files, and raise ConfigError naming the file at
        fault. Returns whether the files served changed."""
        cert = Path(cert_path) if cert_path is not None else self.cert_path
        key = Path(key_path) if key_path is not None else self.key_path
        self._server_context, self.expires = self._build(cert, key)
        changed = (cert, key) != (self.cert_path, self.key_path)
        self.cert_path, self.key_path = cert, key
        return changed

    def _build(self, cert_path: Path, key_path: Path) -> tuple[ssl.SSLContext, datetime.datetime]:
        context, expires = _build_server_context(cert_path, key_path)
        if self._challenges is not None:
            context.sni_callback = self._answer_challenge
        metrics.CERTIFICATE_EXPIRY.set(expires.timestamp())
        return context, expires

    def _answer_challenge(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
        context: ssl.SSLContext,
    ) -> None:
        # RFC 8737 §3: the validation handshake names the identifier in SNI. Everything
        # else (no SNI, any other name, no pending challenge) keeps the usual context.
        if server_name is None or self._challenges is None:
            return
        challenge = self._challenges.challenge_context(server_name)
        if challenge is not None:
            connection.context = challenge


def describe_tls(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """``"TLSv1.3 TLS_AES_256_GCM_SHA384"`` for Received: headers and logs; "" without TLS."""
    if ssl_object is None:
        return ""
    version = ssl_object.version() or "TLS"
    cipher = ssl_object.cipher()
    return f"{version} {cipher[0]}" if cipher else version
