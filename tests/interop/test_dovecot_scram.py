"""SCRAM-SHA-256 side by side with Dovecot: the same scramp exchanges, the same outcomes.

Dovecot derives SCRAM keys from the stored password (scheme PLAIN in its passwd-file);
mailstead from the keys it stored when the password was set. Both listen without TLS
(allowed on both sides), where neither offers -PLUS. ``doveadm pw`` also shows that the
keys mailstead derives are Dovecot's for the same salt.
"""

from __future__ import annotations

import base64
import imaplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import scramp
from dovecot import PASSWORD, USER, Dovecot, dovecot_binary

from mailstead.auth.scram_keys import derive_keys
from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
]

ACCOUNT = "tester@example.com"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot(extra_config="auth_mechanisms = plain login scram-sha-256\n") as server:
        yield server


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"scram": True, "allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("scram-diff"), config) as srv:
        srv.add_user(ACCOUNT, PASSWORD)
        yield srv


def both(dovecot: Dovecot, ours: ServerThread) -> list[tuple[int, str]]:
    return [(dovecot.port, USER), (ours.port("imap"), ACCOUNT)]


def exchange(port: int, first: bytes, client: scramp.ScramClient | None = None) -> bytes:
    """AUTHENTICATE SCRAM-SHA-256 with ``first`` as the initial response, continued by
    ``client`` if given (which checks the server's signature). The tagged reply's status
    word, or the first byte of an unexpected continuation."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"a AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(first) + b"\r\n")
        line = f.readline()
        if client is None or not line.startswith(b"+ "):
            return line.split()[1] if line.startswith(b"a ") else line[:1]
        client.set_server_first(base64.b64decode(line[2:].strip()).decode())
        sock.sendall(base64.b64encode(client.get_client_final().encode()) + b"\r\n")
        line = f.readline()
        if not line.startswith(b"+ "):
            return line.split()[1]
        client.set_server_final(base64.b64decode(line[2:].strip()).decode())  # raises if wrong
        sock.sendall(b"\r\n")
        return f.readline().split()[1]


def scram_login(port: int, user: str, password: str, *, binding: bool = False) -> bytes:
    client = scramp.ScramClient(
        ["SCRAM-SHA-256"],
        user,
        password,
        channel_binding=("tls-server-end-point", b"\x00" * 32) if binding else None,
    )
    return exchange(port, client.get_client_first().encode(), client)


def test_both_advertise_scram_in_the_clear_without_plus(
    dovecot: Dovecot, ours: ServerThread
) -> None:
    for port, _ in both(dovecot, ours):
        with imaplib.IMAP4("127.0.0.1", port) as client:
            assert "AUTH=SCRAM-SHA-256" in client.capabilities
            assert "AUTH=SCRAM-SHA-256-PLUS" not in client.capabilities


@pytest.mark.parametrize(
    ("password", "binding", "expected"),
    [
        (PASSWORD, False, b"OK"),
        ("wrong", False, b"NO"),
        # "y": the client can bind but saw no -PLUS; right, as neither offers it here.
        (PASSWORD, True, b"OK"),
    ],
)
def test_same_outcomes(
    dovecot: Dovecot, ours: ServerThread, password: str, binding: bool, expected: bytes
) -> None:
    outcomes = [
        scram_login(port, user, password, binding=binding) for port, user in both(dovecot, ours)
    ]
    assert outcomes == [expected, expected]


@pytest.mark.parametrize(
    "first",
    [
        b"p=tls-unique,,n={user},r=abcdefgh",  # binding asked of non-PLUS SCRAM
        b"n,,n={user}",  # no nonce
        b"n,,m=x,n={user},r=abcdefgh",  # mandatory extension
    ],
)
def test_same_refusals(dovecot: Dovecot, ours: ServerThread, first: bytes) -> None:
    outcomes = [
        exchange(port, first.replace(b"{user}", user.encode()))
        for port, user in both(dovecot, ours)
    ]
    assert [o in (b"NO", b"BAD") for o in outcomes] == [True, True], outcomes


def test_keys_match_doveadm(tmp_path: Path) -> None:
    """Dovecot's {SCRAM-SHA-256}count,salt,StoredKey,ServerKey for the same password."""
    out = subprocess.run(
        ["doveadm", "pw", "-s", "SCRAM-SHA-256", "-p", "pässwörd"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert out.startswith("{SCRAM-SHA-256}")
    count, salt, stored, server = out.removeprefix("{SCRAM-SHA-256}").split(",")
    ours = derive_keys("pässwörd", int(count), salt=base64.b64decode(salt))
    assert (ours.stored_key, ours.server_key) == (
        base64.b64decode(stored),
        base64.b64decode(server),
    )
