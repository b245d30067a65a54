"""One message's octets as the layers below the front ends see them: header lines that
delivery prepends, then the received octets, in memory or in a spool file
(:mod:`mailstead.core.spool` writes them).

Pure data and blocking reads, no event loop: the IMAP parser (sans-I/O) carries one for a
spooled APPEND literal, and the store reads a spooled message on its worker threads.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

#: What the header-reading callers (loop detection, the header From) get at most.
HEAD_LIMIT = 256 * 1024
#: Pieces a spooled message is read back in.
READ_PIECE = 256 * 1024


class MessageData:
    """The octets of one message: ``prefix`` (header lines delivery added) and then the
    received octets, ``body`` in memory or ``path`` (the spool file) on disk.

    Reading a spooled message goes to the file: :meth:`pieces` and :meth:`read` are
    blocking and belong on a worker thread; :attr:`head` (its first ``HEAD_LIMIT``
    octets) is kept in memory for the callers that only need the header.
    """

    __slots__ = ("_body_size", "_head", "body", "path", "prefix")

    def __init__(
        self, prefix: bytes, body: bytes | None, path: Path | None, body_size: int,
        head: bytes | None = None,
    ) -> None:
        if (body is None) == (path is None):
            raise ValueError("message data is in memory or in a file, not both")
        self.prefix = prefix
        self.body = body
        self.path = path
        self._body_size = body_size
        self._head = head

    @classmethod
    def of(cls, data: bytes | MessageData) -> MessageData:
        return data if isinstance(data, MessageData) else cls(b"", data, None, len(data))

    def __len__(self) -> int:
        return len(self.prefix) + self._body_size

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"<MessageData {len(self)} octets in {where}>"

    @property
    def in_memory(self) -> bool:
        return self.body is not None

    def prefixed(self, lines: bytes) -> MessageData:
        """The same message with ``lines`` in front (they share the spool file)."""
        head = None if self._head is None else lines + self._head
        return MessageData(lines + self.prefix, self.body, self.path, self._body_size, head)

    @property
    def head(self) -> bytes:
        """The first octets (at least ``HEAD_LIMIT``, or the whole message when shorter)."""
        if self.body is not None:
            return self.prefix + self.body[:HEAD_LIMIT]
        if self._head is None:
            assert self.path is not None
            with self.path.open("rb") as f:
                self._head = self.prefix + f.read(HEAD_LIMIT)
        return self._head

    def pieces(self, size: int = READ_PIECE) -> Generator[bytes]:
        """The whole message in pieces of about ``size`` octets (blocking for a file)."""
        if self.prefix:
            yield self.prefix
        if self.body is not None:
            if self.body:
                yield self.body
            return
        assert self.path is not None
        left = self._body_size
        with self.path.open("rb") as f:
            while left > 0:
                piece = f.read(min(size, left))
                if not piece:
                    raise OSError(f"spool file {self.path} is shorter than its message")
                left -= len(piece)
                yield piece

    def read(self) -> bytes:
        """The whole message as one bytes object (blocking for a file)."""
        if self.body is not None:
            return self.prefix + self.body if self.prefix else self.body
        return b"".join(self.pieces())
