"""Raw DEFLATE in both directions of a connection (IMAP COMPRESS=DEFLATE, RFC 4978).

:class:`Deflate` sits between :class:`~mailstead.net.stream.Stream` and the asyncio
reader/writer pair, under the stream's read buffer and above TLS (RFC 4978 §4: compress,
then encrypt). The stream swaps its read and write functions for this object's when a
session turns compression on, so a connection that never does pays nothing: no extra
layer, no extra test per write.

- Both directions are raw DEFLATE (RFC 1951, zlib ``wbits`` negative: no zlib header or
  checksum, RFC 4978 §3).
- Every write batch of the stream ends with ``Z_SYNC_FLUSH`` (RFC 4978 §4: the client must
  be able to decode each response as it arrives, or IDLE would stall).
- Memory of an idle compressed connection is bounded by the compressor's parameters:
  ``COMPRESS_WBITS`` and ``COMPRESS_MEM_LEVEL`` below (decision 0024 gives the measured
  figure). The decompressor keeps the full 32 KiB window: the client chose its window, and
  a smaller one would misread its stream.
- Inflated output per read is bounded (``limit``), with the rest of the input kept
  compressed, so a small "zip bomb" cannot expand into memory past the read buffer.
- A corrupt stream is no exception for the session: it is logged here, once, and reported
  as a reset connection, which the session treats as the client going away.
"""

from __future__ import annotations

import asyncio
import zlib

from mailstead.core.log import ConnectionLog

#: Our compressor's window: 2**12 = 4 KiB (RFC 1951 allows 2**8 to 2**15). Responses are
#: mostly short, repetitive lines; a bigger window gains little and costs 4x memory.
COMPRESS_WBITS = 12
#: zlib's memLevel (1-9, default 8): the size of its hash tables (2**(memLevel+9) octets
#: each for head and prev, roughly). 5 bounds them to 16 KiB for the connection's life.
COMPRESS_MEM_LEVEL = 5
#: zlib's default speed/ratio trade-off, as Dovecot's default imap_zlib_compress_level.
COMPRESS_LEVEL = 6
#: What we accept from the client: any window up to the largest (RFC 1951 §3.2).
_INFLATE_WBITS = -zlib.MAX_WBITS
_READ = 64 * 1024


class Deflate:
    """The compressed read and write functions of one connection (see the module doc)."""

    __slots__ = ("_compress", "_decompress", "_log", "_reader", "_tail", "_writer")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        log: ConnectionLog,
        received: bytes = b"",
    ) -> None:
        """``received``: what the stream had already read past the command that turned
        compression on; the client sent it compressed."""
        self._reader = reader
        self._writer = writer
        self._log = log
        self._compress = zlib.compressobj(
            COMPRESS_LEVEL, zlib.DEFLATED, -COMPRESS_WBITS, COMPRESS_MEM_LEVEL
        )
        self._decompress = zlib.decompressobj(_INFLATE_WBITS)
        self._tail = received  # compressed input not yet inflated

    @property
    def pending(self) -> int:
        """Compressed octets received and not yet inflated."""
        return len(self._tail)

    def discard_pending(self) -> int:
        dropped = len(self._tail)
        self._tail = b""
        return dropped

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` inflated octets; b"" at the end of the stream (the peer closed,
        or ended its DEFLATE stream). A corrupt stream raises ConnectionResetError."""
        while True:
            if self._tail:
                data = self._inflate(limit)
                if data:
                    return data
                if self._decompress.eof:
                    return b""
                if self._tail:
                    continue  # input consumed into zlib's state, nothing out yet
            raw = await self._reader.read(_READ)
            if not raw:
                return b""
            self._tail = raw

    def _inflate(self, limit: int) -> bytes:
        try:
            data = self._decompress.decompress(self._tail, limit)
        except zlib.error as exc:
            self._tail = b""
            self._log.warning("corrupt DEFLATE stream from the client (%s); closing", exc)
            raise ConnectionResetError("corrupt compressed stream") from None
        self._tail = self._decompress.unconsumed_tail
        if self._decompress.eof:
            # RFC 4978 has no end of compression: a final block ends the connection, and
            # anything after it is not IMAP.
            self._tail = b""
        return data

    def write(self, data: bytes) -> None:
        """Compress ``data`` and hand it to the transport, flushed (one write batch)."""
        self._writer.write(self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH))
