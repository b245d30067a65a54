"""CATENATE (RFC 4469): the message of an APPEND or REPLACE assembled from TEXT literals
and IMAP URLs to the logged-in user's own messages.

The parts are written, in order and piece by piece, into a spool of the running command
(``Session.command_spool``): in memory up to the spool threshold, then in a file, from the
same budgets as APPEND literals. A URL part is read from the store in pieces of
``_PIECE`` octets; only a header-field selection of a nested part needs the whole message
it is cut from. The assembled message then goes through exactly the checks and the one
store transaction of a plain APPEND (or REPLACE, or MULTIAPPEND), so the command stays
atomic (decision 0020): nothing is stored before every part of every message resolved.

A URL is resolved when the command runs, after every literal has arrived (decision 0023):
RFC 4469 §5 lets a server refuse earlier, but that would mean store lookups inside the
framing loop. A URL that names nothing we can read is ``NO [BADURL url]``; an assembled
message over APPENDLIMIT ``NO [TOOBIG]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.message_data import MessageData
from mailstead.core.spool import Spool
from mailstead.imap.parse.commands import Catenate, CatText, CatURL
from mailstead.imap.parse.imapurl import MessageURL, URLError, base_url, parse_url, resolve
from mailstead.imap.replies import CommandError, no
from mailstead.mime.imap_views import find_part, section_bytes, section_span, select_fields
from mailstead.mime.sections import SectionText
from mailstead.mime.stored import StoredStructure
from mailstead.store.models import MessageMeta, User

if TYPE_CHECKING:
    from mailstead.imap.session import Session

_PIECE = 256 * 1024  # octets of a URL part read from the store at a time
_LARGE_STRUCTURE = 32 * 1024  # a structure this big is decoded in a thread (as FETCH does)


async def assemble(session: Session, user: User, message: Catenate) -> MessageData:
    """The message ``message``'s parts make, spooled; CommandError (NO with BADURL,
    TOOBIG or UNAVAILABLE) when a part cannot be had or the whole is too big."""
    limit = session.settings.limits.max_message_size
    spool = session.command_spool()
    for part in message.parts:
        pieces = _text(part.data) if isinstance(part, CatText) else _url(session, user, part)
        async for piece in pieces:
            if spool.size + len(piece) > limit:
                # RFC 4469 §5 / RFC 7889: the APPEND size limit is the assembled message's.
                raise no("Message too big", "TOOBIG")
            if not await spool.write(piece):
                raise _unavailable(session)
    return await _finished(spool, session)


async def _finished(spool: Spool, session: Session) -> MessageData:
    try:
        return await spool.finish()
    except (OSError, ValueError) as exc:
        raise _unavailable(session) from exc


def _unavailable(session: Session) -> CommandError:
    session.log.info("CATENATE message refused: budget for message data spent")
    return no("Too much data arriving at once, try again later", "UNAVAILABLE")


async def _text(data: bytes | MessageData | None) -> AsyncIterator[bytes]:
    """A TEXT literal's octets: in memory, or read back from its spool file in a thread."""
    if data is None:  # the budgets refused the literal as it arrived
        raise no("Too much data arriving at once, try again later", "UNAVAILABLE")
    if isinstance(data, bytes):
        if data:
            yield data
        return
    if data.in_memory:
        for piece in data.pieces():
            yield piece
        return
    pieces = data.pieces(_PIECE)
    try:
        while piece := await asyncio.to_thread(next, pieces, b""):
            yield piece
    finally:
        pieces.close()  # its spool file, when the assembly stopped half way (TOOBIG)


async def _url(session: Session, user: User, part: CatURL) -> AsyncIterator[bytes]:
    """The octets a URL part names (RFC 4469 §3: as FETCH BODY.PEEK[section]<partial>
    would return them, taken from the stored message)."""
    url, meta = await _locate(session, user, part.url)
    store = session.store
    section = url.section
    start, end = 0, meta.size
    data: bytes | None = None
    if section is not None:
        structure = StoredStructure(await store.get_structure(meta.blob_id))
        if structure.encoded_size >= _LARGE_STRUCTURE:
            parsed = await asyncio.to_thread(lambda: structure.parsed)
        else:
            parsed = structure.parsed
        if section.path and find_part(parsed, section.path) is None:
            raise _bad_url(part.url, "no such part")
        span = section_span(parsed, section)
        if span is not None:
            start, end = span
        elif section.top_level_fields:
            # The message's own header fields: its header alone answers them.
            head = await store.read_blob(meta.blob_id, 0, structure.header_end)
            excluded = section.text is SectionText.HEADER_FIELDS_NOT
            data = select_fields(head, structure.top_headers, section.field_names, excluded)
        else:  # fields of a nested message's header: cut from the whole message
            raw = await store.read_blob(meta.blob_id)
            data = section_bytes(raw, parsed, section)
    if data is not None:
        start, end = 0, len(data)
    if url.partial is not None:  # RFC 5092 ";PARTIAL=offset.length"
        origin, length = url.partial
        start = min(start + origin, end)
        end = end if length is None else min(start + length, end)
    if data is not None:
        if end > start:
            yield data[start:end]
        return
    while start < end:
        stop = min(start + _PIECE, end)
        yield await store.read_blob(meta.blob_id, start, stop)
        start = stop


async def _locate(session: Session, user: User, text: str) -> tuple[MessageURL, MessageMeta]:
    """The URL made absolute and checked, and the message it names: the logged-in user's,
    on this server, in a mailbox with that UIDVALIDITY."""
    selected = session.selection
    here = session.settings.hostname
    mailbox = session.names.to_imap(selected.view.name) if selected is not None else None
    try:
        url = parse_url(resolve(text, base_url(user.address, here, mailbox)))
    except URLError as exc:
        raise _bad_url(text, str(exc)) from None
    if url.user is None or url.user.lower() != user.address.lower():
        raise _bad_url(text, "only the logged-in user's own mailboxes")
    local = session.stream.local
    hosts = {here.lower(), local[0].lower(), f"[{local[0].lower()}]"}
    if url.host.lower().rstrip(".") not in hosts or url.port not in (None, local[1]):
        raise _bad_url(text, "another server")
    try:
        box = await session.store.get_mailbox(user.id, session.names.to_store(url.mailbox))
    except (NotFound, InvalidName):
        raise _bad_url(text, "no such mailbox") from None
    if url.uidvalidity is not None and url.uidvalidity != box.uidvalidity:
        raise _bad_url(text, "UIDVALIDITY changed")
    found = await session.store.list_messages(box.id, [(url.uid, url.uid)])
    if not found:
        raise _bad_url(text, "no such message")
    return url, found[0]


def _bad_url(url: str, why: str) -> CommandError:
    """RFC 4469 §5: ``NO [BADURL url]``, the URL as the client sent it, less what the
    response code cannot carry (url-resp-text: no "]", no controls; RFC 4469 erratum 2002)."""
    shown = "".join(
        c
        if " " < c < "\x7f" and c != "]"
        else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
        for c in url
    )
    return no(f"Bad URL: {why}", f"BADURL {shown}")
