"""A raw line client, for what a real client would never do (stop mid-message, hold a
literal, trickle): the tests of deadlines and of the memory budget drive the server
with it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


class LineClient:
    def __init__(self, port: int, source: str | None = None) -> None:
        """Connect to ``port`` on loopback, from ``source`` (another 127.x address) if
        given: per-address limits see another client."""
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=30,
            source_address=(source, 0) if source is not None else None)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def until(self, prefix: bytes) -> bytes:
        """Lines up to the first that starts with ``prefix``; that one."""
        while True:
            line = self.file.readline()
            assert line, f"closed before a line starting {prefix!r}"
            if line.startswith(prefix):
                return line

    def closed(self) -> bool:
        """True once the server closed the connection (after any last lines)."""
        while self.file.readline():
            pass
        return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def connect() -> Iterator[type[LineClient]]:
    """``connect(port)``: a LineClient closed at the end of the test."""
    opened: list[LineClient] = []

    class Tracked(LineClient):
        def __init__(self, port: int, source: str | None = None) -> None:
            super().__init__(port, source)
            opened.append(self)

    yield Tracked
    for client in opened:
        client.close()
