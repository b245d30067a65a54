"""SIGHUP re-reads the configuration file's [tls] paths: an admin who points them at new
files and sends `kill -HUP` gets the new certificate without a restart; a bad new path or
a mismatched pair leaves the old one serving and logs one line naming the key and file."""

from __future__ import annotations

import signal
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from mailstead.net.tls import ensure_self_signed
from mailstead.testing.server import SubprocessServer
from mailstead.testing.waiting import poll_until

pytestmark = pytest.mark.slow


def served_certificate(port: int) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def point_config_at(server: SubprocessServer, cert: Path, key: Path) -> None:
    """Edit the server's configuration file as an admin would: only [tls] changes."""
    tls = server.settings.tls.model_copy(update={"cert": cert, "key": key})
    server.config_path.write_text(server.settings.model_copy(update={"tls": tls})
                                  .effective_toml())


def hup_and_wait_for_log(server: SubprocessServer, text: str) -> str:
    """Send SIGHUP, then wait for the log line containing ``text``; return it."""
    seen = server.log().count(text)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)

    def line() -> str | None:
        lines = [ln for ln in server.log().splitlines() if text in ln]
        return lines[-1] if len(lines) > seen else None

    return poll_until(line, timeout=15, failure=lambda: f"no {text!r} in:\n{server.log()}")


def test_sighup_follows_new_paths_and_keeps_the_old_certificate_on_errors(
    tmp_path: Path,
) -> None:
    new_cert, new_key = tmp_path / "new" / "cert.pem", tmp_path / "new" / "key.pem"
    ensure_self_signed(new_cert, new_key, "mail.example.org")
    other_cert, other_key = tmp_path / "other" / "cert.pem", tmp_path / "other" / "key.pem"
    ensure_self_signed(other_cert, other_key, "other.example.org")

    with SubprocessServer(tmp_path) as server:
        port = server.port("imaps")
        first = served_certificate(port)

        # New paths in the file, then SIGHUP: the next handshake has the new certificate.
        point_config_at(server, new_cert, new_key)
        hup_and_wait_for_log(server, "TLS certificate reloaded from")
        renewed = served_certificate(port)
        assert renewed != first
        assert renewed.subject.rfc4514_string() == "CN=mail.example.org"
        assert served_certificate(server.port("https")) == renewed

        # A mismatched pair: refused, named, the certificate in use stays.
        point_config_at(server, new_cert, other_key)
        line = hup_and_wait_for_log(server, "reload failed")
        assert f"{other_key}: tls.key:" in line and "does not match" in line
        assert "kept" in line
        assert served_certificate(port) == renewed

        # A path that does not exist: refused, named, the certificate in use stays.
        missing = tmp_path / "missing.pem"
        point_config_at(server, missing, new_key)
        line = hup_and_wait_for_log(server, "reload failed")
        assert "tls.cert" in line and str(missing) in line
        assert served_certificate(port) == renewed

        # A configuration file that no longer parses: named, the certificate in use stays.
        server.config_path.write_text("[tls\n")
        line = hup_and_wait_for_log(server, "reload failed")
        assert str(server.config_path) in line and "invalid TOML" in line
        assert served_certificate(port) == renewed

        assert server.proc is not None and server.proc.poll() is None
        server.terminate()
        assert server.wait() == 0
    assert "Traceback" not in server.log()
