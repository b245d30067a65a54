"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256).

The messages are found as SEARCH finds them (the same evaluator over the same batches);
what SORT and THREAD compare comes from the sort keys the store kept of each body
(:mod:`mailstead.imap.sort_keys`, decision 0031), so no message is parsed again and no
structure decoded. Ordering and threading are pure (:mod:`mailstead.imap.sort`) and run
off the event loop: on a large mailbox they take longer than a session may hold it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailstead.imap.batches import batches
from mailstead.imap.commands.search import candidates, load_candidates
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.search import SUPPORTED_CHARSETS, SearchKey
from mailstead.imap.parse.sort import SortArgs, ThreadAlgorithm, ThreadArgs
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.search import Candidate
from mailstead.imap.sort import (
    SORT_FIELDS,
    THREAD_FIELDS,
    Field,
    Sortable,
    ordered_subject,
    references,
    render_threads,
    sort_messages,
)
from mailstead.imap.sort_keys import sortables
from mailstead.imap.states import Selected

if TYPE_CHECKING:
    from mailstead.imap.session import Session

_BATCH = 1024  # candidates whose structures are read in one store query
_BODY_BYTES = 16 * 1024 * 1024  # whole bodies held at once (as SEARCH)


def _check_charset(charset: str) -> None:
    # RFC 5256 §3: "the server MUST support US-ASCII and UTF-8"; others are NO [BADCHARSET].
    if charset not in SUPPORTED_CHARSETS:
        raise no("Unsupported charset", "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")")


def _select(predicate: Callable[[Candidate], bool], chunk: list[Candidate]) -> list[Candidate]:
    """The chunk's matching messages."""
    return [c for c in chunk if predicate(c)]


async def _matching(
    session: Session, selected: Selected, key: SearchKey, reads: frozenset[Field]
) -> tuple[list[Sortable], bool]:
    """The messages ``key`` finds, with the fields ``reads`` names, and whether some the
    client still counts were expunged meanwhile (then the reply says ``EXPUNGEISSUED``,
    as SEARCH's does)."""
    program = await candidates(session, selected, key)
    predicate, visible, wanted = program.predicate, program.visible, program.wanted
    expunged_meanwhile = program.expunged_meanwhile
    store = session.store
    found: list[Candidate] = []
    body_bytes = _BODY_BYTES if wanted.body else None
    for chunk in batches(visible, lambda c: c.meta.size, count=_BATCH, octets=body_bytes):
        if wanted.structure:
            loaded = await load_candidates(store, chunk, wanted)
            expunged_meanwhile = expunged_meanwhile or len(loaded) < len(chunk)
            chunk = loaded
        # Evaluating the program (and any text it scans) grows with the mailbox: off the
        # event loop.
        found += await asyncio.to_thread(_select, predicate, chunk)
        for c in chunk:
            c.raw = c.structure = None  # read: let the next chunk have the memory
    records, vanished = await sortables(store, selected.view.mailbox_id, found, reads)
    return records, expunged_meanwhile or vanished


def _completed(name: str, expunged_meanwhile: bool) -> Reply:
    if expunged_meanwhile:
        return done("Some messages were expunged", "EXPUNGEISSUED")
    return done(f"{name} completed")


async def sort(session: Session, cmd: Command[SortArgs], selected: Selected) -> Reply:
    args = cmd.args
    _check_charset(args.charset)
    reads = frozenset().union(*(SORT_FIELDS[c.key] for c in args.criteria))
    found, expunged = await _matching(session, selected, args.key, reads)
    ordered = await asyncio.to_thread(sort_messages, found, args.criteria)
    by_uid = cmd.name == "UID SORT"
    # RFC 5256 §4: sort-data = "SORT" *(SP nz-number)
    session.untagged("SORT" + "".join(f" {m.uid if by_uid else m.seq}" for m in ordered))
    return _completed(cmd.name, expunged)


async def thread(session: Session, cmd: Command[ThreadArgs], selected: Selected) -> Reply:
    args = cmd.args
    _check_charset(args.charset)
    found, expunged = await _matching(
        session, selected, args.key, THREAD_FIELDS[args.algorithm]
    )
    algorithm = (
        references if args.algorithm is ThreadAlgorithm.REFERENCES else ordered_subject
    )
    roots = await asyncio.to_thread(algorithm, found)
    by_uid = cmd.name == "UID THREAD"
    text = render_threads(roots, (lambda m: m.uid) if by_uid else (lambda m: m.seq))
    # RFC 5256 §4: thread-data = "THREAD" [SP 1*thread-list]
    session.untagged("THREAD " + text if text else "THREAD")
    return _completed(cmd.name, expunged)
