"""ACME against a real ACME server: Pebble on loopback, validating against mailstead's own
http and https listeners through a test DNS server that resolves the names to 127.0.0.1.

Each test proves what a user relies on: a certificate is issued with HTTP-01 and with
TLS-ALPN-01; one close to expiry is replaced, and new IMAPS and HTTPS connections present
the new one without a restart; when the ACME server is unreachable or a challenge fails,
the failure is logged and retried and the old certificate keeps serving.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailstead.acme.renewal import CertificateKeeper
from mailstead.core import metrics
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.pebble import PebbleServer, pebble_binary
from mailstead.testing.server import ServerThread, free_port
from mailstead.testing.waiting import poll_until

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(pebble_binary() is None,
                       reason="pebble is not installed (Debian package pebble)"),
]

NAME = "mail.acme-test.example"
TEN_DAYS = 10 * 86400


@dataclass
class Lab:
    """Ports, DNS and a work directory for one test: Pebble, then mailstead."""

    tmp_path: Path
    dns: TestDNSServer
    http_port: int
    https_port: int

    def pebble(self, **options: Any) -> PebbleServer:
        return PebbleServer(self.tmp_path / "pebble", http_port=self.http_port,
                            tls_port=self.https_port, dns_port=self.dns.port, **options)

    def server(self, directory: str, ca_bundle: Path | None, *, http: bool = True,
               **acme: Any) -> ServerThread:
        if ca_bundle is not None:
            acme["ca_bundle"] = str(ca_bundle)
        config = {
            "hostname": NAME,
            "listeners": {"http": {"port": self.http_port, "enabled": http},
                          "https": {"port": self.https_port}},
            "acme": {"enabled": True, "directory": directory,
                     "contact": "postmaster@acme-test.example", **acme},
        }
        return ServerThread(self.tmp_path, config)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with TestDNSServer() as dns:
        dns.add(NAME, "A", "127.0.0.1")
        yield Lab(tmp_path, dns, free_port(), free_port())


def served_certificate(port: int) -> x509.Certificate:
    """The certificate a new TLS connection with SNI ``NAME`` is given (unverified)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=NAME) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def verified_by_pebble(pebble: PebbleServer, port: int) -> x509.Certificate:
    """Connect as a real client that trusts only Pebble's root, checking the name; return
    the certificate. Fails unless the listener serves the Pebble-issued one for NAME."""
    roots = b"".join(c.public_bytes(serialization.Encoding.PEM)
                     for c in pebble.root_certificates())
    context = ssl.create_default_context(cadata=roots.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=NAME) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def wait_for_pebble_certificate(pebble: PebbleServer, server: ServerThread,
                                listener: str = "imaps") -> x509.Certificate:
    def check() -> x509.Certificate | None:
        try:
            return verified_by_pebble(pebble, server.port(listener))
        except ssl.SSLCertVerificationError:
            return None

    return poll_until(check, timeout=60, failure=lambda: "no Pebble certificate served; "
                      f"pebble log:\n{pebble.log()[-3000:]}")


def keeper(server: ServerThread) -> CertificateKeeper:
    """The running server's ACME renewal object; its check() is what the timer runs."""
    found = server.services.acme
    assert found is not None, "[acme] is on, so the server has a keeper"
    return found


def acme_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mailstead.acme"]


def test_http01_issues_a_certificate_served_on_every_tls_listener(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailstead.acme")
    with lab.pebble() as pebble, \
            lab.server(pebble.directory, pebble.ca_bundle, challenges=["http-01"]) as server:
        cert = wait_for_pebble_certificate(pebble, server)
        assert NAME in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        for listener in ("https", "pop3s", "submissions"):
            assert verified_by_pebble(pebble, server.port(listener)).serial_number == \
                cert.serial_number
        # IMAP's STARTTLS too: the same contexts serve the upgrade.
        import imaplib

        roots = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                        for c in pebble.root_certificates())
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        try:
            context = ssl.create_default_context(cadata=roots)
            context.check_hostname = False  # imaplib sends 127.0.0.1 as the name
            imap.starttls(context)
            peer = imap.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            assert x509.load_der_x509_certificate(peer).serial_number == cert.serial_number
        finally:
            imap.logout()

        acme_dir = server.data_dir / "acme"
        for name in ("account.key", "cert.pem", "key.pem"):
            assert (acme_dir / name).stat().st_mode & 0o777 == 0o600, name
        # A valid certificate far from expiry (Pebble's default: years) is left alone.
        assert server.call(keeper(server).check()) == "current"
        # The challenge route answers only pending tokens.
        missing = httpx.get(f"http://127.0.0.1:{server.port('http')}"
                            "/.well-known/acme-challenge/AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    messages = [r.getMessage() for r in acme_records(caplog)]
    assert any("installed a new certificate" in m for m in messages), messages
    assert not any(r.exc_info for r in acme_records(caplog))


def test_tls_alpn01_issues_a_certificate_with_no_http_listener(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    # No http listener at all: only the TLS-ALPN-01 answer on https can validate.
    with lab.pebble() as pebble, lab.server(pebble.directory, pebble.ca_bundle, http=False,
                                            challenges=["tls-alpn-01"]) as server:
        cert = wait_for_pebble_certificate(pebble, server, "https")
        assert verified_by_pebble(pebble, server.port("imaps")).serial_number == \
            cert.serial_number
        # After validation the challenge certificate is gone: an acme-tls/1 handshake
        # for NAME gets the ordinary certificate again.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["acme-tls/1"])
        with socket.create_connection(("127.0.0.1", server.port("https")), 10) as raw, \
                context.wrap_socket(raw, server_hostname=NAME) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert x509.load_der_x509_certificate(der).serial_number == cert.serial_number


def test_a_certificate_close_to_expiry_is_replaced_without_a_restart(lab: Lab) -> None:
    # Pebble's certificates last ten days here, inside renew_before_days: each check renews.
    with lab.pebble(validity_seconds=TEN_DAYS) as pebble, \
            lab.server(pebble.directory, pebble.ca_bundle, renew_before_days=30) as server:
        first = wait_for_pebble_certificate(pebble, server)
        before = server.call(keeper(server).check())
        assert before == "issued"
        renewed_imaps = verified_by_pebble(pebble, server.port("imaps"))
        renewed_https = verified_by_pebble(pebble, server.port("https"))
        assert renewed_imaps.serial_number != first.serial_number
        assert renewed_https.serial_number == renewed_imaps.serial_number
        on_disk = x509.load_pem_x509_certificates((server.data_dir / "acme" / "cert.pem")
                                                  .read_bytes())[0]
        assert on_disk.serial_number == renewed_imaps.serial_number
        expiry = metrics.REGISTRY.get_sample_value(
            "mailstead_certificate_expiry_timestamp_seconds")
        assert expiry == renewed_imaps.not_valid_after_utc.timestamp()


def test_a_failing_challenge_keeps_the_old_certificate_and_is_retried(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailstead.acme")
    with lab.pebble(validity_seconds=TEN_DAYS) as pebble, \
            lab.server(pebble.directory, pebble.ca_bundle, challenges=["http-01"]) as server:
        first = wait_for_pebble_certificate(pebble, server)
        failures = metrics.REGISTRY.get_sample_value("mailstead_acme_failures_total") or 0
        lab.dns.break_name(NAME)  # Pebble's lookup of the name fails: validation fails
        assert server.call(keeper(server).check()) == "failed"
        assert verified_by_pebble(pebble, server.port("imaps")).serial_number == \
            first.serial_number
        assert metrics.REGISTRY.get_sample_value("mailstead_acme_failures_total") == \
            failures + 1
        failed = [r for r in acme_records(caplog) if r.levelno == logging.ERROR]
        assert len(failed) == 1 and NAME in failed[0].getMessage()
        assert "validation failed" in failed[0].getMessage()
        assert "\n" not in failed[0].getMessage() and not failed[0].exc_info
        # Once the name resolves again the next attempt succeeds.
        lab.dns.break_name(NAME, broken=False)
        assert server.call(keeper(server).check()) == "issued"
        assert verified_by_pebble(pebble, server.port("imaps")).serial_number != \
            first.serial_number


def test_an_unreachable_acme_server_is_retried_with_backoff(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailstead.acme")
    nowhere = f"https://127.0.0.1:{free_port()}/dir"  # nothing listens there
    with lab.server(nowhere, None, retry_seconds=1) as server:
        self_signed = served_certificate(server.port("imaps"))

        def failures() -> list[str] | None:
            lines = [r.getMessage() for r in acme_records(caplog)
                     if r.levelno == logging.ERROR]
            return lines if len(lines) >= 2 else None

        lines = poll_until(failures, timeout=30, failure=lambda: "no retry was logged")
        assert "cannot reach the ACME server" in lines[0] and "attempt 1" in lines[0]
        assert "retrying in 1s" in lines[0]
        assert "attempt 2" in lines[1] and "retrying in 2s" in lines[1]  # backing off
        assert served_certificate(server.port("imaps")) == self_signed
        assert not any(r.exc_info for r in acme_records(caplog))
