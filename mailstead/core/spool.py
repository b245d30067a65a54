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
from pathlib import Path

from mailstead.core.budget import InputBudget, Reservation
from mailstead.core.message_data import HEAD_LIMIT, MessageData

log = logging.getLogger("mailstead.spool")

#: Received octets kept in memory before a message moves to a spool file.
DEFAULT_THRESHOLD = 1024 * 1024

_counter = itertools.count()


class SpoolDir:
    """Where message data beyond ``threshold`` octets goes, and the two budgets it draws
    on: ``memory`` for what stays in memory, ``disk`` for the files. ``path`` None keeps
    everything in memory (tests of the layers below, tools without a data directory)."""

    def __init__(
        self,
        path: Path | None,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        memory: InputBudget | None = None,
        disk: InputBudget | None = None,
    ) -> None:
        self.path = path
        self.threshold = threshold
        self.memory = memory
        self.disk = disk

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

    def spool(self) -> Spool:
        return Spool(self)

    def _new_file(self) -> Path:
        assert self.path is not None
        return self.path / f"{os.getpid()}-{next(_counter)}.msg"


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

    def __init__(self, where: SpoolDir) -> None:
        self._where = where
        self._memory = Reservation(where.memory)
        self._disk = Reservation(where.disk)
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
        if len(self._head) < HEAD_LIMIT:
            self._head += data[: HEAD_LIMIT - len(self._head)]
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

    def _remove_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.unlink(missing_ok=True)
            self._file = None
            self._written = 0
