"""Shared fixtures for SMTP tests: the real server on ephemeral ports, and small clients."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailstead.store.models import User
from mailstead.testing.server import ServerThread

PASSWORD = "correct horse battery staple"

_TRACE = re.compile(
    rb"^(?:Return-Path: [^\r\n]*\r\n|Delivered-To: [^\r\n]*\r\n"
    rb"|Received: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*)"
)


class Mailserver:
    """A running server with a few accounts, and ways to read what was delivered."""

    def __init__(self, srv: ServerThread) -> None:
        self.srv = srv
        self.alice = srv.add_user("alice@example.org", PASSWORD)
        self.bob = srv.add_user("bob@example.org", PASSWORD)

    def port(self, name: str = "smtp") -> int:
        return self.srv.port(name)

    def call(self, coro: Any) -> Any:
        return self.srv.call(coro)

    @property
    def store(self) -> Any:
        return self.srv.store

    def messages(self, user: User, mailbox: str = "INBOX") -> list[bytes]:
        """Every stored message of a mailbox, in UID order."""
        store = self.srv.store
        box = self.call(store.get_mailbox(user.id, mailbox))
        metas = self.call(store.list_messages(box.id))
        return [self.call(store.read_blob(m.blob_id)) for m in metas]

    def blob_ids(self, user: User, mailbox: str = "INBOX") -> list[str]:
        box = self.call(self.srv.store.get_mailbox(user.id, mailbox))
        return [m.blob_id for m in self.call(self.srv.store.list_messages(box.id))]

    def queue(self) -> list[Any]:
        return self.call(self.srv.store.list_queue())

    def client_context(self) -> ssl.SSLContext:
        return self.srv.client_ssl_context()


def strip_trace(data: bytes) -> bytes:
    """The message without the trace headers the server prepended."""
    while True:
        match = _TRACE.match(data)
        if not match:
            return data
        data = data[match.end() :]


def trace_headers(data: bytes) -> bytes:
    return data[: len(data) - len(strip_trace(data))]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Mailserver]:
    with ServerThread(tmp_path) as srv:
        yield Mailserver(srv)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Start a server with extra configuration: ``make_server({"smtp": {...}})``."""
    started: list[ServerThread] = []

    def start(config: dict[str, Any]) -> Mailserver:
        srv = ServerThread(tmp_path / f"s{len(started)}", config)
        srv.__enter__()
        started.append(srv)
        return Mailserver(srv)

    yield start
    for srv in started:
        srv.__exit__(None, None, None)


Connect = Callable[..., "RawClient"]
MakeServer = Callable[[dict[str, Any]], Mailserver]


class RawClient:
    """A line-level SMTP client for what smtplib cannot do (pipelining, odd bytes)."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock: socket.socket = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffered {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, list[bytes]]:
        """One (possibly multi-line) reply: (code, text lines)."""
        lines = []
        while True:
            line = self.read_line()
            lines.append(line[4:])
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def replies(self, count: int) -> list[tuple[int, bytes]]:
        out = []
        for _ in range(count):
            code, lines = self.reply()
            out.append((code, lines[0]))
        return out

    def command(self, line: bytes) -> tuple[int, bytes]:
        self.send(line + b"\r\n")
        code, lines = self.reply()
        return code, lines[0]

    def starttls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within ``timeout`` seconds (after any
        replies already read); False when it sends more or keeps the connection open."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False  # still open: a timeout is not a close
        except (ConnectionError, OSError):
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(server: Mailserver) -> Iterator[Any]:
    clients: list[RawClient] = []

    def connect(name: str = "smtp", *, tls: ssl.SSLContext | None = None,
                greet: bool = True) -> RawClient:
        client = RawClient(server.port(name), tls=tls)
        clients.append(client)
        if greet:
            code, _ = client.reply()
            assert code == 220
        return client

    yield connect
    for client in clients:
        client.close()


def message(subject: str = "test", body: bytes = b"Hello there.\r\n",
            author: str = "Sender <sender@remote.example>") -> bytes:
    """A small message; ``author`` is its From: (on submission, one the user may use)."""
    return (
        b"From: " + author.encode() + b"\r\nTo: alice@example.org\r\n"
        b"Subject: " + subject.encode() + b"\r\nMessage-ID: <" + subject.encode()
        + b"@remote.example>\r\n\r\n" + body
    )
