"""Fixtures for IMAP tests: one real server per module, a fresh account per test, and a raw
line client for checking exact protocol bytes (imaplib hides some of them)."""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.auth.throttle import Throttle
from mailstead.testing.server import ServerThread

PASSWORD = "correct horse"
_counter = itertools.count(1)
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")

SIMPLE_MESSAGE = (
    b"From: Alice Example <alice@example.org>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: lunch plans\r\n"
    b"Date: Mon, 7 Feb 2022 21:52:25 -0800\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)

MULTIPART_MESSAGE = (
    b"From: Carol <carol@example.net>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9_report?=\r\n"
    b"Date: Tue, 8 Feb 2022 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"The caf=C3=A9 numbers are in.\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQ=\r\n"
    b"--XX--\r\n"
)


def imap_config(**limits: object) -> dict[str, object]:
    return {"auth": {"allow_plaintext": True}, "limits": dict(limits)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(tmp_path_factory.mktemp("imap"), imap_config()) as srv:
        yield srv


@pytest.fixture
def own_throttle(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> Throttle:
    """A login throttle of this test's own. The module shares one server, and its throttle
    counts failures per client address: without this, each test that fails logins on
    purpose would pay the tarpit the tests before it earned."""
    throttle = Throttle()
    monkeypatch.setattr(server.services.authenticator, "throttle", throttle)
    return throttle


@pytest.fixture
def account(server: ServerThread) -> str:
    address = f"user{next(_counter)}@example.com"
    server.add_user(address, PASSWORD)
    return address


@pytest.fixture
def client(server: ServerThread, account: str) -> Iterator[imaplib.IMAP4]:
    c = connect(server, account)
    yield c
    with contextlib.suppress(imaplib.IMAP4.abort, OSError):
        c.logout()


def connect(server: ServerThread, account: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    c.login(account, PASSWORD)
    return c


class Raw:
    """A line-level client: ``command`` sends one tagged command and returns every line up
    to and including the tagged reply, literals inlined."""

    def __init__(self, port: int, *, login: str | None = None,
                 sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.settimeout(30)
        self.file = self.sock.makefile("rb")
        self.greeting = self.readline()
        self._tags = itertools.count(1)
        if login is not None:
            lines = self.command(f"LOGIN {login} \"{PASSWORD}\"")
            assert lines[-1].split()[1] == b"OK", lines

    @classmethod
    def over(cls, sock: socket.socket, *, login: str | None = None) -> Raw:
        """On a socket the test connected itself (to set its options first)."""
        return cls(0, login=login, sock=sock)

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def readline(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        m = _LITERAL.search(line)
        while m is not None:
            data = self.file.read(int(m.group(1)))
            rest = self.file.readline()
            line = line + data + rest
            m = _LITERAL.search(rest)
        return line

    def read_until_tag(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def command(self, text: str | bytes, tag: str | None = None) -> list[bytes]:
        tag = tag or f"t{next(self._tags)}"
        body = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + body + b"\r\n")
        return self.read_until_tag(tag)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(server: ServerThread, account: str) -> Iterator[Raw]:
    r = Raw(server.port("imap"), login=account)
    yield r
    r.close()


def status_of(lines: list[bytes]) -> bytes:
    """The status word of the tagged reply (last line)."""
    return lines[-1].split(b" ", 2)[1]


def append(c: imaplib.IMAP4, message: bytes = SIMPLE_MESSAGE, mailbox: str = "INBOX",
           flags: str | None = None) -> int:
    typ, data = c.append(mailbox, flags, None, message)
    assert typ == "OK", data
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0])
    assert m is not None
    return int(m.group(1))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
