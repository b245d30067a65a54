"""Import mail from an mbox file or a Maildir (people migrate from elsewhere).

What is kept: the message bytes, the flags the source records, and the date the message
arrived (the mbox ``From `` line, the Maildir file's modification time) as INTERNALDATE.
What changes: line endings become CRLF, because IMAP serves messages in canonical form
(RFC 9051 §2.3.3: FETCH sizes and BODY[] offsets count CRLF), and mbox ``>From `` lines
lose one ``>`` (mboxrd unescaping; Python's ``mailbox`` splits messages but does not undo
the escaping its writers added).

Appends go out in concurrent batches: the store commits them in groups, so a batch costs
roughly one fsync instead of one per message. A batch holds at most ``BATCH_SIZE`` messages
and, beyond its first, ``BATCH_OCTETS``; a Maildir file larger than the size limit is
skipped without being read, and one larger than ``SPOOL_FROM`` is converted to CRLF into a
spool file piece by piece, never whole in memory (the store copies it from there). An mbox
message is read whole by Python's ``mailbox``, one at a time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import mailbox
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from mailstead.core.errors import InvalidName, NotFound, QuotaExceeded, StoreError
from mailstead.core.message_data import READ_PIECE, MessageData
from mailstead.core.types import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN
from mailstead.store.interfaces import Store

BATCH_SIZE = 32
#: A batch is also sent once its messages reach this many octets: 32 messages of up to
#: limits.max_message_size each would otherwise be over a gigabyte in memory at once.
BATCH_OCTETS = 16 * 1024 * 1024
#: A Maildir file from this size on is converted into a spool file, not read into memory.
SPOOL_FROM = 1024 * 1024
_spooled = itertools.count()

# Maildir info flags (https://cr.yp.to/proto/maildir.html); T ("trashed") is IMAP \Deleted.
MAILDIR_FLAGS = {"S": SEEN, "R": ANSWERED, "F": FLAGGED, "T": DELETED, "D": DRAFT}
# mbox Status / X-Status headers as written by mutt, pine and Python's mailbox.
MBOX_STATUS_FLAGS = {"R": SEEN}
MBOX_XSTATUS_FLAGS = {"A": ANSWERED, "F": FLAGGED, "D": DELETED, "T": DRAFT}

_BARE_LF = re.compile(rb"(?<!\r)\n")
_MBOXRD_ESCAPED = re.compile(rb"(?m)^>(>*From )")
_FROM_LINE_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+"
    r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(?P<day>\d{1,2})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?"
    r"(?:\s+(?:[A-Z]{2,5}|[+-]\d{4}))?\s+(?P<year>\d{4})"
)
_FROM_SEPARATOR = re.compile(rb"^From \S+ .*\d{1,2}:\d{2}")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One message read from the source, ready to append."""

    data: bytes | MessageData
    flags: frozenset[str]
    internaldate: datetime | None
    #: The size of a message too large to be read (its data is then empty).
    unread_size: int = 0
    #: The spool file holding ``data``, removed once the message is stored (or not).
    spooled: Path | None = None


@dataclass
class ImportReport:
    """What happened to one target folder."""

    folder: str
    imported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        noun = "message" if self.imported == 1 else "messages"
        line = f"imported {self.imported} {noun} into {self.folder}"
        total = sum(self.skipped.values())
        if total:
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.items())
            line += f" ({total} skipped: {reasons})"
        return line


def to_crlf(data: bytes) -> bytes:
    """Bare LF -> CRLF; existing CRLF and lone CR are left as they are."""
    return _BARE_LF.sub(b"\r\n", data)


# -- mbox ----------------------------------------------------------------------------------


def is_mbox(path: Path) -> bool:
    """An mbox file starts with a ``From `` separator line."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def from_line_date(line: str) -> datetime | None:
    """The ctime-style date of an mbox ``From sender date`` line, taken as UTC."""
    match = _FROM_LINE_DATE.search(line)
    if not match:
        return None
    try:
        return datetime(
            int(match["year"]),
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _header_block(data: bytes) -> bytes:
    end = re.search(rb"\r?\n\r?\n", data)
    return data[: end.start()] if end else data


def _header_value(headers: bytes, name: bytes) -> str | None:
    match = re.search(rb"(?im)^" + re.escape(name) + rb":[ \t]*([^\r\n]*)", headers)
    return match.group(1).decode("ascii", "replace").strip() if match else None


def _date_header(headers: bytes) -> datetime | None:
    value = _header_value(headers, b"Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def mbox_flags(headers: bytes) -> frozenset[str]:
    flags = set()
    for letter in _header_value(headers, b"Status") or "":
        if letter in MBOX_STATUS_FLAGS:
            flags.add(MBOX_STATUS_FLAGS[letter])
    for letter in _header_value(headers, b"X-Status") or "":
        if letter in MBOX_XSTATUS_FLAGS:
            flags.add(MBOX_XSTATUS_FLAGS[letter])
    return frozenset(flags)


def read_mbox(path: Path) -> Iterator[ImportItem]:
    """Messages of an mbox file in file order.

    ``mailbox.mbox`` splits at every line starting with ``From ``, including an unescaped
    "From time to time" in a body (mboxo writers leave those). Like mutt, a split is kept
    only when the line looks like a real separator (``From sender ... hh:mm ...``);
    otherwise the piece is glued back onto the message it was cut from.
    """
    box = mailbox.mbox(path, create=False)
    pending: tuple[bytes, bytes] | None = None
    try:
        for key in box.iterkeys():
            from_line, _, body = box.get_bytes(key, from_=True).partition(b"\n")
            if pending is not None and not _FROM_SEPARATOR.match(from_line):
                # The cut dropped the blank line before the From line; put it back.
                pending = (pending[0], pending[1] + b"\n" + from_line + b"\n" + body)
                continue
            if pending is not None:
                yield _mbox_item(*pending)
            pending = (from_line, body)
        if pending is not None:
            yield _mbox_item(*pending)
    finally:
        box.close()


def _mbox_item(from_line: bytes, body: bytes) -> ImportItem:
    body = _MBOXRD_ESCAPED.sub(rb"\1", body)
    headers = _header_block(body)
    date = from_line_date(from_line.decode("ascii", "replace")) or _date_header(headers)
    return ImportItem(to_crlf(body), mbox_flags(headers), date)


# -- Maildir -------------------------------------------------------------------------------


def is_maildir(path: Path) -> bool:
    return path.is_dir() and ((path / "cur").is_dir() or (path / "new").is_dir())


def maildir_info_flags(filename: str) -> frozenset[str]:
    """Flags from the ``:2,FLAGS`` info suffix (``!`` or ``;`` replace ``:`` on some systems)."""
    for separator in (":2,", "!2,", ";2,"):
        _, found, info = filename.rpartition(separator)
        if found:
            return frozenset(MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS)
    return frozenset()


def _crlf_copy(source: Path, target: Path) -> int:
    """``to_crlf`` of ``source`` into ``target``, piece by piece (a CR at the end of a
    piece waits for the next, so a CRLF split between two is kept); the octets written."""
    written = 0
    held_cr = False
    with source.open("rb") as src, target.open("wb") as out:
        while piece := src.read(READ_PIECE):
            if held_cr:
                piece = b"\r" + piece
            held_cr = piece.endswith(b"\r")
            converted = to_crlf(piece[:-1] if held_cr else piece)
            out.write(converted)
            written += len(converted)
        if held_cr:
            out.write(b"\r")
            written += 1
    return written


def read_maildir(
    path: Path, max_size: int = 0, spool: Path | None = None
) -> Iterator[ImportItem]:
    """Messages of one Maildir (its new/ and cur/, not its subfolders), oldest file first.

    Files are read directly rather than through ``mailbox.Maildir`` because in Python 3.11
    it exposes a message's flags and date only by parsing the whole message.
    """
    entries: list[tuple[float, str, Path]] = []
    for sub in ("new", "cur"):
        directory = path / sub
        if not directory.is_dir():
            continue
        for entry in os.scandir(directory):
            if entry.is_file() and not entry.name.startswith("."):
                entries.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
    entries.sort()
    for mtime, name, file in entries:
        flags = maildir_info_flags(name) if file.parent.name == "cur" else frozenset()
        when = datetime.fromtimestamp(mtime, tz=UTC)
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            continue  # a mail client moved it since the directory was listed
        if max_size and size > max_size:
            # CRLF only makes it longer: too big, and never read into memory.
            yield ImportItem(b"", flags, when, size)
            continue
        if spool is not None and size >= SPOOL_FROM:
            spool.mkdir(parents=True, exist_ok=True)
            # Named like the server's spool files, so a crash's leftover goes at its start.
            target = spool / f"{os.getpid()}-import-{next(_spooled)}.msg"
            try:
                written = _crlf_copy(file, target)
            except FileNotFoundError:
                target.unlink(missing_ok=True)
                continue
            yield ImportItem(MessageData(b"", None, target, written), flags, when,
                             spooled=target)
            continue
        yield ImportItem(to_crlf(file.read_bytes()), flags, when)


def decode_mutf7(text: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 §5.1.3), which Maildir++ uses for folder names."""

    def decode(match: re.Match[str]) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        try:
            return base64.b64decode(padded).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return match.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", decode, text)


def maildir_subfolders(root: Path) -> list[tuple[str, Path]]:
    """Maildir++ subfolders as (mailstead folder name, directory): ``.Sub.Folder`` ->
    ``Sub/Folder``."""
    names = mailbox.Maildir(root, factory=None, create=False).list_folders()
    folders = []
    for name in sorted(names):
        target = "/".join(decode_mutf7(part) for part in name.split(".") if part)
        if target:
            folders.append((target, root / f".{name}"))
    return folders


# -- importing -----------------------------------------------------------------------------


async def import_items(
    store: Store, user_id: int, folder: str, items: Iterable[ImportItem], *, max_size: int
) -> ImportReport:
    """Append ``items`` to ``folder`` (created if missing) in concurrent batches."""
    try:
        target = await store.get_mailbox(user_id, folder)
    except NotFound:
        target = await store.create_mailbox(user_id, folder)
    report = ImportReport(target.name)
    batch: list[ImportItem] = []

    async def flush() -> None:
        results = await asyncio.gather(
            *(store.append(target.id, it.data, it.flags, it.internaldate) for it in batch),
            return_exceptions=True,
        )
        for it in batch:
            if it.spooled is not None:
                it.spooled.unlink(missing_ok=True)
        for result in results:
            if isinstance(result, QuotaExceeded):
                report.skipped["over quota"] += 1
            elif isinstance(result, StoreError):
                report.skipped[f"refused by the store: {result}"] += 1
            elif isinstance(result, BaseException):
                raise result
            else:
                report.imported += 1
        batch.clear()

    octets = 0
    for item in items:
        if max_size and max(item.unread_size, len(item.data)) > max_size:
            if item.spooled is not None:
                item.spooled.unlink(missing_ok=True)
            report.skipped["larger than limits.max_message_size"] += 1
            continue
        if isinstance(item.data, bytes) and not item.data.strip():
            report.skipped["empty"] += 1
            continue
        if batch and octets + len(item.data) > BATCH_OCTETS:
            await flush()
            octets = 0
        batch.append(item)
        octets += len(item.data)
        if len(batch) >= BATCH_SIZE:
            await flush()
            octets = 0
    if batch:
        await flush()
    return report


async def import_path(
    store: Store, address: str, path: Path, folder: str | None, *, max_size: int,
    spool: Path | None = None,
) -> list[ImportReport]:
    """Import an mbox file or a Maildir (with Maildir++ subfolders unless ``folder``);
    large Maildir messages pass through files in ``spool``."""
    account = await store.find_user(address)
    if account is None:
        raise NotFound(f"user {address} does not exist")
    if is_mbox(path):
        return [
            await import_items(
                store, account.id, folder or "INBOX", read_mbox(path), max_size=max_size
            )
        ]
    if is_maildir(path):
        reports = [
            await import_items(store, account.id, folder or "INBOX",
                               read_maildir(path, max_size, spool), max_size=max_size)
        ]
        if folder is None:
            for name, directory in maildir_subfolders(path):
                reports.append(
                    await import_items(store, account.id, name,
                                       read_maildir(directory, max_size, spool),
                                       max_size=max_size)
                )
        return reports
    raise InvalidName(
        f'{path} is neither an mbox file (first line "From ...") '
        "nor a Maildir (a directory with cur/ and new/)"
    )
