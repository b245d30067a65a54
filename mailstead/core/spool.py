"""Message data on its way in: in memory while small, in a spool file beyond a threshold.

A 41 MB message once cost 205 MB of peak memory to receive, and sixty slow senders of
unfinished 45 MiB messages would have held 2.7 GB between them. Here a front end writes what
it receives (SMTP DATA and BDAT, an IMAP APPEND literal, an imported message) into a
:class:`Spool`: up to ``threshold`` octets stay in memory, taken from the process's memory
budget; past it everything goes to a file in the spool directory, taken from the disk budget.
Either budget spent refuses the message for now (the caller answers "try again later").

The finished message is a :class:`~mailstead.core.message_data.MessageData`, as the
layers below see it: a few header lines that delivery prepends (trace headers, a DKIM
signature) followed by the received octets, in memory or in the file. The store streams
it into its body file and hashes it on the way (``store/sql/bodies.py``); only the MIME
parse and a DKIM signature read a large message whole, off the event loop.

The front end owns the spool and removes its file once the message is stored or refused
(:meth:`Spool.close`, in a ``finally``); files left by a crash are removed when the server
starts (:meth:`SpoolDir.clear`). File writes run on a worker thread: the event loop never
waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from mailstead.core.budget import InputBudget, Reservation
from mailstead.core.message_data import HEAD_LIMIT, READ_PIECE, MessageData

log = logging.getLogger("mailstead.spool")

#: Received octets kept in memory before a message moves to a spool file.
DEFAULT_THRESHOLD = 1024 * 1024

_counter = itertools.count()


class SpoolDir:
    """Where message data beyond ``threshold`` octets goes, and the budgets it draws on:
    ``memory`` for what stays in memory, ``disk`` for the files, and ``per_client`` octets
    of the files for any one client (its address, or its IPv6 /64), so that one source
    cannot take the whole disk budget from everyone else. ``path`` None keeps everything
    in memory (tests of the layers below, tools without a data directory)."""

    def __init__(
        self,
        path: Path | None,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        memory: InputBudget | None = None,
        disk: InputBudget | None = None,
        per_client: int = 0,
    ) -> None:
        self.path = path
        self.threshold = threshold
        self.memory = memory
        self.disk = disk
        self.per_client = per_client
        # The clients with a spool open: their budget, and how many spools share it.
        self._clients: dict[str, tuple[InputBudget, int]] = {}

    def clear(self) -> int:
        """Create the directory, or empty it of the files a previous run left (a crash
        between receiving and storing: that message was never acknowledged). Files of a
        process still running (their name starts with its pid) stay. Returns how many
        were removed."""
        if self.path is None:
            return 0
        self.path.mkdir(parents=True, exist_ok=True)
        removed = 0
        for leftover in self.path.iterdir():
            owner = leftover.name.partition("-")[0]
            if not leftover.is_file() or (owner.isdigit() and _running(int(owner))):
                continue
            leftover.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d unfinished message(s) from %s", removed, self.path)
        return removed

    def spool(self, client: str | None = None) -> Spool:
        """A spool for one message from ``client`` (None: not counted per client)."""
        if client is None or not self.per_client:
            return Spool(self, None, None)
        budget, spools = self._clients.get(client, (None, 0))
        if budget is None:
            budget = InputBudget(self.per_client, "limits.max_spool_per_client",
                                 f"message data in spool files from {client}")
        self._clients[client] = (budget, spools + 1)
        return Spool(self, client, budget)

    def _closed(self, client: str | None) -> None:
        """A spool of ``client`` is closed; its budget goes with the last one."""
        if client is None or client not in self._clients:
            return
        budget, spools = self._clients[client]
        if spools <= 1:
            del self._clients[client]
        else:
            self._clients[client] = (budget, spools - 1)

    def _new_file(self) -> Path:
        assert self.path is not None
        return self.path / f"{os.getpid()}-{next(_counter)}.msg"


class PieceTransform(Protocol):
    """Turns a message's octets, fed in pieces of any split, into others (Spool.rewrite)."""

    def feed(self, piece: bytes) -> bytes: ...

    def end(self) -> bytes: ...


def _keep_head(head: bytearray, data: bytes) -> None:
    """Add to ``head`` what it lacks of its first ``HEAD_LIMIT`` octets from ``data``."""
    if len(head) < HEAD_LIMIT:
        head += data[: HEAD_LIMIT - len(head)]


def _transformed(source: BinaryIO, transform: PieceTransform) -> Iterator[bytes]:
    """``transform`` of what ``source`` holds, piece by piece, its end included."""
    while piece := source.read(READ_PIECE):
        yield transform.feed(piece)
    yield transform.end()


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Whether process ``pid`` is alive (another worker's spool files are its own)."""
    if pid == os.getpid():
        return False  # this process has just started: whatever it left is from before
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """One message being received. :meth:`write` what arrives; :meth:`finish` gives the
    :class:`MessageData`; :meth:`close` (always) gives the budgets back and removes the file.

    A write the budgets cannot hold makes the spool ``refused``: it keeps nothing more, and
    the caller answers "try again later" once the message has been read to its end.
    """

    def __init__(
        self, where: SpoolDir, client: str | None = None, share: InputBudget | None = None
    ) -> None:
        self._where = where
        self._client = client
        self._memory = Reservation(where.memory)
        self._disk = Reservation(where.disk, share)  # the process's and its client's
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._head = bytearray()
        self._file: Path | None = None
        self._written = 0  # octets in the file
        self.size = 0
        self.refused = False
        self._closed = False

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def expect(self, size: int) -> bool:
        """Reserve the disk for a message whose size is known before it arrives (an IMAP
        literal), so it is refused before the client sends a byte; False if refused."""
        if self.refused or not self._disk.take(size):
            self.refused = True
            return False
        return True

    async def write(self, data: bytes) -> bool:
        """Keep ``data``; False once the budgets have refused any of this message."""
        if self.refused or self._closed:
            return False
        if not data:
            return True
        if not self._memory.take(len(data)):
            return self._refuse()
        self._pieces.append(data)
        self._buffered += len(data)
        self.size += len(data)
        _keep_head(self._head, data)
        if self._buffered > self._where.threshold and self._where.path is not None:
            return await self._flush()
        return True

    def _refuse(self) -> bool:
        self.refused = True
        self._drop_pieces()
        self._remove_file()
        self._disk.close()
        return False

    def _drop_pieces(self) -> None:
        self._pieces.clear()
        self._memory.give_back(self._buffered)
        self._buffered = 0

    async def _flush(self) -> bool:
        """Move the buffered octets to the file (made at the first flush)."""
        pending = self._buffered
        unreserved = self._written + pending - self._disk.size  # expect() may have paid
        if unreserved > 0 and not self._disk.take(unreserved):
            return self._refuse()
        pieces, self._pieces = self._pieces, []
        if self._file is None:
            self._file = self._where._new_file()
        path = self._file

        def append() -> None:
            with path.open("ab") as out:
                out.writelines(pieces)

        try:
            await asyncio.to_thread(append)
        except OSError:
            # A full disk, a vanished directory: this message cannot be kept; the caller
            # answers "try again later" as for a spent budget.
            log.exception("cannot write message data to %s", path)
            self._memory.give_back(pending)
            self._buffered = 0
            return self._refuse()
        self._memory.give_back(pending)
        self._buffered = 0
        self._written += pending
        return True

    async def rewrite(self, transform: PieceTransform) -> bool:
        """Replace what was written with ``transform`` of it, piece by piece: on the event
        loop while it is in memory (at most the threshold), on a worker thread into a new
        file otherwise. SMTP writes DATA as it arrives and undoes the dot-stuffing here,
        once the message is complete, so nothing of an unfinished message is decoded.
        False when the budgets cannot hold the result (the message is refused)."""
        if self.refused or self._closed:
            return False
        if self._file is None:
            pieces = [transform.feed(piece) for piece in self._pieces]
            pieces.append(transform.end())
            size = sum(map(len, pieces))
            if size > self._buffered and not self._memory.take(size - self._buffered):
                return self._refuse()
            self._memory.give_back(max(0, self._buffered - size))
            self._pieces, self._buffered, self.size = [p for p in pieces if p], size, size
            self._head = bytearray(b"".join(self._pieces)[:HEAD_LIMIT])
            return True
        if self._buffered and not await self._flush():
            return False
        # Both files exist while it runs; the copy is not taken from the disk budget, or a
        # message near limits.max_message_size would need twice that to be received. The
        # copies at once are as many as the worker threads.
        old, written = self._file, self._written
        new = self._where._new_file()

        def run() -> tuple[int, bytes]:
            head = bytearray()
            size = 0
            with old.open("rb") as source, new.open("wb") as target:
                for out in _transformed(source, transform):
                    target.write(out)
                    size += len(out)
                    _keep_head(head, out)
            os.replace(new, old)
            return size, bytes(head)

        try:
            size, head = await asyncio.to_thread(run)
        except OSError:
            log.exception("cannot rewrite message data in %s", old)
            with contextlib.suppress(OSError):
                new.unlink(missing_ok=True)
            return self._refuse()
        if size > written and not self._disk.take(size - written):
            return self._refuse()
        self._disk.give_back(max(0, written - size))
        self._written = self.size = size
        self._head = bytearray(head)
        return True

    async def finish(self) -> MessageData:
        """The whole message, once the last octets are written."""
        if self.refused or self._closed:
            raise ValueError("a refused or closed spool has no message")
        if self._file is None:
            body = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
            self._pieces = [body]
            return MessageData(b"", body, None, len(body), bytes(self._head))
        if self._buffered and not await self._flush():
            raise OSError("message data could not be spooled")
        return MessageData(b"", None, self._file, self._written, bytes(self._head))

    def close(self) -> None:
        """The message is over (stored, refused or dropped): budgets back, file gone."""
        self._closed = True
        self._drop_pieces()
        self._memory.close()
        self._disk.close()
        self._remove_file()
        if self._client is not None:
            self._where._closed(self._client)
            self._client = None  # closing twice counts once

    def _remove_file(self) -> None:
        if self._file is None:
            return
        path, self._file, self._written = self._file, None, 0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _unlink(path)
            return
        # Unlinking tens of megabytes frees their pages in the kernel, which takes a
        # while: not on the event loop.
        loop.run_in_executor(None, _unlink, path)
