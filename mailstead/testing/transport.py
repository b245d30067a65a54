"""An in-memory connection for session tests that read like transcripts.

The middle tier of the tests (CONVENTIONS habit 12): a real protocol session runs on a real
:class:`~mailstead.net.stream.Stream`, but the other end is a script, not a socket. What the
script sends is fed to the session's reader; what the session writes is collected and read
back line by line. No port, no thread, no sleep: a read waits for the session's output
itself (an event set on every write), with a deadline so a test that expects a line the
session never sends fails in seconds instead of hanging.

    stream, peer = memory_connection()
    task = asyncio.create_task(serve(handler, stream))
    imap = IMAPTranscript(peer)
    await imap.greeting()
    untagged = await imap.transact("OK", "UID EXPUNGE 1:3")
    assert untagged == ["* VANISHED 1:3"]

TLS cannot be negotiated over this transport (``loop.start_tls`` needs a socket); tests of
STARTTLS and implicit TLS stay on real sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Any

from mailstead.net.stream import Stream

#: How long a script waits for output it expects before the test fails.
READ_TIMEOUT = 5.0
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class _MemoryTransport(asyncio.Transport):
    """The session's side of the connection: writes go to the peer's buffer."""

    def __init__(self, peer: ScriptedPeer, extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._peer = peer
        self._closing = False
        self._protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._peer._received(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._peer._server_closed()
        if self._protocol is not None:
            asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._peer.unread


class ScriptedPeer:
    """The script's end: :meth:`send` what a client would, read what the server said."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float = READ_TIMEOUT) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self._event = asyncio.Event()
        self._closed = False
        self.timeout = timeout
        #: Everything the server wrote, for a failing test to print.
        self.transcript = bytearray()
        #: Octets the transport reports as still buffered: a script sets it to play a
        #: client that stopped reading (what a server bounds its pushed output by).
        self.unread = 0

    # -- the transport calls these ---------------------------------------------------------
    def _received(self, data: bytes) -> None:
        self._buffer += data
        self.transcript += data
        self._event.set()

    def _server_closed(self) -> None:
        self._closed = True
        self._event.set()

    # -- the script uses these -------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        """Bytes from the client; a ``str`` is sent as UTF-8, exactly as given."""
        self._reader.feed_data(data.encode() if isinstance(data, str) else data)

    def send_line(self, line: bytes | str) -> None:
        """One command line; CRLF is added."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def hang_up(self) -> None:
        """The client closes its side (the session sees end of stream)."""
        self._reader.feed_eof()

    @property
    def closed(self) -> bool:
        """The server closed the connection (after whatever it wrote)."""
        return self._closed

    async def _wait(self, ready: Any) -> None:
        async with asyncio.timeout(self.timeout):
            while not ready():
                if self._closed:
                    raise ConnectionError(
                        f"server closed the connection; it wrote {bytes(self.transcript)!r}"
                    )
                self._event.clear()
                await self._event.wait()

    async def readline(self) -> bytes:
        """The next line the server wrote, with its line ending."""
        try:
            await self._wait(lambda: b"\n" in self._buffer)
        except TimeoutError:
            raise AssertionError(
                f"no line from the server within {self.timeout}s; pending "
                f"{bytes(self._buffer)!r}"
            ) from None
        end = self._buffer.index(b"\n") + 1
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    async def read_exactly(self, n: int) -> bytes:
        try:
            await self._wait(lambda: len(self._buffer) >= n)
        except TimeoutError:
            raise AssertionError(
                f"expected {n} bytes within {self.timeout}s; got {bytes(self._buffer)!r}"
            ) from None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def wait_closed(self) -> None:
        """Wait until the server closes; what it wrote first stays readable."""
        async with asyncio.timeout(self.timeout):
            while not self._closed:
                self._event.clear()
                await self._event.wait()

    def pending(self) -> bytes:
        """What the server wrote that the script has not read yet."""
        return bytes(self._buffer)


def memory_connection(
    *,
    peer: tuple[str, int] = ("192.0.2.10", 49152),
    local: tuple[str, int] = ("192.0.2.1", 143),
    idle_timeout: float = 300.0,
    session_id: str = "test-1",
) -> tuple[Stream, ScriptedPeer]:
    """A :class:`Stream` for a session and the :class:`ScriptedPeer` that talks to it. Call
    inside a running event loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    scripted = ScriptedPeer(reader)
    transport = _MemoryTransport(scripted, {"peername": peer, "sockname": local})
    protocol = asyncio.StreamReaderProtocol(reader)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return Stream(reader, writer, session_id=session_id, idle_timeout=idle_timeout), scripted


async def serve(handler: Callable[[Stream], Awaitable[None]], stream: Stream) -> None:
    """What a :class:`~mailstead.net.listener.Listener` does with each connection: run the
    protocol's handler, then close the stream (so :meth:`ScriptedPeer.wait_closed`
    returns once the session has ended)."""
    try:
        await handler(stream)
    finally:
        await stream.close()


# -- transcripts, one per protocol ----------------------------------------------------------


def _text(line: bytes) -> str:
    return line.decode("utf-8", "surrogateescape").rstrip("\r\n")


class IMAPTranscript:
    """IMAP as a transcript: ``transact("OK", "SELECT INBOX")`` sends a tagged command and
    returns the untagged lines before its tagged reply (literals inlined, CRLF removed);
    the reply's status must be the one given."""

    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer
        self._tags = (f"t{n}" for n in itertools.count(1))
        self.tag = ""  # the tag of the last command sent
        self.last_reply = ""

    async def line(self) -> str:
        """One response line with any literals it announces read into it."""
        raw = await self.peer.readline()
        match = _LITERAL.search(raw)
        while match is not None:
            raw += await self.peer.read_exactly(int(match.group(1)))
            rest = await self.peer.readline()
            raw += rest
            match = _LITERAL.search(rest)
        return _text(raw)

    async def greeting(self) -> str:
        return await self.line()

    async def transact(self, status: str, command: str) -> list[str]:
        self.tag = tag = next(self._tags)
        self.peer.send_line(f"{tag} {command}")
        return await self.reply(tag, status)

    async def reply(self, tag: str, status: str) -> list[str]:
        """The untagged lines up to ``tag``'s reply, which must have ``status``."""
        untagged: list[str] = []
        while True:
            line = await self.line()
            if line.startswith(tag + " "):
                self.last_reply = line
                got = line.split(" ", 2)[1]
                assert got == status, f"{line!r} (expected {status}); before it: {untagged}"
                return untagged
            untagged.append(line)

    def next_tag(self) -> str:
        return next(self._tags)


class POP3Transcript:
    """POP3 as a transcript: ``transact("+OK", "STAT")`` returns the status line, and for a
    multi-line answer (``multiline=True``) the lines of its body, dot-unstuffed."""

    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer

    async def line(self) -> str:
        return _text(await self.peer.readline())

    async def greeting(self) -> str:
        return await self.line()

    async def transact(
        self, status: str, command: str, *, multiline: bool = False
    ) -> list[str]:
        self.peer.send_line(command)
        first = await self.line()
        assert first.split(" ", 1)[0] == status, f"{first!r} (expected {status})"
        lines = [first]
        if multiline and status == "+OK":
            while (line := await self.line()) != ".":
                lines.append(line[1:] if line.startswith("..") else line)
        return lines


class SMTPTranscript:
    """SMTP as a transcript: ``transact(250, "MAIL FROM:<a@b.example>")`` returns the reply
    lines (the text after the code); the code must be the one given."""

    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer

    async def reply(self, code: int) -> list[str]:
        lines: list[str] = []
        while True:
            line = _text(await self.peer.readline())
            lines.append(line[4:])
            if line[3:4] != "-":
                assert line[:3] == str(code), f"{line!r} (expected {code}); before: {lines}"
                return lines

    async def greeting(self) -> list[str]:
        return await self.reply(220)

    async def transact(self, code: int, command: str) -> list[str]:
        self.peer.send_line(command)
        return await self.reply(code)


__all__ = [
    "IMAPTranscript",
    "POP3Transcript",
    "SMTPTranscript",
    "ScriptedPeer",
    "memory_connection",
    "serve",
]
