"""FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9; RFC 3516 BINARY; RFC 9394 PARTIAL; RFC
8970 PREVIEW).

Everything comes from what ``mime/`` stored at delivery (ENVELOPE, BODY, BODYSTRUCTURE,
PREVIEW and the part offsets); the message bytes are read only for body sections, and only
the header when that is all a request needs. EXPUNGE is never sent during FETCH (the session
holds it back). The one exception: a message stored before previews were made has its
preview made from the body when PREVIEW is asked for without LAZY (with LAZY: NIL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

from mailstead.core.errors import NotFound
from mailstead.core.types import SEEN, UID, FlagMode
from mailstead.imap import access, objectid, response
from mailstead.imap.batches import batches
from mailstead.imap.parse.commands import Command, Fetch
from mailstead.imap.parse.fetch import FetchAtt, FetchItem
from mailstead.imap.parse.primitives import SequenceSet
from mailstead.imap.replies import Disconnect, Reply, bad, done, no
from mailstead.imap.selected import uid_ranges
from mailstead.imap.states import Selected
from mailstead.mime import presented, preview
from mailstead.mime.imap_views import (
    PartDecoder,
    decoded_header,
    find_part,
    section_bytes,
    section_span,
    select_fields,
    wire_bytes,
)
from mailstead.mime.parse import ParsedMessage, parse_message
from mailstead.mime.sections import SectionText
from mailstead.mime.stored import StoredStructure
from mailstead.store.interfaces import Messages
from mailstead.store.models import MessageMeta

if TYPE_CHECKING:
    from mailstead.imap.session import Session

_DRAIN_EVERY = 256 * 1024
_BATCH = 1024  # messages whose structures are read in one store query (get_structures)
_READ_BATCH = 64  # message bodies read concurrently (store read threads)
_BODY_BYTES = 16 * 1024 * 1024  # whole bodies held at once by one FETCH (a bigger one alone)
_STRUCTURE_ITEMS = frozenset(
    {FetchItem.ENVELOPE, FetchItem.BODY, FetchItem.BODYSTRUCTURE, FetchItem.PREVIEW}
)
_HEADER_ONLY_SECTIONS = frozenset(
    {SectionText.HEADER, SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT}
)
_KNOWN_CTE = frozenset({"7bit", "8bit", "binary", "base64", "quoted-printable"})
#: A message from this size on is not read whole for BODY[...], RFC822 or RFC822.TEXT:
#: its header is read, and the sections are sent from the store piece by piece.
_STREAM_FROM = 1024 * 1024
_STREAM_PIECE = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Span:
    """Octets [start, end) of the message, read from the store while they are sent."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class _Decoded:
    """BINARY or BINARY.SIZE of a part of a large message: ``header``, then octets
    [start, end) decoded from ``encoding`` while they are read from the store,
    ``<partial>`` applied."""

    start: int
    end: int
    encoding: str
    size_only: bool
    part: tuple[int, int] | None
    header: bytes = b""

    def __len__(self) -> int:
        return self.end - self.start


def _streamable(items: list[FetchAtt]) -> bool:
    """Whether every body the request asks for can be sent from the store as it is read:
    one range of the message, or a part decoded on the way (BINARY). A field selection of
    a part picks lines: that needs the bytes."""
    for att in items:
        section = att.section
        if (att.item is FetchItem.BODY and section is not None and section.path
                and section.text in _HEADER_ONLY_SECTIONS - {SectionText.HEADER}):
            return False
    return True


def _needs(items: list[FetchAtt]) -> tuple[bool, str | None]:
    """(needs the parsed structure, which bytes: None / "header" / "all")."""
    structure = False
    raw: str | None = None
    for att in items:
        section = att.section
        if att.item in _STRUCTURE_ITEMS and section is None:
            structure = True
        elif att.item in (FetchItem.THREADID, FetchItem.RFC822_HEADER) or (
            section is not None
            and att.item is FetchItem.BODY
            and not section.path
            and section.text in _HEADER_ONLY_SECTIONS
        ):
            structure = True
            raw = raw or "header"
        elif att.item in (FetchItem.RFC822, FetchItem.RFC822_TEXT) or section is not None:
            structure = True
            raw = "all"
    return structure, raw


def _has(items: list[FetchAtt], item: FetchItem) -> bool:
    return any(i.item is item and i.section is None for i in items)


def _partial(data: bytes, part: tuple[int, int] | None) -> bytes:
    if part is None:
        return data
    origin, count = part
    return data[origin : origin + count]


@dataclass(frozen=True, slots=True)
class _BinarySource:
    """Where BINARY[path] comes from: octets [start, end) of the message, decoded from
    ``encoding``, after ``header`` (the rewritten header of a whole single-part message)."""

    start: int
    end: int
    encoding: str
    header: bytes = b""


def _binary_source(raw: bytes, parsed: ParsedMessage, path: tuple[int, ...]) -> _BinarySource:
    """BINARY[path]. ``raw`` holds at least the message header (all a large message has
    loaded): an empty path needs it."""
    part = find_part(parsed, path) if path else parsed.root
    if part is None:
        raise no("No such message part", "NONEXISTENT")
    if not path:
        # RFC 3516 §4.2 reuses RFC 9051 §6.4.5's section grammar: BINARY[] is the whole
        # message, header included. Only the body of a single-part message has a
        # transfer encoding to undo; its header then says "binary" (as Dovecot's does).
        if part.multipart or part.children or part.encoding in ("7bit", "8bit", "binary"):
            return _BinarySource(0, parsed.size, "binary")
        if part.encoding not in _KNOWN_CTE:
            raise no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
        return _BinarySource(part.body_start, part.body_end, part.encoding,
                             decoded_header(raw, part))
    if part.multipart or part.content_type == "message":
        # RFC 3516 §4.2: BINARY on a non-leaf returns the part as it is.
        return _BinarySource(part.body_start, part.body_end, "binary")
    if part.encoding not in _KNOWN_CTE:
        raise no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
    return _BinarySource(part.body_start, part.body_end, part.encoding)


def _binary(raw: bytes, parsed: ParsedMessage, path: tuple[int, ...]) -> bytes:
    source = _binary_source(raw, parsed, path)
    decoder = PartDecoder(source.encoding)
    body = decoder.feed(memoryview(raw)[source.start : source.end]) + decoder.end()
    return source.header + body if source.header else body


@dataclass(slots=True)
class _Message:
    """What one message's FETCH response is made from; ``structure`` and ``raw`` are loaded
    only when the request needs them (``_needs``)."""

    meta: MessageMeta
    flags: frozenset[str]
    recent: bool
    structure: StoredStructure | None
    raw: bytes | None  # the header alone when ``streamed``
    modseq: int = 0  # the MODSEQ a \Seen set by this FETCH gave it
    savedate: datetime | None = None
    streamed: bool = False  # bodies are _Span pieces, sent from the store
    shown: tuple[bytes, ParsedMessage] | None = None  # see body_view
    preview: str | None = None  # made at FETCH for a structure stored without one

    def body_view(self) -> tuple[bytes, ParsedMessage]:
        """The octets and structure BODY sections, RFC822 and RFC822.HEADER/TEXT are cut
        from: the message as stored, or, when parts of it hold a NUL, as presented with those
        in base64 (RFC 3516 §6; RFC 9051 §4.3: no NUL in a literal), built once per FETCH
        of the message. BINARY and THREADID read the stored octets."""
        if self.shown is None:
            raw, structure = _loaded(self.raw), _loaded(self.structure)
            parsed = structure.parsed
            if structure.has_nul_parts:
                raw = presented.present(raw, parsed.root)
                parsed = parse_message(raw)
            self.shown = raw, parsed
        return self.shown


Piece = bytes | _Span | _Decoded


#: The items that can be one range of the message (``_range``).
_RANGE_ITEMS = frozenset({FetchItem.RFC822, FetchItem.RFC822_TEXT, FetchItem.BODY})


@lru_cache(maxsize=1024)
def _label(att: FetchAtt) -> bytes:
    """An item's name in the response, made once per distinct item rather than once per
    message and item (a FETCH of 10,000 envelopes asked for it 40,000 times)."""
    return att.response_name().encode("utf-8", "surrogateescape")


def render_item(session: Session, user_id: int, att: FetchAtt, m: _Message) -> list[Piece]:
    """One FETCH item as the pieces of its response: a message body stays one piece of
    its own (the literal's data), never copied into a line with the rest, and for a large
    message it is a _Span the sender reads from the store as it goes."""
    label = _label(att)
    span = _range(att, m)
    if span is not None:
        start, end = span
        head = label + b" {%d}\r\n" % (end - start)
        if m.streamed:
            return [head, _Span(start, end)]
        raw = m.body_view()[0]
        return [head, raw if (start, end) == (0, len(raw)) else raw[start:end]]
    section = att.section
    if section is None:
        return [_render_small(session, user_id, att, m)]
    structure = _loaded(m.structure)
    if att.item is not FetchItem.BODY and m.streamed:
        source = _binary_source(_loaded(m.raw), structure.parsed, section.path)
        return [label, _Decoded(source.start, source.end, source.encoding,
                                att.item is FetchItem.BINARY_SIZE, att.part, source.header)]
    raw = _loaded(m.raw)
    if att.item is FetchItem.BODY and structure.has_nul_parts:
        shown, parsed = m.body_view()
        data = _partial(section_bytes(shown, parsed, section), att.part)
        return [label + b" " + response.literal_head(data), data]
    if att.item is FetchItem.BODY:  # a field selection: chosen lines, not one range
        if section.top_level_fields:
            # The message list's header fields come from the top-level header list alone.
            excluded = section.text is SectionText.HEADER_FIELDS_NOT
            data = select_fields(raw, structure.top_headers, section.field_names, excluded)
        else:
            data = section_bytes(raw, structure.parsed, section)
        data = _partial(data, att.part)
        return [label + b" " + response.literal_head(data), data]
    decoded = _binary(raw, structure.parsed, section.path)
    if att.item is FetchItem.BINARY_SIZE:
        return [label + b" %d" % len(decoded)]
    decoded = _partial(decoded, att.part)
    return [label + b" " + response.literal_head(decoded, binary=True), decoded]


def _range(att: FetchAtt, m: _Message) -> tuple[int, int] | None:
    """Where a body item lies in the message BODY sections show (``_Message.body_view``)
    when it is one range of it (RFC822, RFC822.TEXT, a BODY section other than a field
    selection), ``<partial>`` applied; None for any other item."""
    if att.item not in _RANGE_ITEMS:  # most items of most FETCHes: decided at once
        return None
    section = att.section
    if att.item is FetchItem.BODY and (section is None or section.top_level_fields):
        return None
    size = m.meta.size
    if _loaded(m.structure).has_nul_parts:
        size = len(m.body_view()[0])
    if att.item is FetchItem.RFC822:
        start, end = 0, size
    elif att.item is FetchItem.RFC822_TEXT:
        start, end = m.body_view()[1].root.body_start, size
    elif section is not None:
        span = section_span(m.body_view()[1], section)
        if span is None:
            return None
        start, end = span
    else:
        return None
    if att.part is not None:
        origin, count = att.part
        start = min(start + origin, end)
        end = min(start + count, end)
    return start, end


def _render_small(session: Session, user_id: int, att: FetchAtt, m: _Message) -> bytes:
    """An item without a section and without a message body: flags, dates, sizes, the
    structure, ids, the header."""
    meta = m.meta
    match att.item:
        case FetchItem.UID:
            return b"UID %d" % meta.uid
        case FetchItem.MODSEQ:
            return b"MODSEQ (%d)" % (m.modseq or meta.modseq)  # RFC 7162 §3.1.4
        case FetchItem.FLAGS:
            shown = set(m.flags)
            if m.recent and not session.rev2:
                shown.add("\\Recent")
            return b"FLAGS " + response.flag_list(shown)
        case FetchItem.INTERNALDATE:
            return b"INTERNALDATE " + response.internaldate(meta.internaldate)
        case FetchItem.EMAILID:  # RFC 8474 §5.1
            return b"EMAILID (%s)" % objectid.email_id(meta.blob_id).encode()
        case FetchItem.SAVEDATE:  # RFC 8514 §4.1
            return b"SAVEDATE " + response.internaldate(m.savedate or meta.internaldate)
        case FetchItem.RFC822_SIZE:
            return b"RFC822.SIZE %d" % meta.size
    structure = _loaded(m.structure)
    match att.item:
        case FetchItem.ENVELOPE:
            return b"ENVELOPE " + wire_bytes(structure.envelope)
        case FetchItem.BODY:
            return b"BODY " + wire_bytes(structure.body)
        case FetchItem.BODYSTRUCTURE:
            return b"BODYSTRUCTURE " + wire_bytes(structure.bodystructure)
        case FetchItem.PREVIEW:
            # RFC 8970: an nstring; NIL only for LAZY when no preview is at hand (a
            # structure stored before previews were); "" when the message has no text.
            text = structure.preview if structure.preview is not None else m.preview
            if text is None and not att.lazy:
                raise AssertionError("PREVIEW rendered without the preview made for it")
            return b"PREVIEW " + response.nstring(text, utf8=session.utf8)
    raw = _loaded(m.raw)
    match att.item:
        case FetchItem.THREADID:  # RFC 8474 §5.2
            found = objectid.header_values(raw, structure.top_headers)
            thread = objectid.thread_id(user_id, meta.blob_id, found)
            return b"THREADID (%s)" % thread.encode()
        case FetchItem.RFC822_HEADER:
            if structure.has_nul_parts:
                body_raw, parsed = m.body_view()
                header = body_raw[: parsed.root.header_end]
                return b"RFC822.HEADER " + response.literal(header)
            return b"RFC822.HEADER " + response.literal(raw[: structure.header_end])
    raise AssertionError(f"FETCH item {att.item} without a section")


T = TypeVar("T")


#: Encoded structures from this size on are decoded in a thread (about 1 ms of work).
_LARGE_STRUCTURE = 32 * 1024


def _loaded(value: T | None) -> T:
    """What ``_needs`` made the loader fetch for this item."""
    if value is None:
        raise AssertionError("FETCH item rendered without the data _needs asked for")
    return value


def _streams(meta: MessageMeta, structure: StoredStructure | None, stream: bool) -> bool:
    """Whether this message's bodies are sent from the store piece by piece: a large one,
    for a streamable request, unless BODY sections present parts holding a NUL in base64 (made
    from the whole message, ``_Message.body_view``)."""
    return (stream and meta.size >= _STREAM_FROM and structure is not None
            and not structure.has_nul_parts)


async def _made_preview(store: Messages, meta: MessageMeta, structure: StoredStructure) -> str:
    """The preview of a message whose structure was stored without one (before RFC 8970
    support): made from the part of the body it needs, off the event loop."""
    root = (await asyncio.to_thread(lambda: structure.parsed)).root
    end = preview.source_end(root)
    raw = await store.read_blob(meta.blob_id, 0, end) if end else b""
    return await asyncio.to_thread(preview.preview_text, raw, root)


async def _load_chunk(
    store: Messages, chunk: list[MessageMeta], need_raw: str | None, stream: bool = False
) -> list[tuple[StoredStructure | None, bytes | None]]:
    """Structures of a chunk in one store query (``get_structures``), plus the bytes the
    request needs, ``_READ_BATCH`` bodies per store round trip (``read_blobs``); (None,
    None) for a message that vanished."""
    stored = await store.get_structures([m.blob_id for m in chunk])
    structures = [
        StoredStructure(data) if (data := stored.get(m.blob_id)) is not None else None
        for m in chunk
    ]
    if need_raw is None:
        return [(s, None) for s in structures]
    # Body sections need the whole part tree; a large one (thousands of parts) takes
    # milliseconds to decode: done here, off the event loop (``parsed`` keeps it).
    large = [s for s in structures if s is not None and s.encoded_size >= _LARGE_STRUCTURE]
    if large:
        await asyncio.to_thread(lambda: [s.parsed for s in large])

    out: list[tuple[StoredStructure | None, bytes | None]] = []
    for i in range(0, len(chunk), _READ_BATCH):
        part = [(m, s) for m, s in zip(chunk[i : i + _READ_BATCH],
                                       structures[i : i + _READ_BATCH], strict=True)]
        # A large message of a streamable request: its header only (see _STREAM_FROM).
        wanted = [(m.blob_id, 0, s.header_end if need_raw == "header"
                   or _streams(m, s, stream) else None)
                  for m, s in part if s is not None]
        raws = iter(await store.read_blobs(wanted))
        for _, s in part:
            raw = next(raws) if s is not None else None
            out.append((s, raw) if raw is not None else (None, None))
    return out


def _head(piece: Piece) -> bytes:
    """The first piece of an item is always its bytes (the label and literal header)."""
    if not isinstance(piece, bytes):
        raise AssertionError("an item starts with a stored range")
    return piece


async def _stored(
    session: Session, store: Messages, blob_id: str, start: int, end: int
) -> AsyncIterator[bytes]:
    """The body's octets [start, end), ``_STREAM_PIECE`` at a time. A body that ends early
    (collected after an expunge) closes the connection: a literal's length may already
    have been announced, and the only honest end is to close."""
    position = start
    while position < end:
        stop = min(end, position + _STREAM_PIECE)
        try:
            data = await store.read_blob(blob_id, position, stop)
        except NotFound:
            data = b""
        if len(data) != stop - position:
            session.log.error("body %s ended at %d while sending it; closing", blob_id,
                              position + len(data))
            raise Disconnect
        yield data
        position = stop


async def _send_span(session: Session, store: Messages, blob_id: str, span: _Span) -> None:
    """Stored octets into the response, waiting for the client to take each piece: a
    40 MB body costs a piece of memory, not 40 MB."""
    async for data in _stored(session, store, blob_id, span.start, span.end):
        session.send(data)
        await session.stream.drain()


async def _send_decoded(
    session: Session, store: Messages, blob_id: str, item: _Decoded
) -> None:
    """BINARY of a part (of a whole single-part message: its header first), decoded as it
    is read. The literal's length, and whether it must
    be a literal8 (a NUL in what is sent), are known only once the part is decoded: a
    first pass counts, a second sends. Twice the decoding, a piece of memory."""
    origin, count = item.part if item.part is not None else (0, None)
    size = 0
    nul = False
    decoder = PartDecoder(item.encoding)

    def measure(out: bytes) -> None:
        nonlocal size, nul
        begin, size = size, size + len(out)
        if not nul:  # a NUL matters only inside the octets that will be sent
            low = max(origin - begin, 0)
            high = len(out) if count is None else min(origin + count - begin, len(out))
            nul = high > low and out.find(b"\x00", low, high) >= 0

    measure(item.header)
    async for data in _stored(session, store, blob_id, item.start, item.end):
        measure(decoder.feed(data))
    measure(decoder.end())
    if item.size_only:
        session.send(b" %d" % size)
        return
    low = min(origin, size)
    high = size if count is None else min(origin + count, size)
    session.send(b" " + (b"~" if nul else b"") + b"{%d}\r\n" % (high - low))
    if high == low:
        return
    decoder = PartDecoder(item.encoding)
    position = 0

    def window(out: bytes) -> bytes:
        nonlocal position
        begin = position
        position += len(out)
        return out[max(0, low - begin) : max(0, high - begin)]

    if item.header:
        session.send(window(item.header))
        if position >= high:
            return
    async for data in _stored(session, store, blob_id, item.start, item.end):
        sent = window(decoder.feed(data))
        if sent:
            session.send(sent)
            await session.stream.drain()
        if position >= high:
            return
    session.send(window(decoder.end()))


def _span(a: int | None, b: int | None) -> tuple[int, int | None]:
    """A UID range as (lowest, highest or None for no upper end); ``*`` is open-ended."""
    if a is None or b is None:
        known = b if a is None else a
        return (known or 0, None)
    return (min(a, b), max(a, b))


async def _vanished_earlier(
    session: Session, mailbox_id: int, requested: SequenceSet, since: int
) -> None:
    """RFC 7162 §3.2.6: the UIDs of the requested set expunged after ``since``, as one
    ``VANISHED (EARLIER)`` before the FETCH data. ``*`` reaches past the last UID, since the
    message that had it may be among the expunged."""
    spans = [_span(a, b) for a, b in requested.ranges]
    gone = [
        int(u) for u in await session.store.vanished_since(mailbox_id, since)
        if any(low <= u and (high is None or u <= high) for low, high in spans)
    ]
    if gone:
        session.untagged("VANISHED (EARLIER) " + response.uid_set(gone))


async def fetch(session: Session, cmd: Command[Fetch], selected: Selected) -> Reply:
    args = cmd.args
    view = selected.view
    by_uid = cmd.name == "UID FETCH"
    if args.vanished and not (by_uid and session.qresync):
        # RFC 7162 §3.2.6: only UID FETCH, and only after ENABLE QRESYNC.
        raise bad("VANISHED needs UID FETCH and ENABLE QRESYNC")
    uids = view.resolve(args.sequence, uid=by_uid)
    if args.partial is not None:
        # RFC 9394 §3.3: only the messages at the range's positions among those the set
        # names, in mailbox order ("useful when the sequence-set ... includes an unknown
        # number of messages"). The grammar extends fetch-modifier (§4), which FETCH shares
        # with UID FETCH (RFC 4466 §2.4), so FETCH takes it too. §3.4 (informative) says
        # PARTIAL combines with CHANGEDSINCE without saying which applies first: the page is
        # taken first and CHANGEDSINCE filters it, so the range bounds the messages looked
        # at. VANISHED (EARLIER) below still covers the whole requested set: expunged UIDs
        # hold no position in it.
        uids = list(args.partial.page(uids))
    items = list(args.items)
    if by_uid and not _has(items, FetchItem.UID):
        # RFC 9051 §6.4.9: UID FETCH always returns UID. The order of data items is free;
        # after the requested ones, as James puts it.
        items.append(FetchAtt(FetchItem.UID))
    if args.changed_since is not None and not _has(items, FetchItem.MODSEQ):
        # RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
        items.append(FetchAtt(FetchItem.MODSEQ))
    if _has(items, FetchItem.MODSEQ):
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    if args.vanished and args.changed_since is not None:
        await _vanished_earlier(session, view.mailbox_id, args.sequence, args.changed_since)
    if not uids:
        return done(f"{cmd.name} completed")
    store = session.store
    metas = await access.own_view(session, selected, await store.list_messages(
        view.mailbox_id, uid_ranges(uids), changed_since=args.changed_since
    ))
    saved: dict[UID, datetime] = {}
    if _has(items, FetchItem.SAVEDATE):
        saved = await store.save_dates(view.mailbox_id, uid_ranges(uids))
    flags_now: dict[int, frozenset[str]] = {int(m.uid): m.flags for m in metas}
    modseq_now: dict[int, int] = {}
    seen_changed: set[int] = set()
    if (not view.readonly and any(i.sets_seen for i in items)
            and "s" in await access.selected_rights(session, selected)):
        # RFC 4314 §4: the implicit \Seen of a body fetch needs "s" too; without it the
        # fetch reads as with PEEK.
        unseen = [m.uid for m in metas if SEEN not in m.flags]
        if unseen and view.private_seen is not None:
            # Another account's mailbox: this user's own \Seen (decision 0028).
            for newly_seen in await store.set_private_seen(
                    view.mailbox_id, selected.user.id, unseen, True):
                view.private_seen.add(int(newly_seen))
                flags_now[int(newly_seen)] = flags_now[int(newly_seen)] | {SEEN}
                seen_changed.add(int(newly_seen))
        elif unseen:
            result = await store.store_flags(view.mailbox_id, unseen, FlagMode.ADD, [SEEN])
            for update in result.updated:
                flags_now[int(update.uid)] = update.flags
                modseq_now[int(update.uid)] = int(update.modseq)
                seen_changed.add(int(update.uid))
                view.note_own_flags(int(update.uid), int(update.modseq))
    # RFC 7162 §3.1: with CONDSTORE on, a FETCH that set \Seen reports UID and MODSEQ too.
    implicit_head = [] if _has(items, FetchItem.FLAGS) else [FetchAtt(FetchItem.FLAGS)]
    implicit_tail = [
        FetchAtt(n) for n in (FetchItem.UID, FetchItem.MODSEQ)
        if session.condstore and not _has(items, n)
    ]
    need_structure, need_raw = _needs(items)
    flags_asked = _has(items, FetchItem.FLAGS)
    preview_now = any(i.item is FetchItem.PREVIEW and not i.lazy for i in items)
    user_id = selected.user.id
    written = 0
    stream = need_raw == "all" and _streamable(items)

    def held(meta: MessageMeta) -> int:
        """What a message's bytes cost in memory while its response is made."""
        return 0 if stream and meta.size >= _STREAM_FROM else meta.size

    body_bytes = _BODY_BYTES if need_raw == "all" else None
    for chunk in batches(metas, held, count=_BATCH, octets=body_bytes):
        if need_structure:
            loaded = await _load_chunk(store, chunk, need_raw, stream)
        else:
            loaded = [(None, None)] * len(chunk)
        for meta, (structure, raw) in zip(chunk, loaded, strict=True):
            uid = int(meta.uid)
            seq = view.seq_of(uid)
            if seq is None or (need_structure and structure is None):
                continue  # body gone under us: reported as EXPUNGEISSUED below
            message = _Message(
                meta, flags_now[uid], uid in view.recent, structure, raw,
                modseq_now.get(uid, 0), saved.get(meta.uid),
                streamed=_streams(meta, structure, stream),
            )
            if preview_now and structure is not None and structure.preview is None:
                try:
                    message.preview = await _made_preview(store, meta, structure)
                except NotFound:
                    continue  # body gone under us: reported as EXPUNGEISSUED below
            shown = items
            if uid in seen_changed:
                # RFC 9051 §6.4.5: the implicit \Seen change is reported in the same FETCH.
                # With CONDSTORE on, UID and MODSEQ follow (RFC 7162 §3.1).
                shown = implicit_head + items + implicit_tail
            if flags_asked or uid in seen_changed:
                # The flags come from the store and may hold a keyword another session
                # created after our flush: FLAGS goes first (RFC 9051 §7.3.5).
                for line in view.announce_keywords(flags_now[uid]):
                    session.send(line)
            pieces: list[Piece] = [b"* %d FETCH (" % seq]
            for n, att in enumerate(shown):
                rendered = render_item(session, user_id, att, message)
                if n:
                    rendered[0] = b" " + _head(rendered[0])
                pieces += rendered
            pieces.append(b")\r\n")
            for piece in pieces:
                if isinstance(piece, _Span):
                    await _send_span(session, store, meta.blob_id, piece)
                elif isinstance(piece, _Decoded):
                    await _send_decoded(session, store, meta.blob_id, piece)
                else:
                    session.send(piece)
                written += len(piece)
            if written >= _DRAIN_EVERY:
                written = 0
                await session.stream.drain()
    if len(metas) < len(uids) and args.changed_since is None:
        # RFC 9051 §7.1 EXPUNGEISSUED: some of these were expunged by another session and
        # the EXPUNGE cannot be sent during FETCH (§7.5.1).
        return done("Some messages were expunged", "EXPUNGEISSUED")
    return done(f"{cmd.name} completed")
