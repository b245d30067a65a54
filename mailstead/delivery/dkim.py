"""DKIM keys and signing (RFC 6376; Ed25519 per RFC 8463), with dkimpy.

Keys live in ``<data_dir>/dkim/<domain>/<selector>.<rsa|ed25519>.key``, created 0600 in a
0700 directory: the private key is the one secret that lets anyone send mail as the
domain. RSA keys are PKCS#1 PEM; Ed25519 keys are the base64 32-byte seed, the form
dkimpy reads. A domain may have several keys (RSA and Ed25519 side by side, as RFC 8463
§5 suggests); mail is signed with each.

Signing is relaxed/relaxed (RFC 6376 §3.4.2, §3.4.4: survives the header refolding and
whitespace changes of relays) over a fixed list of the headers that matter to a reader;
``From`` is signed once more than it occurs ("oversigned", RFC 6376 §8.15) so nobody can
add a second From after signing.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailstead.core.errors import AlreadyExists, InvalidName
from mailstead.delivery.dns import HOST_NAME
from mailstead.mime.rfc822 import parse_addresses

log = logging.getLogger("mailstead.dkim")

ALGORITHMS = ("rsa2048", "ed25519")
_SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

#: Headers signed when present (RFC 6376 §5.4.1's recommendations).
SIGNED_HEADERS = (
    b"from", b"reply-to", b"subject", b"date", b"to", b"cc", b"message-id", b"in-reply-to",
    b"references", b"mime-version", b"content-type", b"content-transfer-encoding",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
)


@dataclass(frozen=True, slots=True)
class DKIMKey:
    domain: str
    selector: str
    algorithm: str  # rsa2048 or ed25519
    private: bytes  # what dkim.sign wants: PEM, or the base64 Ed25519 seed
    public: bytes  # the p= value: base64 SubjectPublicKeyInfo (RSA) or raw key (Ed25519)
    path: Path

    @property
    def signature_algorithm(self) -> bytes:
        return b"ed25519-sha256" if self.algorithm == "ed25519" else b"rsa-sha256"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def txt_value(self) -> str:
        """The TXT record's text (RFC 6376 §3.6.1; k=ed25519 per RFC 8463 §4)."""
        kind = "ed25519" if self.algorithm == "ed25519" else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public.decode()}"

    def zone_line(self) -> str:
        """The record as a zone-file line, split into <=255-octet strings (RFC 1035)."""
        value = self.txt_value
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
        quoted = " ".join(f'"{c}"' for c in chunks)
        return f"{self.record_name}. IN TXT ( {quoted} )"


def dkim_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "dkim"


def _validate(domain: str, selector: str) -> tuple[str, str]:
    domain = domain.strip().lower().rstrip(".")
    if not HOST_NAME.match(domain):
        raise InvalidName(f"not a domain name: {domain!r}")
    if not _SELECTOR.match(selector):
        raise InvalidName(f"not a DKIM selector (letters, digits, hyphens): {selector!r}")
    return domain, selector


def _public_of(algorithm: str, private: bytes) -> bytes:
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(private))
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return base64.b64encode(raw)
    loaded = serialization.load_pem_private_key(private, password=None)
    der = loaded.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der)


def generate_key(data_dir: Path, domain: str, selector: str = "mail",
                 algorithm: str = "rsa2048") -> DKIMKey:
    """Create and store a key; refuses to overwrite one (the DNS may already publish it)."""
    domain, selector = _validate(domain, selector)
    if algorithm not in ALGORITHMS:
        raise InvalidName(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    kind = "ed25519" if algorithm == "ed25519" else "rsa"
    directory = dkim_dir(data_dir) / domain
    path = directory / f"{selector}.{kind}.key"
    if any(directory.glob(f"{selector}.*.key")):
        raise AlreadyExists(f"a DKIM key for selector {selector} of {domain} already exists "
                            f"in {directory}")
    if algorithm == "ed25519":
        seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
        private = base64.b64encode(seed) + b"\n"
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
    for parent in (dkim_dir(data_dir), directory):
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, private)
        os.fsync(fd)
    finally:
        os.close(fd)
    return DKIMKey(domain, selector, algorithm, private.strip(),
                   _public_of(algorithm, private.strip()), path)


def load_keys(data_dir: Path) -> dict[str, list[DKIMKey]]:
    """Every key under ``data_dir/dkim``, by domain; unreadable ones are logged, skipped."""
    keys: dict[str, list[DKIMKey]] = {}
    root = dkim_dir(data_dir)
    if not root.is_dir():
        return keys
    for path in sorted(root.glob("*/*.key")):
        domain = path.parent.name
        selector, _, kind = path.name.removesuffix(".key").rpartition(".")
        algorithm = "ed25519" if kind == "ed25519" else "rsa2048"
        try:
            private = path.read_bytes().strip()
            key = DKIMKey(domain, selector, algorithm, private,
                          _public_of(algorithm, private), path)
        except (OSError, ValueError) as exc:
            log.error("DKIM key %s is unusable: %s", path, exc)
            continue
        keys.setdefault(domain, []).append(key)
    return keys


def sign_message(raw: bytes, key: DKIMKey) -> bytes:
    """The ``DKIM-Signature:`` header (CRLF-terminated) to prepend to ``raw``."""
    present = {line.split(b":", 1)[0].strip().lower()
               for line in _header_lines(raw) if b":" in line}
    headers = [h for h in SIGNED_HEADERS if h in present]
    headers.append(b"from")  # oversign: a From added later breaks the signature
    signature: bytes = dkim.sign(
        raw, key.selector.encode(), key.domain.encode(), key.private,
        canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=key.signature_algorithm,
        include_headers=headers, linesep=b"\r\n",
    )
    return signature


def _header_lines(raw: bytes) -> list[bytes]:
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[:end]
    return [line for line in head.split(b"\r\n") if line and line[:1] not in b" \t"]


_MISSING = {"MISSING_MAILBOX", "MISSING_DOMAIN"}  # what the parser fills in for absent parts


def header_from(raw: bytes) -> list[tuple[str, str]]:
    """The (local part, lower-case domain) of each address in the From header.

    Parsed by the RFC 5322 address parser, not searched for an ``@``: in
    ``"alice@example.test" <boss@other.test>`` the address is boss@other.test, and a
    pattern match once signed that as example.test. Folded lines are unfolded first; a
    message with no From, or more than one From field, has none (RFC 5322 §3.6 allows one).
    """
    end = raw.find(b"\r\n\r\n")
    head = (raw if end < 0 else raw[:end + 2]).decode("utf-8", "replace")
    fields = [f for f in re.split(r"\r\n(?![ \t])", head) if f]
    values = [f.partition(":")[2] for f in fields
              if f.partition(":")[0].strip().lower() == "from"]
    if len(values) != 1:
        return []
    found: list[tuple[str, str]] = []
    for address in parse_addresses(re.sub(r"\r\n(?=[ \t])", "", values[0])):
        if address.mailbox and address.host and not {address.mailbox, address.host} & _MISSING:
            found.append((address.mailbox, address.host.lower().rstrip(".")))
    return found


class Signer:
    """Signs with the keys of ``data_dir/dkim``; loaded once, :meth:`reload` on SIGHUP."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.keys = load_keys(self.data_dir)

    def reload(self) -> None:
        self.keys = load_keys(self.data_dir)

    def has_key(self, domain: str) -> bool:
        return domain.lower() in self.keys

    def sign(self, raw: bytes, domain: str) -> bytes:
        """Signatures of ``raw`` with every key of ``domain`` (the caller decides which
        domain the sender may use); b"" when it has none. Signing never blocks mail:
        failures are logged, nothing added."""
        out = b""
        for key in self.keys.get(domain.lower(), []):
            try:
                out += sign_message(raw, key)
            except Exception as exc:  # dkimpy raises its own types, and ValueError
                log.error("DKIM signing for %s (selector %s) failed: %s",
                          key.domain, key.selector, exc)
        return out
