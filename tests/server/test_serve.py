"""`mailstead serve` as a user runs it: first start, restart, SIGTERM, bad configuration."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import ServerThread, SubprocessServer
from mailstead.testing.waiting import poll_until


def test_server_thread_runs_the_real_wiring(tmp_path: Path) -> None:
    with ServerThread(tmp_path) as server:
        user = server.add_user("alice@example.org", "secret")
        found = server.call(server.store.find_user("ALICE@example.org"))
        assert found is not None and found.id == user.id
        assert server.cert_path.is_file()
        assert server.client_ssl_context().verify_mode.name == "CERT_REQUIRED"


@pytest.mark.slow
def test_first_start_creates_postmaster_and_prints_table_once(tmp_path: Path) -> None:
    server = SubprocessServer(tmp_path).start()
    try:
        server.terminate()
        assert server.wait(timeout=15) == 0  # SIGTERM: drain and exit 0, not hang
    finally:
        server.kill()
    table = server.first_run_path.read_text()
    assert "postmaster@localhost" in table
    for protocol in ("IMAP", "POP3", "SMTP"):
        assert protocol in table
    assert "Traceback" not in server.log()
    assert (server.data_dir / "tls" / "cert.pem").is_file()
    key_mode = (server.data_dir / "tls" / "key.pem").stat().st_mode & 0o777
    assert key_mode == 0o600

    # A second start finds the account and prints nothing.
    again = SubprocessServer(tmp_path)
    again.first_run_path = tmp_path / "second-run.txt"
    again.log_path = tmp_path / "second.log"
    again.start()
    try:
        again.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
        assert again.wait(timeout=15) == 0
    finally:
        again.kill()
    assert "postmaster" not in again.first_run_path.read_text()

    async def users() -> list[str]:
        async with SQLiteStore(server.data_dir) as store:
            return [u.address for u in await store.list_users()]

    import asyncio

    assert asyncio.run(users()) == ["postmaster@localhost"]


def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[listeners.imap]\nport = "abc"\n')
    result = subprocess.run(
        [sys.executable, "-m", "mailstead", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "bad.toml" in lines[0] and "listeners.imap.port" in lines[0]


def _served_certificate(port: int) -> bytes:
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        cert = tls.getpeercert(binary_form=True)
    assert cert is not None
    return cert


@pytest.mark.slow
def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    import os

    from mailstead.net.tls import ensure_self_signed

    with SubprocessServer(tmp_path) as server:
        port = server.port("pop3s")
        before = _served_certificate(port)
        fresh = tmp_path / "renewed"
        ensure_self_signed(fresh / "cert.pem", fresh / "key.pem", "mail.example.org")
        tls_dir = server.data_dir / "tls"
        os.replace(fresh / "key.pem", tls_dir / "key.pem")
        os.replace(fresh / "cert.pem", tls_dir / "cert.pem")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        poll_until(
            lambda: True if _served_certificate(port) != before else None,
            timeout=10, failure=lambda: "SIGHUP did not change the served certificate",
        )
        assert server.proc.poll() is None  # still serving
