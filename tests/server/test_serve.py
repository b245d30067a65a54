"""`mailstead serve` as a user runs it: first start, restart, SIGTERM, bad configuration."""

from __future__ import annotations

import os
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
        assert server.wait(timeout=15) == 0, server.log()  # SIGTERM: drain and exit 0
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
        assert again.wait(timeout=15) == 0, again.log()
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


@pytest.mark.slow
def test_a_port_in_use_is_named_and_spends_no_password(tmp_path: Path) -> None:
    """A port clash said "internal error: ..." and came after the one-time postmaster
    password was printed and its account created: the password was spent, unseen."""
    import socket

    server = SubprocessServer(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.port("imap")))
        squatter.listen()
        result = subprocess.run(
            [sys.executable, "-m", "mailstead", "serve", "--config", str(server.config_path)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: listeners.imap: cannot listen on")
    assert f"port {server.port('imap')}" in last and "in use" in last
    assert "password" not in result.stdout  # nothing was printed, no account made
    server.start()  # the port is free again: the first start happens now, table and all
    try:
        server.terminate()
        assert server.wait(timeout=15) == 0
    finally:
        server.kill()
    assert "postmaster@localhost" in server.first_run_path.read_text()


def _config_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailstead", "config", "check", str(config)],
        capture_output=True, text=True, timeout=60,
    )


def test_config_check_refuses_what_serve_would(tmp_path: Path) -> None:
    """config check passed 12 files that serve refused (certificates, routes)."""
    from mailstead.net.tls import ensure_self_signed

    ensure_self_signed(tmp_path / "a" / "cert.pem", tmp_path / "a" / "key.pem", "a.example")
    ensure_self_signed(tmp_path / "b" / "cert.pem", tmp_path / "b" / "key.pem", "b.example")
    cases = {
        "missing certificate": (
            f'[tls]\ncert = "{tmp_path}/none.pem"\nkey = "{tmp_path}/a/key.pem"\n', "tls.cert"),
        "key of another certificate": (
            f'[tls]\ncert = "{tmp_path}/a/cert.pem"\nkey = "{tmp_path}/b/key.pem"\n',
            "does not match"),
        "not a certificate": (
            f'[tls]\ncert = "{tmp_path}/a/key.pem"\nkey = "{tmp_path}/a/key.pem"\n',
            "cannot load TLS certificate"),
        "bad route": (
            '[delivery]\nenabled = true\n[delivery.routes]\n"example.org" = "host:port"\n',
            "delivery.routes.example.org"),
    }
    for name, (text, expected) in cases.items():
        config = tmp_path / f"{name.replace(' ', '-')}.toml"
        config.write_text(f'data_dir = "{tmp_path}/data"\n' + text)
        result = _config_check(config)
        assert result.returncode == 1, name
        [line] = result.stderr.splitlines()
        assert line.startswith("error: ") and expected in line, (name, line)
    good = tmp_path / "good.toml"
    good.write_text(f'data_dir = "{tmp_path}/data"\n[tls]\ncert = "{tmp_path}/a/cert.pem"\n'
                    f'key = "{tmp_path}/a/key.pem"\n')
    assert _config_check(good).returncode == 0


@pytest.mark.slow
def test_a_second_server_on_the_same_data_directory_refuses(tmp_path: Path) -> None:
    """A second `serve` on a data directory in use (other ports) once started beside the
    first, each with its own view of the mailboxes, and removed the first one's pid file
    when it stopped. It now refuses in one line and touches nothing; after the first is
    gone, even by SIGKILL, a new one starts."""
    first = SubprocessServer(tmp_path).start()
    try:
        pid_file = first.data_dir / "mailstead.pid"
        second = SubprocessServer(tmp_path)  # the same data directory, other ports
        result = subprocess.run(
            [sys.executable, "-m", "mailstead", "serve", "--config", str(second.config_path)],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: another mailstead is already serving {first.data_dir} "
            f"(pid {first.proc.pid}); stop it first"  # type: ignore[union-attr]
        ]
        assert pid_file.read_text().strip() == str(first.proc.pid)  # type: ignore[union-attr]
        first.kill()  # the kernel lets go of the lock
        second.log_path = tmp_path / "second.log"
        second.first_run_path = tmp_path / "second-run.txt"
        second.start()
        second.terminate()
        assert second.wait(timeout=15) == 0, second.log()
    finally:
        first.kill()


def test_the_lock_is_held_while_running_in_process(tmp_path: Path) -> None:
    from mailstead.cli.serve import AlreadyServing, lock_data_dir

    with ServerThread(tmp_path) as server, pytest.raises(AlreadyServing, match="already"):
        lock_data_dir(server.services.settings.data_dir)
    os.close(lock_data_dir(tmp_path))  # let go when the server stopped


@pytest.mark.slow
def test_the_data_directory_and_its_files_are_private(tmp_path: Path) -> None:
    """Every message, password hash and private key is in the data directory: 0700, and
    what mailstead creates in it 0600 (0700 for directories), even where it existed with
    looser modes before."""
    server = SubprocessServer(tmp_path)
    server.data_dir.mkdir(mode=0o755)
    server.data_dir.chmod(0o755)
    server.start()
    try:
        poll_until(lambda: True if (server.data_dir / "mailstead.pid").exists() else None,
                   timeout=10, failure=lambda: "no pid file")
        names = [".", "mailstead.db", "mailstead.pid", "mailstead.lock", "tls/key.pem",
                 "tls/cert.pem", "blobs", "blobs/ab", "spool", "tls"]
        modes = {name: (server.data_dir / name).stat().st_mode & 0o777 for name in names}
    finally:
        server.kill()
    assert modes["."] == 0o700
    for name in ("mailstead.db", "mailstead.pid", "mailstead.lock", "tls/key.pem"):
        assert modes[name] == 0o600, (name, oct(modes[name]))
    assert modes["tls/cert.pem"] == 0o644  # a certificate is public
    for name in ("blobs", "blobs/ab", "spool", "tls"):
        assert modes[name] == 0o700, (name, oct(modes[name]))


@pytest.mark.slow
def test_status_says_whether_the_server_runs_and_is_ready(tmp_path: Path) -> None:
    def status(server: SubprocessServer) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailstead", "status", "--config", str(server.config_path)],
            capture_output=True, text=True, timeout=60)

    server = SubprocessServer(tmp_path).start()
    try:
        running = status(server)
        assert running.returncode == 0, running.stderr
        lines = running.stdout.splitlines()
        assert lines[0] == f"data:     {server.data_dir}"
        assert lines[1] == (f"server:   running (pid {server.proc.pid}), ready: "  # type: ignore[union-attr]
                            "store ok, queue disabled")  # tests send nothing out
        assert lines[2:] == ["domains:  1", "accounts: 1", "queue:    0 recipient(s) waiting"]
    finally:
        server.kill()
    stopped = status(server)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert stopped.stdout.splitlines()[1] == "server:   not running"


@pytest.mark.slow
def test_a_disabled_account_keeps_its_mail_and_neither_logs_in_nor_receives(
        tmp_path: Path) -> None:
    import imaplib
    import smtplib

    def cli(server: SubprocessServer, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "mailstead", *args, "--config", str(server.config_path)],
            capture_output=True, text=True, timeout=60, input="bob password\nbob password\n")
        assert result.returncode == 0, result.stderr
        return result.stdout

    def rcpt(server: SubprocessServer) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
            smtp.ehlo("x")
            smtp.mail("s@remote.example")
            return smtp.rcpt("bob@localhost")

    def login(server: SubprocessServer) -> bool:
        with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
            try:
                imap.login("bob@localhost", "bob password")
            except imaplib.IMAP4.error:
                return False
            return True

    server = SubprocessServer(tmp_path, {"auth": {"allow_plaintext": True}}).start()
    try:
        cli(server, "user", "add", "bob@localhost")
        assert rcpt(server)[0] == 250 and login(server)
        assert cli(server, "user", "disable", "bob@localhost").startswith("disabled bob@")
        # The server reads the change from the store (its route cache lasts 2 s).
        refused = poll_until(lambda: r if (r := rcpt(server))[0] == 550 else None,
                             timeout=10, failure=lambda: "RCPT still accepted")
        assert refused == (550, b"5.2.1 Mailbox disabled")
        assert not login(server)  # as a wrong password: nothing said about the account
        assert "disabled" in cli(server, "user", "list")
        cli(server, "user", "enable", "bob@localhost")
        poll_until(lambda: True if rcpt(server)[0] == 250 else None, timeout=10,
                   failure=lambda: "RCPT still refused")
        assert login(server)
    finally:
        server.kill()
