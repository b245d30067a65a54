"""The pure parts of ACME: when to renew, how long to back off, the TLS-ALPN-01 certificate
and that the SNI switch happens only for the pending name (over a real TLS handshake)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from mailstead.acme.challenges import ACME_IDENTIFIER_OID, PendingChallenges
from mailstead.acme.files import ACMEFiles, CurrentCertificate
from mailstead.acme.renewal import CertificateKeeper, renewal_reason
from mailstead.config.schema import ACMESettings
from mailstead.net.tls import TLSContexts, ensure_self_signed

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DIRECTORY = "https://ca.example/dir"
MONTH = timedelta(days=30)


def current(days_left: float, names: tuple[str, ...] = ("mail.example.org",),
            directory: str = DIRECTORY) -> CurrentCertificate:
    return CurrentCertificate(frozenset(names), NOW + timedelta(days=days_left), directory)


def test_renewal_reasons() -> None:
    names = ["mail.example.org"]
    assert renewal_reason(None, names, DIRECTORY, NOW, MONTH) == "no certificate yet"
    assert renewal_reason(current(60), names, DIRECTORY, NOW, MONTH) is None
    assert "expires" in (renewal_reason(current(29), names, DIRECTORY, NOW, MONTH) or "")
    assert "expires" in (renewal_reason(current(-1), names, DIRECTORY, NOW, MONTH) or "")
    missing = renewal_reason(current(60), [*names, "mta-sts.example.org"], DIRECTORY, NOW,
                             MONTH)
    assert missing == "the certificate does not cover mta-sts.example.org"
    staging = renewal_reason(current(60, directory="https://staging.example/dir"), names,
                             DIRECTORY, NOW, MONTH)
    assert staging is not None and "staging.example" in staging


def test_backoff_doubles_up_to_the_check_interval(tmp_path: Path) -> None:
    ensure_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "localhost")
    settings = ACMESettings(retry_seconds=60, check_interval_seconds=600)
    keeper = CertificateKeeper(settings, ["mail.example.org"], ACMEFiles(tmp_path),
                               TLSContexts(tmp_path / "c.pem", tmp_path / "k.pem"),
                               PendingChallenges(tmp_path / "ch"))
    delays = []
    for failures in range(6):
        keeper.failures = failures
        delays.append(keeper.retry_delay())
    assert delays == [600, 60, 120, 240, 480, 600]


async def _handshake(port: int, server_name: str, alpn: list[str] | None
                     ) -> tuple[x509.Certificate, str | None]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                    server_hostname=server_name)
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    protocol = ssl_object.selected_alpn_protocol()
    writer.close()
    await writer.wait_closed()
    return x509.load_der_x509_certificate(der), protocol


async def test_the_challenge_certificate_is_served_only_for_the_pending_name(
    tmp_path: Path,
) -> None:
    ensure_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "mail.example.org")
    pending = PendingChallenges(tmp_path / "challenges")
    contexts = TLSContexts(tmp_path / "c.pem", tmp_path / "k.pem", challenges=pending)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0,
                                        ssl=contexts.server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        usual, _ = await _handshake(port, "mail.example.org", ["acme-tls/1"])
        pending.add_tls_alpn01("mail.example.org", "token.thumbprint")

        challenge, protocol = await _handshake(port, "MAIL.example.org", ["acme-tls/1"])
        assert protocol == "acme-tls/1"  # RFC 8737 §3: negotiated, and only it
        extension = challenge.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
        assert extension.critical
        digest = hashlib.sha256(b"token.thumbprint").digest()
        assert extension.value.public_bytes() == b"\x04\x20" + digest
        assert challenge.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == \
            ["mail.example.org"]

        other, _ = await _handshake(port, "other.example.org", ["acme-tls/1"])
        assert other == usual  # another name is not switched

        pending.remove_tls_alpn01("mail.example.org")
        after, _ = await _handshake(port, "mail.example.org", ["acme-tls/1"])
        assert after == usual
    finally:
        server.close()
        await server.wait_closed()
    assert not list((tmp_path / "challenges").iterdir())  # its key files did not linger


def test_http01_tokens_are_checked_and_removed(tmp_path: Path) -> None:
    pending = PendingChallenges(tmp_path)
    token = "A" * 43
    pending.add_http01(token, f"{token}.thumb")
    assert pending.http01(token) == f"{token}.thumb"
    assert pending.http01("B" * 43) is None
    pending.remove_http01(token)
    assert pending.http01(token) is None
    for bad in ("short", "../../etc/passwd" + "A" * 30, "A" * 200):
        try:
            pending.add_http01(bad, "x")
        except ValueError:
            continue
        raise AssertionError(f"token {bad!r} was accepted")
