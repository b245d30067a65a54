"""Limits and bad input: LOGINDISABLED and STARTTLS, line and literal limits, the error
budgets (BYE at the first garbage before login, BAD after it), pipelining, auto-logout;
nothing a bad session does reaches the mailbox or leaks a traceback."""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import PASSWORD, SIMPLE_MESSAGE, Raw, append, connect, status_of


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Default auth policy (no plaintext), small error budget, short auto-logout."""
    config = {"limits": {"max_errors_per_session": 3, "imap_max_line_length": 1000}}
    with ServerThread(tmp_path_factory.mktemp("strict"), config) as srv:
        srv.add_user("carol@example.com", PASSWORD)
        yield srv


def _tls_context(server: ServerThread) -> ssl.SSLContext:
    ctx = server.client_ssl_context()
    ctx.check_hostname = False
    return ctx


def test_logindisabled_without_tls_then_starttls(strict: ServerThread) -> None:
    c = imaplib.IMAP4("127.0.0.1", strict.port("imap"))
    assert "LOGINDISABLED" in c.capabilities and "STARTTLS" in c.capabilities
    assert "AUTH=PLAIN" not in c.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        c.login("carol@example.com", PASSWORD)
    c.starttls(ssl_context=_tls_context(strict))
    c.capability()
    assert "LOGINDISABLED" not in c.capabilities and "STARTTLS" not in c.capabilities
    assert "AUTH=PLAIN" in c.capabilities
    assert c.login("carol@example.com", PASSWORD)[0] == "OK"
    c.logout()


def test_authenticate_refused_without_tls(strict: ServerThread) -> None:
    r = Raw(strict.port("imap"))
    assert b"[PRIVACYREQUIRED]" in r.command("AUTHENTICATE PLAIN AGNhcm9sAHB3")[-1]
    r.close()


def test_starttls_discards_pipelined_plaintext(strict: ServerThread) -> None:
    sock = socket.create_connection(("127.0.0.1", strict.port("imap")), timeout=30)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a STARTTLS\r\nb LOGIN carol@example.com pw\r\n")
    assert f.readline().startswith(b"a OK")
    tls = _tls_context(strict).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"c NOOP\r\n")
    tf = tls.makefile("rb")
    assert tf.readline().startswith(b"c OK")  # "b" was dropped, never answered
    tls.close()


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Plaintext logins, small error budget after login, three errors allowed before it."""
    config = {
        "auth": {"allow_plaintext": True},
        "limits": {"max_errors_per_session": 3, "imap_max_line_length": 1000},
        "imap": {"max_errors_before_login": 3},
    }
    with ServerThread(tmp_path_factory.mktemp("tolerant"), config) as srv:
        srv.add_user("erin@example.com", PASSWORD)
        yield srv


def _closed(r: Raw) -> bool:
    try:
        r.readline()
    except (ConnectionError, OSError):
        return True
    return False


def test_garbage_before_login_gets_bye_and_close(server: ServerThread) -> None:
    """ALPACA: an HTTP request sent to the IMAP port is cut off at its first line, and no
    part of it is echoed back (imap.max_errors_before_login = 1, the default)."""
    r = Raw(server.port("imap"))
    r.send(b"GET /index.html HTTP/1.1\r\nHost: mail.example.org\r\n\r\n")
    line = r.readline()
    assert line.startswith(b"* BYE") and b"GET" not in line and b"HTTP" not in line
    assert _closed(r)
    r.close()


@pytest.fixture
def bogus(monkeypatch: pytest.MonkeyPatch) -> str:
    """An unknown command imaplib will send in any state (its table is module-global)."""
    monkeypatch.setitem(imaplib.Commands, "XBOGUS", ("NONAUTH", "AUTH", "SELECTED"))
    return "XBOGUS"


def test_unknown_command_before_login_gets_bye_with_imaplib(
    server: ServerThread, bogus: str
) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    with pytest.raises(imaplib.IMAP4.abort, match="before login"):
        c.xatom(bogus)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        c.noop()
    c.shutdown()


def test_garbage_after_login_gets_bad_with_imaplib(
    server: ServerThread, account: str, bogus: str
) -> None:
    c = connect(server, account)
    with pytest.raises(imaplib.IMAP4.error) as info:
        c.xatom(bogus)
    assert not isinstance(info.value, imaplib.IMAP4.abort) and "BAD" in str(info.value)
    assert c.noop()[0] == "OK"
    c.logout()


def test_well_formed_command_in_wrong_state_is_no_not_bye(server: ServerThread) -> None:
    r = Raw(server.port("imap"))
    assert status_of(r.command("SELECT INBOX")) == b"NO"
    assert status_of(r.command("NOOP")) == b"OK"
    r.close()


def test_line_too_long_before_login_gets_bye(server: ServerThread) -> None:
    r = Raw(server.port("imap"))
    r.send(b"a NOOP " + b"x" * 70000 + b"\r\n")
    assert r.readline().startswith(b"* BYE")
    assert _closed(r)
    r.close()


def test_known_command_with_bad_arguments_before_login_is_bad(server: ServerThread) -> None:
    """A malformed LOGIN is a client bug, not another protocol: BAD, and the session goes on
    (as James's Login script expects)."""
    r = Raw(server.port("imap"))
    assert status_of(r.command("LOGIN")) == b"BAD"
    assert status_of(r.command("LOGOUT extra")) == b"BAD"
    assert status_of(r.command("NOOP")) == b"OK"
    r.close()


def test_errors_before_login_budget_is_configurable(tolerant: ServerThread) -> None:
    r = Raw(tolerant.port("imap"))
    assert status_of(r.command("BOGUS")) == b"BAD"
    assert status_of(r.command("LOGIN")) == b"BAD"  # a known command: not counted here
    assert status_of(r.command("XYZZY")) == b"BAD"
    r.send(b"GET / HTTP/1.1\r\n")
    assert r.readline().startswith(b"* BYE")  # the third stray line: BYE only, no BAD
    assert _closed(r)
    r.close()


def test_error_budget_after_login_ends_session(tolerant: ServerThread) -> None:
    r = Raw(tolerant.port("imap"), login="erin@example.com")
    for text in ("BOGUS", "FETCH", "LOGIN"):
        assert status_of(r.command(text)) == b"BAD"
    assert r.readline().startswith(b"* BYE")
    assert _closed(r)
    r.close()


def test_line_too_long_after_login_is_bad_and_session_goes_on(tolerant: ServerThread) -> None:
    r = Raw(tolerant.port("imap"), login="erin@example.com")
    r.send(b"a NOOP " + b"x" * 5000 + b"\r\n")
    assert r.readline().startswith(b"* BAD")
    assert status_of(r.command("NOOP")) == b"OK"
    r.close()


def test_garbage_never_leaks_a_traceback(tolerant: ServerThread) -> None:
    r = Raw(tolerant.port("imap"))
    r.send(b"\x00\xff\xfe garbage \x01\r\n")
    line = r.readline()
    assert line.startswith(b"* BAD") and b"Traceback" not in line
    r.send(b"a\r\n")
    assert r.readline().startswith(b"a BAD")
    r.close()


def test_pipelined_commands_answered_in_order(server: ServerThread, account: str) -> None:
    r = Raw(server.port("imap"), login=account)
    r.send(b"".join(b"p%d NOOP\r\n" % i for i in range(200)))
    for i in range(200):
        assert r.readline().startswith(b"p%d OK" % i)
    r.close()


def test_non_append_literal_limit_and_nonsync_too_big(server: ServerThread, account: str) -> None:
    r = Raw(server.port("imap"), login=account)
    r.send(b"a SEARCH SUBJECT {2000000}\r\n")
    assert r.readline().startswith(b"a NO [TOOBIG]")
    assert status_of(r.command("NOOP")) == b"OK"
    r.send(b"b APPEND INBOX {999999999999+}\r\n")
    assert r.readline().startswith(b"* BYE [TOOBIG]")
    r.close()


def test_bad_session_does_not_touch_mailbox(server: ServerThread, account: str) -> None:
    c = connect(server, account)
    append(c)
    r = Raw(server.port("imap"), login=account)
    r.command("SELECT INBOX")
    for bad in ("STORE 1 +FLAGS (\\Bogus)", "STORE 5 +FLAGS (\\Deleted)",
                "COPY 1 ", "UID EXPUNGE x", 'APPEND INBOX "bad date" {1+}\r\nx'):
        assert status_of(r.command(bad)) == b"BAD"
    assert c.status("INBOX", "(MESSAGES DELETED)")[1] == [b'"INBOX" (MESSAGES 1 DELETED 0)']
    r.close()
    c.logout()


def test_auto_logout(tmp_path_factory: pytest.TempPathFactory) -> None:
    config = {"auth": {"allow_plaintext": True}, "limits": {"imap_idle_timeout_seconds": 1}}
    with ServerThread(tmp_path_factory.mktemp("autologout"), config) as srv:
        r = Raw(srv.port("imap"))
        assert r.readline().startswith(b"* BYE Autologout")
        r.close()


def test_message_size_limit_on_append(tmp_path_factory: pytest.TempPathFactory) -> None:
    config = {"auth": {"allow_plaintext": True}, "limits": {"max_message_size": 100}}
    with ServerThread(tmp_path_factory.mktemp("small"), config) as srv:
        srv.add_user("dan@example.com", PASSWORD)
        c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
        assert "APPENDLIMIT=100" in c.capabilities
        c.login("dan@example.com", PASSWORD)
        typ, data = c.append("INBOX", None, None, SIMPLE_MESSAGE)
        assert typ == "NO" and data[0].startswith(b"[TOOBIG]")
        c.logout()
