"""A connection as a protocol session sees it: bounded reads with timeouts, writes, STARTTLS.

Limits live here, in the read loop, not in command handlers (CONVENTIONS habit 9):

- :meth:`Stream.readline` never holds more than ``max_length`` bytes of one line (plus one read
  chunk); an over-long line is consumed and discarded, then :class:`LineTooLong` is raised so
  the session can answer with an error and carry on with the next line.
- Every read has a deadline; :class:`IdleTimeout` when it passes.
- End of stream is always :class:`ConnectionClosed` (never ``b""``), so a session loop cannot
  spin on an empty read; a partial last line without its line ending is dropped.
- :meth:`Stream.start_tls` drops whatever the client sent after the STARTTLS command and
  before the handshake (CVE-2011-0411 command injection: RFC 3207 §4.2, RFC 2595 §3.1).
- Output is coalesced: :meth:`Stream.write` collects bytes and hands them to the socket in
  one piece when the session waits for input, drains, closes, or has 64 KiB queued (one
  system call per response, not per line: a FETCH of 20 messages was 20 sends). While a
  read is waiting, writes go out at once (IDLE updates, SMTP replies of finished commits).
- :meth:`Stream.start_compression` (IMAP COMPRESS=DEFLATE) swaps the functions that read
  from and write to the connection for :class:`~mailstead.net.deflate.Deflate`'s; a
  stream that never compresses calls the reader's and writer's own, with nothing between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from mailstead.core.errors import MailsteadError
from mailstead.core.log import ConnectionLog
from mailstead.net.channel_binding import channel_bindings
from mailstead.net.deflate import Deflate
from mailstead.net.tls import describe_tls

_CHUNK = 64 * 1024
_OUTPUT_FLUSH = 64 * 1024  # queued output handed to the socket at once above this
_log = logging.getLogger("mailstead.net")


class StreamError(MailsteadError):
    """Base for conditions a session meets while talking to its peer."""


class ConnectionClosed(StreamError):
    """The peer closed the connection, or it broke (reset, TLS error)."""


class IdleTimeout(StreamError):
    """A read (or a write waiting on the peer) took longer than its deadline."""


class DeadlineExceeded(IdleTimeout):
    """A read ran into an overall deadline it was given (``until``: logging in, a whole
    message), rather than into the idle timeout."""


class LineTooLong(StreamError):
    """A line exceeded the limit; it has been consumed and dropped, the stream is usable."""

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(f"line of {length} bytes exceeds limit of {limit}")


class TLSHandshakeError(ConnectionClosed):
    """The TLS handshake failed; the connection is unusable afterwards."""


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Turn the many ways a socket can break into one exception for the session."""
    try:
        yield
    except (ConnectionError, ssl.SSLError, OSError) as exc:
        raise ConnectionClosed(str(exc) or type(exc).__name__) from exc


class Stream:
    """Wraps a StreamReader/StreamWriter pair; one per protocol session.

    ``timeout`` on each read is the deadline in seconds for that call; ``None`` means the
    stream's ``idle_timeout`` (sessions change it, e.g. IMAP IDLE), ``math.inf`` means none.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        session_id: str,
        logger: logging.Logger | None = None,
        idle_timeout: float = 300.0,
        write_timeout: float = 120.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._buf = bytearray()
        self._out: list[bytes] = []  # written, not yet handed to the transport
        self._out_size = 0
        self._reading = False  # a read is waiting on the peer: writes go out at once
        # Where reads come from and writes go: the reader and writer themselves, or the
        # compression layer once it is on (start_compression).
        self._recv: Callable[[int], Awaitable[bytes]] = reader.read
        self._send: Callable[[bytes], None] = writer.write
        self._deflate: Deflate | None = None
        self.session_id = session_id
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        peer = self.peer
        shown = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self.log = ConnectionLog(logger or _log, session_id, shown)

    # -- addresses and TLS state ---------------------------------------------------------

    @property
    def peer(self) -> tuple[str, int]:
        """(ip, port) of the client; IPv6 scope and flow info are dropped."""
        return _address(self._writer.get_extra_info("peername"))

    @property
    def local(self) -> tuple[str, int]:
        return _address(self._writer.get_extra_info("sockname"))

    @property
    def is_tls(self) -> bool:
        return self._writer.get_extra_info("ssl_object") is not None

    @property
    def channel_bindings(self) -> dict[str, bytes]:
        """The TLS channel bindings SCRAM-SHA-256-PLUS can use here; empty without TLS."""
        return channel_bindings(self._writer.get_extra_info("ssl_object"))

    @property
    def tls_info(self) -> str:
        """``"TLSv1.3 TLS_AES_256_GCM_SHA384"`` or "" for plaintext."""
        return describe_tls(self._writer.get_extra_info("ssl_object"))

    @property
    def at_eof(self) -> bool:
        return not self._buf and self._reader.at_eof() and not self._compressed_pending()

    @property
    def compressed(self) -> bool:
        """Whether COMPRESS is on (RFC 4978), here or in the TLS layer below."""
        if self._deflate is not None:
            return True
        ssl_object = self._writer.get_extra_info("ssl_object")
        return ssl_object is not None and ssl_object.compression() is not None

    def _compressed_pending(self) -> int:
        return 0 if self._deflate is None else self._deflate.pending

    # -- reading --------------------------------------------------------------------------

    def _deadline(self, seconds: float) -> asyncio.Timeout:
        return asyncio.timeout(None if math.isinf(seconds) else seconds)

    def _limit(self, timeout: float | None, until: float | None) -> tuple[float, bool]:
        """(seconds one read may wait, whether ``until`` cut it): the idle ``timeout`` (the
        stream's by default), or less when an overall deadline ``until`` (event-loop time)
        is nearer (None or infinity: no deadline). Raises DeadlineExceeded once ``until``
        has passed, even with input waiting: the deadline ends the exchange, not only the
        waiting."""
        seconds = self.idle_timeout if timeout is None else timeout
        if until is None or math.isinf(until):
            return seconds, False
        left = until - asyncio.get_running_loop().time()
        if left <= 0:
            raise DeadlineExceeded("deadline passed")
        return (left, True) if left < seconds else (seconds, False)

    @staticmethod
    def _timed_out(cut: bool) -> IdleTimeout:
        if cut:
            return DeadlineExceeded("deadline passed")
        return IdleTimeout("peer stopped sending data")

    async def _fill(self) -> None:
        data = await self._read_chunk(_CHUNK)
        if not data:
            raise ConnectionClosed("peer closed the connection")
        self._buf += data

    async def readline(
        self, max_length: int, timeout: float | None = None, *, until: float | None = None
    ) -> bytes:
        """One line including its ending (CRLF or bare LF).

        ``max_length`` counts the line ending too (RFC 5321 §4.5.3.1.4 counts the CRLF in
        its 512). The timeout covers the whole line, so a client dribbling one byte at a
        time cannot hold a session open forever (slowloris); ``until`` is an overall
        deadline (see :meth:`_limit`).
        """
        seconds, cut = self._limit(timeout, until)
        end = self._buf.find(b"\n")
        if 0 <= end < max_length:  # pipelined: the line is here already, no timer needed
            line = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            return line
        try:
            async with self._deadline(seconds):
                return await self._readline(max_length)
        except TimeoutError:
            if cut:
                raise DeadlineExceeded("deadline passed") from None
            raise IdleTimeout(f"no complete line within {seconds:g}s") from None

    async def _readline(self, max_length: int) -> bytes:
        searched = 0
        while True:
            end = self._buf.find(b"\n", searched)
            if end >= 0:
                if end + 1 > max_length:
                    del self._buf[: end + 1]
                    raise LineTooLong(end + 1, max_length)
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return line
            if len(self._buf) >= max_length:
                await self._discard_line(max_length)
            searched = len(self._buf)
            await self._fill()

    async def _discard_line(self, max_length: int) -> None:
        """Consume the rest of an over-long line without keeping it, then raise."""
        dropped = len(self._buf)
        self._buf.clear()
        while True:
            await self._fill()
            end = self._buf.find(b"\n")
            if end >= 0:
                dropped += end + 1
                del self._buf[: end + 1]
                raise LineTooLong(dropped, max_length)
            dropped += len(self._buf)
            self._buf.clear()

    async def readexactly(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes (IMAP literal, BDAT chunk); ConnectionClosed if EOF comes first.

        The deadline is per chunk received (idle time), not for the whole transfer, so a big
        literal over a slow link is not cut off while bytes keep arriving.
        """
        out = bytearray()
        async for chunk in self.iter_exactly(n, timeout):
            out += chunk
        return bytes(out)

    async def iter_exactly(
        self, n: int, timeout: float | None = None, *, until: float | None = None
    ) -> AsyncIterator[bytes]:
        """Yield ``n`` bytes in pieces of at most 64 KiB (a BDAT chunk, an IMAP literal).
        ``timeout`` is idle time per piece; ``until`` an overall deadline (:meth:`_limit`)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        remaining = n
        if self._buf and remaining:
            take = min(remaining, len(self._buf))
            piece = bytes(self._buf[:take])
            del self._buf[:take]
            remaining -= take
            yield piece
        while remaining:
            seconds, cut = self._limit(timeout, until)
            try:
                async with self._deadline(seconds):
                    # Never ask for more than the literal: what follows it stays in the
                    # reader for readline (and under TLS, for the next command).
                    data = await self._read_chunk(min(remaining, _CHUNK))
            except TimeoutError:
                raise self._timed_out(cut) from None
            if not data:
                raise ConnectionClosed(f"peer closed with {remaining} of {n} bytes unread")
            remaining -= len(data)
            yield data

    async def read_some(
        self, max_bytes: int = _CHUNK, timeout: float | None = None, *,
        until: float | None = None,
    ) -> bytes:
        """Up to ``max_bytes`` of whatever has arrived, waiting only if nothing has.

        For bulk data whose end is found by scanning (SMTP DATA looks for CRLF.CRLF with
        ``bytes.find``) rather than line by line; what was read past the end goes back with
        :meth:`unread`. ``timeout`` is idle time, ``until`` an overall deadline, as for
        :meth:`iter_exactly`.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        seconds, cut = self._limit(timeout, until)
        if not self._buf:
            try:
                if math.isinf(seconds):
                    await self._fill()  # no deadline: no timer to arm and cancel
                else:
                    async with asyncio.timeout(seconds):
                        await self._fill()
            except TimeoutError:
                raise self._timed_out(cut) from None
        piece = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        return piece

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the buffer (read past the end of SMTP DATA).

        They count as pending input, so :meth:`start_tls` discards them like any other
        bytes received before the handshake.
        """
        self._buf[:0] = data

    def pending_bytes(self) -> int:
        """Bytes received but not yet consumed by a read (ours plus asyncio's buffer)."""
        # StreamReader has no public "how much is buffered"; _buffer is stable since 3.4.
        return (len(self._buf) + len(self._reader._buffer)  # type: ignore[attr-defined]
                + self._compressed_pending())

    def discard_pending(self) -> int:
        """Drop every buffered unread byte; returns how many were dropped."""
        dropped = self.pending_bytes()
        self._buf.clear()
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        if self._deflate is not None:
            self._deflate.discard_pending()
        return dropped

    # -- writing --------------------------------------------------------------------------

    async def _read_chunk(self, limit: int) -> bytes:
        """One read from the socket. Whatever we wrote goes out first: a session that waits
        for the client has always said everything it had to say."""
        self._flush_output()
        self._reading = True
        try:
            with _mapped_errors():
                return await self._recv(limit)
        finally:
            self._reading = False

    def write(self, data: bytes) -> None:
        """Queue bytes; a write to a broken connection is silently dropped (reads will fail)."""
        if self._writer.is_closing():
            return
        if len(data) >= _OUTPUT_FLUSH:
            # A large piece (a message body) goes to the transport as it is: joined with
            # what is queued, it would be copied once more for nothing.
            self._flush_output()
            self._send(data)
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._reading or self._out_size >= _OUTPUT_FLUSH:
            self._flush_output()

    def _flush_output(self) -> None:
        """Hand the queued output to the transport in one piece (it sends at once if it can)."""
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if not self._writer.is_closing():
            self._send(data)

    def output_backlog(self) -> int:
        """Bytes written but not yet taken by the peer (ours plus the transport's buffer):
        what a session that pushes unsolicited data checks to notice a client that stopped
        reading."""
        return self._out_size + self._writer.transport.get_write_buffer_size()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the peer takes our output; IdleTimeout if it stops reading for too long."""
        self._flush_output()
        seconds = self.write_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(None if math.isinf(seconds) else seconds):
                with _mapped_errors():
                    await self._writer.drain()
        except TimeoutError:
            raise IdleTimeout("peer stopped reading our output") from None

    async def close(self, timeout: float = 5.0) -> None:
        """Close politely (flush, TLS close_notify) but never raise and never hang."""
        transport = self._writer.transport
        self._flush_output()
        try:
            if not self._writer.is_closing():
                self._writer.close()
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()
        except Exception:  # a dead or stuck peer is no error at this point
            transport.abort()
        except asyncio.CancelledError:
            transport.abort()
            raise

    def abort(self) -> None:
        """Drop the connection at once (used when cancelling stragglers)."""
        self._out.clear()
        self._out_size = 0
        self._writer.transport.abort()

    # -- COMPRESS -------------------------------------------------------------------------

    def start_compression(self) -> None:
        """Compress both directions from here on (RFC 4978 §3). Call right after queueing
        the command's OK, which goes out as it is; what the client sent after the command
        was already compressed, and is the first input of the decompressor."""
        if self._deflate is not None:
            raise ValueError("compression is already on")
        self._flush_output()
        pending = bytes(self._buf)
        self._buf.clear()
        self._deflate = Deflate(self._reader, self._writer, self.log, pending)
        self._recv = self._deflate.read
        self._send = self._deflate.write

    # -- STARTTLS -------------------------------------------------------------------------

    async def start_tls(self, ssl_context: ssl.SSLContext, handshake_timeout: float = 30.0) -> int:
        """Upgrade to TLS as the server; returns how many pipelined plaintext bytes were dropped.

        Call after writing the protocol's "go ahead" reply. Any bytes the client pipelined
        after STARTTLS were sent before the encryption and must not be executed as if they
        came over TLS (RFC 3207 §4.2, RFC 2595 §3.1, RFC 8314 CVE-2011-0411 class).
        """
        await self.drain()
        # No await between discarding and handing the transport to the SSL protocol below:
        # StreamWriter.start_tls only awaits drain(), which does not yield when not paused,
        # and loop.start_tls swaps the protocol before its first await.
        dropped = self.discard_pending()
        if dropped:
            self.log.warning("dropped %d bytes pipelined before TLS handshake", dropped)
        await self._handshake(ssl_context, None, handshake_timeout)
        return dropped

    async def _handshake(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> None:
        """The TLS handshake over this connection, either side; on failure the connection
        is aborted and TLSHandshakeError raised."""
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname,
                                             ssl_handshake_timeout=timeout)
        except TimeoutError:
            self.abort()
            raise TLSHandshakeError("TLS handshake timed out") from None
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self.abort()
            raise TLSHandshakeError(f"TLS handshake failed: {exc}") from exc

    async def start_client_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None,
        handshake_timeout: float = 30.0,
    ) -> int:
        """Upgrade to TLS as the client (SMTP STARTTLS outbound); returns the plaintext
        bytes dropped.

        Call after the server's "go ahead" reply. ``server_hostname`` goes out as SNI and is
        what a verifying context checks the certificate against. Whatever the server sent
        after its go-ahead came before the encryption, and must not be read as if it came
        over TLS (RFC 3207 §4.2: the STARTTLS response injection of CVE-2011-0411's family).
        """
        if ssl_context.check_hostname and not server_hostname:
            # asyncio would then skip the name check without a word.
            raise ValueError("a context that checks host names needs server_hostname")
        await self.drain()
        dropped = self.discard_pending()
        if dropped:
            self.log.warning("dropped %d bytes the server sent before the TLS handshake",
                             dropped)
        await self._handshake(ssl_context, server_hostname, handshake_timeout)
        return dropped


def _address(info: object) -> tuple[str, int]:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return ("unknown", 0)
