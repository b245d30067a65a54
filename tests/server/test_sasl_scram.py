"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS over real sockets, with scramp as the client.

One server with SCRAM on serves IMAP (imaplib), SMTP submission (smtplib) and POP3 (a raw
line client: poplib has no AUTH), over TLS and in the clear; a second one keeps the rule
that nothing authenticates without TLS unless plaintext is allowed.
"""

from __future__ import annotations

import base64
import imaplib
import itertools
import logging
import smtplib
import socket
import ssl
from collections.abc import Iterator

import pytest
import scramp

from mailstead.admin.actors import Actor
from mailstead.auth.throttle import Throttle
from mailstead.cli.serve import build_admin
from mailstead.testing.server import ServerThread

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"scram": True, "allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("scram"), config) as srv:
        yield srv


@pytest.fixture(autouse=True)
def own_throttle(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> Throttle:
    """Failures on purpose must not tarpit the next test (one client address for all)."""
    throttle = Throttle()
    monkeypatch.setattr(server.services.authenticator, "throttle", throttle)
    return throttle


@pytest.fixture
def account(server: ServerThread) -> str:
    address = f"scram{next(_counter)}@example.com"
    server.add_user(address, PASSWORD)
    return address


class Conversation:
    """scramp's client as the challenge -> response callable imaplib and smtplib take."""

    def __init__(self, client: scramp.ScramClient) -> None:
        self.client = client
        self.sent_first = False
        self.sent_final = False
        self.verified = False  # the server proved it knows the keys

    def __call__(self, challenge: bytes | None = None) -> bytes:
        if not self.sent_first:
            self.sent_first = True
            return self.client.get_client_first().encode()
        if not self.sent_final:
            assert challenge is not None
            self.sent_final = True
            self.client.set_server_first(challenge.decode())
            return self.client.get_client_final().encode()
        assert challenge is not None
        self.client.set_server_final(challenge.decode())  # raises if the server lies
        self.verified = True
        return b""

    def smtp(self, challenge: bytes | None = None) -> str:
        return self(challenge).decode()


def conversation(
    address: str,
    password: str = PASSWORD,
    *,
    plus: bool = False,
    binding: tuple[str, ssl.SSLSocket | bytes] | None = None,
) -> Conversation:
    mechanism = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
    return Conversation(scramp.ScramClient([mechanism], address, password, channel_binding=binding))


def imaps(server: ServerThread, context: ssl.SSLContext | None = None) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL(
        "127.0.0.1", server.port("imaps"), ssl_context=context or server.client_ssl_context()
    )


def tls12_context(server: ServerThread) -> ssl.SSLContext:
    context = server.client_ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


# -- IMAP ----------------------------------------------------------------------------------------


def test_imap_capabilities(server: ServerThread) -> None:
    with imaps(server) as tls:
        assert "AUTH=SCRAM-SHA-256-PLUS" in tls.capabilities
        assert "AUTH=SCRAM-SHA-256" in tls.capabilities
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as clear:
        # No TLS, no binding: -PLUS is not offered where it cannot work.
        assert "AUTH=SCRAM-SHA-256" in clear.capabilities
        assert "AUTH=SCRAM-SHA-256-PLUS" not in clear.capabilities


def test_imap_scram_plus_with_tls_server_end_point(server: ServerThread, account: str) -> None:
    with imaps(server) as client:
        conv = conversation(account, plus=True, binding=("tls-server-end-point", client.sock))
        typ, _ = client.authenticate("SCRAM-SHA-256-PLUS", conv)
        assert typ == "OK" and conv.verified and client.state == "AUTH"
        assert client.select("INBOX")[0] == "OK"


def test_imap_scram_plus_with_tls_unique_on_tls12(server: ServerThread, account: str) -> None:
    with imaps(server, tls12_context(server)) as client:
        assert client.sock.version() == "TLSv1.2"
        conv = conversation(account, plus=True, binding=("tls-unique", client.sock))
        assert client.authenticate("SCRAM-SHA-256-PLUS", conv)[0] == "OK"
        assert conv.verified


def test_imap_tls_unique_refused_on_tls13(server: ServerThread, account: str) -> None:
    """RFC 9266 §3: tls-unique is not defined for TLS 1.3."""
    with imaps(server) as client:
        assert client.sock.version() == "TLSv1.3"
        conv = conversation(account, plus=True, binding=("tls-unique", b"\x00" * 12))
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate("SCRAM-SHA-256-PLUS", conv)


def test_imap_scram_plus_after_starttls(server: ServerThread, account: str) -> None:
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as client:
        assert "AUTH=SCRAM-SHA-256-PLUS" not in client.capabilities
        client.starttls(server.client_ssl_context())
        assert "AUTH=SCRAM-SHA-256-PLUS" in client.capabilities
        conv = conversation(account, plus=True, binding=("tls-server-end-point", client.sock))
        assert client.authenticate("SCRAM-SHA-256-PLUS", conv)[0] == "OK" and conv.verified


def test_imap_scram_without_binding_over_tls(server: ServerThread, account: str) -> None:
    with imaps(server) as client:
        conv = conversation(account)
        assert client.authenticate("SCRAM-SHA-256", conv)[0] == "OK" and conv.verified


def test_imap_scram_in_the_clear_when_plaintext_is_allowed(
    server: ServerThread, account: str
) -> None:
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as client:
        conv = conversation(account)
        assert client.authenticate("scram-sha-256", conv)[0] == "OK" and conv.verified


def test_imap_wrong_password(server: ServerThread, account: str) -> None:
    with imaps(server) as client:
        conv = conversation(
            account, "wrong password", plus=True, binding=("tls-server-end-point", client.sock)
        )
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate("SCRAM-SHA-256-PLUS", conv)
        assert not conv.verified  # no server signature for a wrong proof
        # The same connection may try again (up to the per-connection limit).
        conv = conversation(account, plus=True, binding=("tls-server-end-point", client.sock))
        assert client.authenticate("SCRAM-SHA-256-PLUS", conv)[0] == "OK"


def test_imap_unknown_account_fails_like_a_wrong_password(server: ServerThread) -> None:
    with imaps(server) as client:
        conv = conversation("nobody@example.com")
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate("SCRAM-SHA-256", conv)
        assert conv.sent_final  # the server answered with a (mock) salt all the same


def test_imap_bad_channel_binding(server: ServerThread, account: str) -> None:
    """Another certificate than the one this connection shows: a man in the middle."""
    with imaps(server) as client:
        conv = conversation(account, plus=True, binding=("tls-server-end-point", b"\x01" * 32))
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate("SCRAM-SHA-256-PLUS", conv)


def test_imap_downgrade_detected(server: ServerThread, account: str) -> None:
    """A client that can bind but (someone made it) believe we cannot sends "y"."""
    with imaps(server) as client:
        conv = conversation(account, binding=("tls-server-end-point", client.sock))
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate("SCRAM-SHA-256", conv)
        assert not conv.sent_final  # refused at the client-first


class RawLines:
    """Lines in and out of a socket, TLS or not: for what imaplib and poplib cannot send."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\r\n")

    def line(self) -> bytes:
        return self.file.readline().rstrip(b"\r\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def raw(server: ServerThread, listener: str, *, tls: bool) -> RawLines:
    sock = socket.create_connection(("127.0.0.1", server.port(listener)), timeout=30)
    if tls:
        sock = server.client_ssl_context().wrap_socket(sock, server_hostname="localhost")
    return RawLines(sock)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def unb64(line: bytes, prefix: bytes) -> bytes:
    assert line.startswith(prefix), line
    return base64.b64decode(line[len(prefix) :])


def test_imap_sasl_ir_and_cancel(server: ServerThread, account: str) -> None:
    c = raw(server, "imap", tls=False)
    try:
        c.line()
        client = scramp.ScramClient(["SCRAM-SHA-256"], account, PASSWORD)
        c.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(client.get_client_first().encode()))
        client.set_server_first(unb64(c.line(), b"+ ").decode())  # RFC 4959: no empty "+"
        c.send(b64(client.get_client_final().encode()))
        client.set_server_final(unb64(c.line(), b"+ ").decode())
        c.send(b"")
        assert c.line().startswith(b"a OK [CAPABILITY ")
    finally:
        c.close()
    c = raw(server, "imap", tls=False)
    try:
        c.line()
        client = scramp.ScramClient(["SCRAM-SHA-256"], account, PASSWORD)
        c.send(b"b AUTHENTICATE SCRAM-SHA-256 " + b64(client.get_client_first().encode()))
        assert c.line().startswith(b"+ ")
        c.send(b"*")  # RFC 9051 §6.2.2
        assert c.line().startswith(b"b BAD ")
        c.send(b"c AUTHENTICATE SCRAM-SHA-256 " + b64(b"n,,n=x"))  # malformed: no nonce
        assert c.line().startswith(b"c NO [AUTHENTICATIONFAILED]")
        c.send(b"d AUTHENTICATE SCRAM-SHA-256 =")  # empty client-first
        assert c.line().startswith(b"d NO [AUTHENTICATIONFAILED]")
    finally:
        c.close()


def test_old_account_gets_keys_at_its_next_password_login(server: ServerThread) -> None:
    """An account from before SCRAM was on has no keys: SCRAM fails until one password
    login, which stores them (and only then)."""
    address = f"old{next(_counter)}@example.com"
    server.add_user(address, PASSWORD, scram=False)
    with imaps(server) as client, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONF"):
        client.authenticate("SCRAM-SHA-256", conversation(address))
    user = server.call(server.store.find_user(address))
    assert user is not None and user.scram_sha256 is None
    with imaps(server) as client, pytest.raises(imaplib.IMAP4.error):
        client.login(address, "not the password")
    assert server.call(server.store.find_user(address)).scram_sha256 is None  # type: ignore[union-attr]
    with imaps(server) as client:
        assert (
            client.authenticate("PLAIN", lambda _: f"\0{address}\0{PASSWORD}".encode())[0] == "OK"
        )
    user = server.call(server.store.find_user(address))
    assert user is not None and user.scram_sha256 is not None
    assert user.scram_sha256.startswith("SCRAM-SHA-256$4096:")
    with imaps(server) as client:
        conv = conversation(address, plus=True, binding=("tls-server-end-point", client.sock))
        assert client.authenticate("SCRAM-SHA-256-PLUS", conv)[0] == "OK" and conv.verified


def test_admin_password_paths_store_keys(server: ServerThread) -> None:
    """user add and user passwd (CLI, admin API, the account's own password change: all
    one Admin method) store the new password's keys with its hash; the old ones stop
    working with the old password."""
    admin = build_admin(server.store, server.settings)
    actor = Actor(name="test", source="local")
    address = f"admin{next(_counter)}@example.com"
    server.call(admin.add_user(actor, address, PASSWORD))
    added = server.call(server.store.find_user(address))
    assert added is not None and added.scram_sha256 is not None
    with imaps(server) as client:
        assert client.authenticate("SCRAM-SHA-256", conversation(address))[0] == "OK"
    new = "Tr0ub4dor&3 staple horse"
    server.call(admin.set_password(actor, address, new))
    changed = server.call(server.store.find_user(address))
    assert changed is not None and changed.scram_sha256 not in (None, added.scram_sha256)
    with imaps(server) as client:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate("SCRAM-SHA-256", conversation(address))
        assert client.authenticate("SCRAM-SHA-256", conversation(address, new))[0] == "OK"
    server.call(admin.change_own_password(address, "127.0.0.1", PASSWORD))
    with imaps(server) as client:
        assert client.authenticate("SCRAM-SHA-256", conversation(address))[0] == "OK"


# -- SMTP submission ----------------------------------------------------------------------------


def test_smtp_ehlo_lists_scram(server: ServerThread) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("submissions"), context=server.client_ssl_context()
    ) as tls:
        tls.ehlo()
        assert tls.esmtp_features["auth"].split() == [
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-256",
            "PLAIN",
            "LOGIN",
        ]
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as clear:
        clear.ehlo()
        assert "SCRAM-SHA-256-PLUS" not in clear.esmtp_features["auth"].split()


def test_smtp_scram_plus_with_initial_response(server: ServerThread, account: str) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("submissions"), context=server.client_ssl_context()
    ) as client:
        client.ehlo()
        conv = conversation(account, plus=True, binding=("tls-server-end-point", client.sock))
        code, _ = client.auth("SCRAM-SHA-256-PLUS", conv.smtp)  # client-first as AUTH's IR
        assert code == 235 and conv.verified


def test_smtp_scram_plus_after_starttls(server: ServerThread, account: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.starttls(context=server.client_ssl_context())
        client.ehlo()
        assert "SCRAM-SHA-256-PLUS" in client.esmtp_features["auth"].split()
        conv = conversation(account, plus=True, binding=("tls-server-end-point", client.sock))
        code, _ = client.auth("SCRAM-SHA-256-PLUS", conv.smtp, initial_response_ok=False)
        assert code == 235 and conv.verified


@pytest.mark.parametrize("case", ["wrong password", "downgrade", "bad binding"])
def test_smtp_failures_are_535(server: ServerThread, account: str, case: str) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("submissions"), context=server.client_ssl_context()
    ) as client:
        client.ehlo()
        match case:
            case "wrong password":
                conv = conversation(
                    account, "nope", plus=True, binding=("tls-server-end-point", client.sock)
                )
            case "downgrade":
                conv = conversation(account, binding=("tls-server-end-point", client.sock))
            case _:
                conv = conversation(
                    account, plus=True, binding=("tls-server-end-point", b"\x02" * 32)
                )
        mechanism = "SCRAM-SHA-256" if case == "downgrade" else "SCRAM-SHA-256-PLUS"
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.auth(mechanism, conv.smtp)
        assert failed.value.smtp_code == 535 and not conv.verified


def test_smtp_malformed_and_cancelled(server: ServerThread) -> None:
    c = raw(server, "submissions", tls=True)
    try:
        c.line()
        c.send(b"EHLO client.example")
        while c.line()[3:4] == b"-":
            pass
        c.send(b"AUTH SCRAM-SHA-256 " + b64(b"q,,n=bob@example.com,r=abc"))  # bad gs2 flag
        assert c.line().startswith(b"501 5.5.2 ")
        c.send(b"AUTH SCRAM-SHA-256")
        assert c.line() == b"334 "  # RFC 5802: the client speaks first; empty challenge
        c.send(b"*")
        assert c.line().startswith(b"501 5.0.0 ")
    finally:
        c.close()


# -- POP3 ---------------------------------------------------------------------------------------


def pop3_scram(c: RawLines, account: str, password: str, *, tamper: bool = False) -> bytes:
    """AUTH SCRAM-SHA-256-PLUS with the client-first as initial response (RFC 5034 §4)."""
    assert isinstance(c.sock, ssl.SSLSocket)
    client = scramp.ScramClient(
        ["SCRAM-SHA-256-PLUS"],
        account,
        password,
        channel_binding=("tls-server-end-point", c.sock),
    )
    c.send(b"AUTH SCRAM-SHA-256-PLUS " + b64(client.get_client_first().encode()))
    client.set_server_first(unb64(c.line(), b"+ ").decode())
    final = client.get_client_final()
    if tamper:  # flip one bit of the proof
        head, _, proof = final.rpartition(",p=")
        raw_proof = bytearray(base64.b64decode(proof))
        raw_proof[0] ^= 1
        final = f"{head},p={base64.b64encode(bytes(raw_proof)).decode()}"
    c.send(b64(final.encode()))
    line = c.line()
    if not line.startswith(b"+ "):
        return line
    client.set_server_final(unb64(line, b"+ ").decode())
    c.send(b"")
    return c.line()


def test_pop3_capa_and_auth_list(server: ServerThread) -> None:
    c = raw(server, "pop3s", tls=True)
    try:
        c.line()
        c.send(b"CAPA")
        capa = []
        while (line := c.line()) != b".":
            capa.append(line)
        assert b"SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN" in capa
        c.send(b"AUTH")
        assert c.line().startswith(b"+OK")
        names = []
        while (line := c.line()) != b".":
            names.append(line)
        assert names == [b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256", b"PLAIN", b"LOGIN"]
    finally:
        c.close()


def test_pop3_scram_plus(server: ServerThread, account: str) -> None:
    c = raw(server, "pop3s", tls=True)
    try:
        c.line()
        assert pop3_scram(c, account, PASSWORD).startswith(b"+OK maildrop has 0 messages")
    finally:
        c.close()


def test_pop3_scram_plus_after_stls(server: ServerThread, account: str) -> None:
    c = raw(server, "pop3", tls=False)
    try:
        c.line()
        c.send(b"STLS")
        assert c.line().startswith(b"+OK")
        c.file.close()
        tls = server.client_ssl_context().wrap_socket(c.sock, server_hostname="localhost")
        c = RawLines(tls)
        assert pop3_scram(c, account, PASSWORD).startswith(b"+OK maildrop has ")
    finally:
        c.close()


def test_pop3_wrong_proof_and_wrong_password(server: ServerThread, account: str) -> None:
    c = raw(server, "pop3s", tls=True)
    try:
        c.line()
        assert pop3_scram(c, account, PASSWORD, tamper=True).startswith(b"-ERR [AUTH] ")
        assert pop3_scram(c, account, "other").startswith(b"-ERR [AUTH] ")
        assert pop3_scram(c, account, PASSWORD).startswith(b"+OK ")
    finally:
        c.close()


def test_pop3_cancel_and_no_plus_in_the_clear(server: ServerThread, account: str) -> None:
    c = raw(server, "pop3", tls=False)
    try:
        c.line()
        c.send(b"AUTH SCRAM-SHA-256")
        assert c.line() == b"+ "
        c.send(b"*")
        assert c.line().startswith(b"-ERR ")
        c.send(b"AUTH SCRAM-SHA-256-PLUS")  # not offered without TLS
        assert c.line().startswith(b"-ERR ")
    finally:
        c.close()


# -- without TLS, nothing unless plaintext is allowed ---------------------------------------------


def test_no_scram_without_tls_by_default(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SCRAM does not reveal the password, but an observed exchange still allows offline
    guessing and the session after it is readable: the plaintext rule covers it too."""
    with ServerThread(tmp_path_factory.mktemp("strict"), {"auth": {"scram": True}}) as srv:
        with imaplib.IMAP4("127.0.0.1", srv.port("imap")) as clear:
            assert "LOGINDISABLED" in clear.capabilities
            assert not any(c.startswith("AUTH=") for c in clear.capabilities)
            with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
                clear.authenticate("SCRAM-SHA-256", conversation("x@example.com"))
        c = raw(srv, "pop3", tls=False)
        try:
            c.line()
            c.send(b"AUTH SCRAM-SHA-256")
            assert c.line().startswith(b"-ERR ")
        finally:
            c.close()


# -- log lines -----------------------------------------------------------------------------------


def test_log_lines_name_the_mechanism_and_why_a_login_failed(
    server: ServerThread, account: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with imaps(server) as client:
        conv = conversation(account, plus=True, binding=("tls-server-end-point", client.sock))
        client.authenticate("SCRAM-SHA-256-PLUS", conv)
    with imaps(server) as client:
        with pytest.raises(imaplib.IMAP4.error):
            client.authenticate("SCRAM-SHA-256", conversation(account, "wrong"))
        with pytest.raises(imaplib.IMAP4.error):
            client.authenticate(
                "SCRAM-SHA-256",
                conversation(account, binding=("tls-server-end-point", client.sock)),
            )
    text = caplog.text
    assert f"login {account} (SCRAM-SHA-256-PLUS tls-server-end-point)" in text
    assert "bad SCRAM proof" in text
    assert "SASL refused: channel binding downgrade" in text
    assert PASSWORD not in text and str(conv.client.c_nonce) not in text  # nothing of it
