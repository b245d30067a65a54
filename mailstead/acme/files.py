"""What the ACME client keeps in ``data_dir/acme``, one owner for the format.

- ``account.key``: the ACME account's private key (EC P-256, PEM, 0600). The account is
  found again from it (RFC 8555 §7.3.1), so nothing else about the account is stored.
- ``cert.pem`` and ``key.pem``: the certificate chain last issued and its private key
  (0600). Each is written to a temporary file, fsynced and renamed over the old one, the
  key first, so a crash leaves either the old pair or the new one.
- ``issuer``: the directory URL that issued ``cert.pem``, so that moving from Let's
  Encrypt staging to production gets a new certificate instead of keeping a staging one.
- ``challenges/``: the TLS-ALPN-01 certificate's files for the instant ``ssl`` loads them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailstead.net.tls import write_atomically

DIRECTORY = "acme"


@dataclass(frozen=True, slots=True)
class CurrentCertificate:
    """What the renewal decision needs to know of the certificate on disk."""

    names: frozenset[str]
    not_after: datetime.datetime
    issuer_directory: str


class ACMEFiles:
    """The files of ``data_dir/acme``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / DIRECTORY
        self.account_key = self.root / "account.key"
        self.cert = self.root / "cert.pem"
        self.key = self.root / "key.pem"
        self.issuer = self.root / "issuer"
        self.challenges = self.root / "challenges"

    def load_or_create_account_key(self) -> ec.EllipticCurvePrivateKey:
        """The account key, made on first use. A file that is there but unreadable is an
        error, never replaced: a new key would be a new account."""
        if self.account_key.exists():
            try:
                key = serialization.load_pem_private_key(
                    self.account_key.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as exc:
                raise ValueError(f"cannot load the ACME account key {self.account_key}: "
                                 f"{exc}") from exc
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"the ACME account key {self.account_key} is not an EC key")
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.account_key, private_pem(key), 0o600)
        return key

    def current(self) -> CurrentCertificate | None:
        """The certificate on disk, or None when there is none (or it cannot be read:
        then a new one is what is needed)."""
        try:
            chain = x509.load_pem_x509_certificates(self.cert.read_bytes())
            issuer = self.issuer.read_text().strip()
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not chain or not self.key.exists():
            return None
        return CurrentCertificate(certificate_names(chain[0]), chain[0].not_valid_after_utc,
                                  issuer)

    def save(self, chain_pem: bytes, key_pem: bytes, directory: str) -> None:
        """Replace the certificate and key, each atomically; the key first."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.key, key_pem, 0o600)
        write_atomically(self.cert, chain_pem, 0o600)
        write_atomically(self.issuer, directory.encode() + b"\n", 0o600)


def certificate_names(cert: x509.Certificate) -> frozenset[str]:
    """The DNS names of the certificate's subjectAltName, lower case."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(name.lower() for name in san.value.get_values_for_type(x509.DNSName))


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
