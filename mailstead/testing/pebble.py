"""Pebble, Let's Encrypt's small ACME test server, run on loopback for tests.

Pebble (Debian's ``pebble`` package) is a real RFC 8555 server: it validates HTTP-01 and
TLS-ALPN-01 challenges by connecting to the ports it is configured with (``httpPort``,
``tlsPort``: mailstead's ``http`` and ``https`` listeners here), after resolving the names
through the DNS server given with ``-dnsserver`` (:class:`~mailstead.testing.dns.TestDNSServer`).
It serves its own API over HTTPS with a certificate we make here for 127.0.0.1, so the
client must trust :attr:`PebbleServer.ca_bundle` (``[acme] ca_bundle``).

Environment (Pebble's README): ``PEBBLE_VA_NOSLEEP=1`` validates at once instead of after a
random pause; ``PEBBLE_VA_ALWAYS_VALID=0`` really validates; ``PEBBLE_WFE_NONCEREJECT=0``
turns off the random bad-nonce answers; ``PEBBLE_AUTHZREUSE=0`` makes every order prove
control again instead of reusing an earlier authorization.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailstead.testing.server import free_port
from mailstead.testing.waiting import poll_until


def pebble_binary() -> str | None:
    return shutil.which("pebble") or (
        "/usr/bin/pebble" if Path("/usr/bin/pebble").is_file() else None)


class PebbleServer:
    """``pebble`` in a child process; use as a context manager."""

    def __init__(
        self, work_dir: Path, *, http_port: int, tls_port: int, dns_port: int,
        validity_seconds: int | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.management_port = free_port()
        self.http_port = http_port
        self.tls_port = tls_port
        self.dns_port = dns_port
        self.validity_seconds = validity_seconds
        self.ca_bundle = work_dir / "pebble-ca.pem"
        self.log_path = work_dir / "pebble.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> PebbleServer:
        binary = pebble_binary()
        if binary is None:
            raise RuntimeError("pebble is not installed")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cert, key = self._make_api_certificate()
        settings: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity_seconds is not None:
            settings["certificateValidityPeriod"] = self.validity_seconds
        config = self.work_dir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": settings}))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_VA_ALWAYS_VALID="0",
                   PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-config", str(config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work_dir,
            )
        poll_until(self._accepting, timeout=30,
                   failure=lambda: f"pebble did not start:\n{self.log()}")
        return self

    def _accepting(self) -> bool | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"pebble exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return None

    def root_certificates(self) -> list[x509.Certificate]:
        """The roots Pebble signs with (new at every start), from its management API."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management_port}/roots/0",
                                    context=context, timeout=10) as answer:
            return x509.load_pem_x509_certificates(answer.read())

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> PebbleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_api_certificate(self) -> tuple[Path, Path]:
        """A CA (written to :attr:`ca_bundle`) and a certificate for 127.0.0.1 it signed."""
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailstead test CA")])
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            ]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_path, key_path = self.work_dir / "pebble-api.pem", self.work_dir / "pebble-api.key"
        cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return cert_path, key_path
