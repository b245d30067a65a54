"""TLS policy: no credentials in the clear by default, STLS (RFC 2595), POP3S (RFC 8314)."""

from __future__ import annotations

import base64
import poplib
import socket
import ssl
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.pop3.conftest import Account, message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The default policy: allow_plaintext = false."""
    with ServerThread(tmp_path_factory.mktemp("pop3tls")) as srv:
        yield srv


def test_capa_hides_credentials_before_stls(account: Account) -> None:
    client = account.connect()
    caps = client.capa()
    assert "STLS" in caps
    assert "USER" not in caps and "SASL" not in caps
    client.stls(account.server.client_ssl_context())
    caps = client.capa()
    assert "STLS" not in caps  # RFC 2595 §4: not after TLS is active
    assert "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"]


def test_user_pass_and_auth_refused_without_tls(account: Account) -> None:
    client = account.connect()
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\].*STLS"):
        client.user(account.address)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0a@b\0c").decode())
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client._shortcmd("AUTH")


def test_login_after_stls(account: Account) -> None:
    account.deliver(message(1))
    client = account.connect()
    client.stls(account.server.client_ssl_context())
    with pytest.raises(poplib.error_proto):
        client._shortcmd("STLS")  # only once
    client.user(account.address)
    client.pass_(account.password)
    _, lines, _ = client.retr(1)
    assert b"".join(line + b"\r\n" for line in lines) == message(1)


def test_pop3s(account: Account) -> None:
    account.deliver(message(1))
    client = account.connect(ssl=True)
    caps = client.capa()
    assert "STLS" not in caps and "USER" in caps
    client.user(account.address)
    client.pass_(account.password)
    assert client.stat() == (1, len(message(1)))
    client.quit()


def test_stls_discards_pipelined_plaintext(account: Account) -> None:
    """Commands sent after STLS but before the handshake must not run (CVE-2011-0411)."""
    with socket.create_connection(("127.0.0.1", account.server.port("pop3")), timeout=10) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"+OK")
        raw.sendall(b"STLS\r\nCAPA\r\n")
        assert f.readline().startswith(b"+OK")
        context = account.server.client_ssl_context()
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"NOOP\r\n")
            reply = tls.recv(4096)
            # NOOP is invalid before login; the injected CAPA must not have been answered.
            assert reply.startswith(b"-ERR"), reply
            assert b"capability" not in reply


def test_certificate_is_checked_by_clients(account: Account) -> None:
    with pytest.raises(ssl.SSLError):
        poplib.POP3_SSL("127.0.0.1", account.server.port("pop3s"),
                        context=ssl.create_default_context(), timeout=10)
