"""Every RFC 1939 / RFC 2449 command through poplib against the real server."""

from __future__ import annotations

import poplib
import socket
from collections.abc import Callable

import pytest

from tests.pop3.conftest import Account, message


def raw_session(account: Account, *lines: bytes) -> list[bytes]:
    """Send lines on a plain socket (pipelined) and return the response lines until close."""
    with socket.create_connection(("127.0.0.1", account.server.port("pop3")), timeout=10) as s:
        f = s.makefile("rb")
        greeting = f.readline()
        s.sendall(b"".join(lines))
        out = [greeting]
        while line := f.readline():
            out.append(line)
        return out


def test_greeting_and_quit_before_login(account: Account) -> None:
    client = account.connect()
    assert client.getwelcome().startswith(b"+OK ")
    assert client.quit().startswith(b"+OK")


def test_capa_before_and_after_login(account: Account) -> None:
    client = account.connect()
    caps = client.capa()
    for name in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                 "EXPIRE", "IMPLEMENTATION", "UTF8", "STLS"):
        assert name in caps, name
    assert caps["SASL"] == ["PLAIN", "LOGIN"]
    assert caps["EXPIRE"] == ["NEVER"]
    assert "LOGIN-DELAY" not in caps  # no login delay policy configured
    client.user(account.address)
    client.pass_(account.password)
    after = client.capa()
    for name in ("USER", "SASL", "STLS", "UTF8"):
        assert name not in after  # RFC 2449 §5: only what is valid in TRANSACTION
    assert "TOP" in after and "UIDL" in after


def test_stat_list_uidl(account: Account) -> None:
    sizes = [len(message(n)) for n in (1, 2, 3)]
    uids = [account.deliver(message(n)) for n in (1, 2, 3)]
    client = account.login()
    assert client.stat() == (3, sum(sizes))
    response, lines, _ = client.list()
    assert response == f"+OK 3 messages ({sum(sizes)} octets)".encode()
    assert lines == [f"{n} {size}".encode() for n, size in enumerate(sizes, 1)]
    assert client.list(2) == f"+OK 2 {sizes[1]}".encode()
    validity = account.uidvalidity()
    _, ids, _ = client.uidl()
    assert ids == [f"{n} {validity}.{uid}".encode() for n, uid in enumerate(uids, 1)]
    assert client.uidl(3) == f"+OK 3 {validity}.{uids[2]}".encode()


def test_retr_byte_exact_with_dot_stuffing(account: Account) -> None:
    body = b".starts with a dot\r\n..two dots\r\n.\r\nnot the end\r\n"
    raw = message(1, body)
    account.deliver(raw)
    client = account.login()
    response, lines, _ = client.retr(1)
    assert response == f"+OK {len(raw)} octets".encode()
    assert b"".join(line + b"\r\n" for line in lines) == raw


def test_top(account: Account) -> None:
    body = b"line 1\r\n.line 2\r\nline 3\r\n"
    raw = message(1, body)
    account.deliver(raw)
    header = raw[: raw.index(b"\r\n\r\n") + 4]
    client = account.login()
    for n, expected in [(0, header), (2, header + b"line 1\r\n.line 2\r\n"), (99, raw)]:
        _, lines, _ = client.top(1, n)
        assert b"".join(line + b"\r\n" for line in lines) == expected


def test_top_without_body_separator(account: Account) -> None:
    raw = b"Subject: only a header\r\nFrom: a@example.net\r\n"
    account.deliver(raw)
    client = account.login()
    _, lines, _ = client.top(1, 5)
    assert b"".join(line + b"\r\n" for line in lines) == raw


def test_dele_rset_noop(account: Account) -> None:
    for n in (1, 2):
        account.deliver(message(n))
    client = account.login()
    assert client.dele(1) == b"+OK message 1 deleted"
    assert client.stat()[0] == 1
    for call in (lambda: client.dele(1), lambda: client.retr(1), lambda: client.list(1),
                 lambda: client.uidl(1), lambda: client.top(1, 0)):
        with pytest.raises(poplib.error_proto, match="already deleted"):
            call()
    assert [line.split()[0] for line in client.list()[1]] == [b"2"]
    assert client.noop() == b"+OK"
    assert client.rset().startswith(b"+OK maildrop has 2 messages")
    assert client.stat()[0] == 2
    client.quit()
    assert len(account.messages()) == 2  # RSET undid the mark


@pytest.mark.parametrize(
    "command",
    [b"RETR 9", b"RETR 0", b"RETR x", b"RETR", b"DELE 5", b"LIST 3", b"TOP 1", b"TOP 1 x"],
)
def test_bad_arguments(account: Account, command: bytes) -> None:
    account.deliver(message(1))
    client = account.login()
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR"):
        client._shortcmd(command.decode())
    assert client.noop() == b"+OK"  # the session goes on


def test_wrong_state_and_unknown_commands(account: Account) -> None:
    client = account.connect()
    for command in ("STAT", "RETR 1", "NOOP", "APOP user digest", "XYZZY", "PASS x"):
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR"):
            client._shortcmd(command)
    client.user(account.address)
    client.pass_(account.password)
    for command in ("USER x", "PASS x", "AUTH PLAIN", "STLS", "UTF8"):
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR"):
            client._shortcmd(command)


def test_wrong_password_is_auth_code(account: Account) -> None:
    client = account.connect()
    client.user(account.address)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client.pass_("wrong")
    client.user(account.address)  # still in AUTHORIZATION: may try again
    assert client.pass_(account.password).startswith(b"+OK")


def test_unknown_user_looks_like_wrong_password(account: Account) -> None:
    client = account.connect()
    assert client.user("nobody@example.org").startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] authentication failed"):
        client.pass_("whatever")


def test_password_with_spaces(make_account: Callable[..., Account]) -> None:
    account = make_account()
    assert " " in account.password
    assert account.login().stat() == (0, 0)


def test_pipelining(account: Account) -> None:
    """RFC 2449 §6.6: many commands in one write, answered in order."""
    for n in (1, 2):
        account.deliver(message(n))
    out = raw_session(
        account,
        f"USER {account.address}\r\nPASS {account.password}\r\n".encode(),
        b"STAT\r\nRETR 1\r\nLIST 2\r\nDELE 2\r\nRSET\r\nQUIT\r\n",
    )
    statuses = [line for line in out if line.startswith((b"+OK", b"-ERR"))]
    assert len(statuses) == 9, out
    assert all(line.startswith(b"+OK") for line in statuses), out
    assert statuses[3].startswith(b"+OK 2 ")  # greeting, USER, PASS, then STAT


def test_error_budget_closes_connection(account: Account) -> None:
    out = raw_session(account, b"BOGUS\r\n" * 20)
    errors = [line for line in out[1:] if line.startswith(b"-ERR")]
    assert errors[-1] == b"-ERR too many errors, closing connection\r\n"
    assert len(errors) == 11  # ten refusals, then the goodbye; the rest is never read


def test_line_too_long(account: Account) -> None:
    out = raw_session(account, b"USER " + b"x" * 10000 + b"\r\nQUIT\r\n")
    assert out[1] == b"-ERR line too long\r\n"
    assert out[2].startswith(b"+OK")


def test_utf8_command(account: Account) -> None:
    client = account.connect()
    assert client.utf8() == b"+OK UTF8 enabled"
    client.user(account.address)
    assert client.pass_(account.password).startswith(b"+OK")


def test_auth_plain_and_login(account: Account) -> None:
    import base64

    plain = base64.b64encode(f"\0{account.address}\0{account.password}".encode()).decode()
    client = account.connect()
    assert client._shortcmd(f"AUTH PLAIN {plain}").startswith(b"+OK")
    client.quit()

    client = account.connect()
    assert client._shortcmd("AUTH PLAIN") == b"+ "
    assert client._shortcmd(plain).startswith(b"+OK")
    client.quit()

    client = account.connect()
    user = base64.b64encode(account.address.encode()).decode()
    password = base64.b64encode(account.password.encode()).decode()
    assert client._shortcmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6"
    assert client._shortcmd(user) == b"+ UGFzc3dvcmQ6"
    assert client._shortcmd(password).startswith(b"+OK")


def test_auth_failures(account: Account) -> None:
    import base64

    client = account.connect()
    _, mechanisms, _ = client._longcmd("AUTH")
    assert mechanisms == [b"PLAIN", b"LOGIN"]
    with pytest.raises(poplib.error_proto, match="unsupported"):
        client._shortcmd("AUTH CRAM-MD5")
    client._shortcmd("AUTH PLAIN")
    with pytest.raises(poplib.error_proto, match="cancelled"):
        client._shortcmd("*")
    bad = base64.b64encode(f"\0{account.address}\0nope".encode()).decode()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client._shortcmd(f"AUTH PLAIN {bad}")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client._shortcmd("AUTH PLAIN !!notbase64")
    client.user(account.address)  # failures leave the session in AUTHORIZATION
    assert client.pass_(account.password).startswith(b"+OK")


def test_top_of_message_without_header(account: Account) -> None:
    raw = b"\r\nbody line\r\nsecond\r\n"
    account.deliver(raw)
    client = account.login()
    _, lines, _ = client.top(1, 1)
    assert b"".join(line + b"\r\n" for line in lines) == b"\r\nbody line\r\n"
    _, lines, _ = client.top(1, 0)
    assert lines == [b""]
