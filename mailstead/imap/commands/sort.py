"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256); SORT's return options (ESORT, RFC
5267 §3) and live sorted results (CONTEXT=SORT, §4).

The messages are found as SEARCH finds them (the same evaluator over the same batches);
what SORT and THREAD compare comes from the structure ``mime/`` stored at delivery, so no
message is parsed again. Ordering and threading are pure (:mod:`mailstead.imap.sort`) and
run off the event loop: on a large mailbox they take longer than a session may hold it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailstead.imap.batches import batches
from mailstead.imap.commands.search import (
    Candidates,
    candidates,
    load_candidates,
    returned_messages,
)
from mailstead.imap.esearch import esearch
from mailstead.imap.live import LiveResult
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.search import SUPPORTED_CHARSETS, ReturnOption, SearchKey
from mailstead.imap.parse.sort import SortArgs, ThreadAlgorithm, ThreadArgs
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.search import Candidate, uses_modseq
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
from mailstead.imap.states import Selected

if TYPE_CHECKING:
    from mailstead.imap.session import Session

_BATCH = 1024  # candidates whose structures are read in one store query
_BODY_BYTES = 16 * 1024 * 1024  # whole bodies held at once (as SEARCH)


def _check_charset(charset: str) -> None:
    # RFC 5256 §3: "the server MUST support US-ASCII and UTF-8"; others are NO [BADCHARSET].
    if charset not in SUPPORTED_CHARSETS:
        raise no("Unsupported charset", "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")")


def _select(
    predicate: Callable[[Candidate], bool], chunk: list[Candidate], reads: frozenset[Field]
) -> list[Sortable]:
    """The chunk's matching messages as SORT and THREAD read them."""
    return [Sortable.of(c.meta, c.seq, c.structure, reads) for c in chunk if predicate(c)]


async def _matching(
    session: Session, selected: Selected, key: SearchKey, reads: frozenset[Field]
) -> tuple[list[Sortable], bool, Candidates]:
    """The messages ``key`` finds, with the fields ``reads`` names, whether some the
    client still counts were expunged meanwhile (then the reply says ``EXPUNGEISSUED``,
    as SEARCH's does), and the compiled program (a live result keeps it)."""
    program = await candidates(session, selected, key)
    predicate, visible = program.predicate, program.visible
    expunged_meanwhile = program.expunged_meanwhile
    # The sort keys come from the stored structure even when the program needs none of it.
    wanted = dataclasses.replace(program.wanted,
                                 structure=bool(reads) or program.wanted.structure)
    store = session.store
    found: list[Sortable] = []
    body_bytes = _BODY_BYTES if wanted.body else None
    for chunk in batches(visible, lambda c: c.meta.size, count=_BATCH, octets=body_bytes):
        if wanted.structure:
            loaded = await load_candidates(store, chunk, wanted)
            expunged_meanwhile = expunged_meanwhile or len(loaded) < len(chunk)
            chunk = loaded
        # Decoding the stored fields (and any text the program scans) grows with the
        # mailbox: off the event loop.
        found += await asyncio.to_thread(_select, predicate, chunk, reads)
        for c in chunk:
            c.raw = c.structure = None  # read: let the next chunk have the memory
    return found, expunged_meanwhile, program


def _completed(name: str, expunged_meanwhile: bool) -> Reply:
    if expunged_meanwhile:
        return done("Some messages were expunged", "EXPUNGEISSUED")
    return done(f"{name} completed")


async def sort(session: Session, cmd: Command[SortArgs], selected: Selected) -> Reply:
    args = cmd.args
    _check_charset(args.charset)
    opts = args.return_opts
    updating = opts is not None and ReturnOption.UPDATE in opts
    if updating:
        selected.live.check_tag(cmd.tag)
    reads = frozenset().union(*(SORT_FIELDS[c.key] for c in args.criteria))
    found, expunged, program = await _matching(session, selected, args.key, reads)
    ordered = await asyncio.to_thread(sort_messages, found, args.criteria)
    by_uid = cmd.name == "UID SORT"
    completed = _completed(cmd.name, expunged)
    with_modseq = uses_modseq(args.key)
    if opts is None:
        # RFC 5256 §4: sort-data = "SORT" *(SP nz-number); RFC 7162 §3.1.5, §7: with a
        # MODSEQ key, SP search-sort-mod-seq, the highest mod-sequence found.
        tail = f" (MODSEQ {max(m.modseq for m in ordered)})" if with_modseq and ordered else ""
        session.untagged(
            "SORT" + "".join(f" {m.uid if by_uid else m.seq}" for m in ordered) + tail
        )
        return completed
    # RFC 5267 §3: an extended SORT answers as an extended SEARCH does, in ESEARCH, with
    # MIN and MAX the first and last in the sort order and ALL in that order (§3.1);
    # RETURN () is ALL (§3.3).
    if not opts:
        opts = (ReturnOption.ALL,)
    pairs = [(m.seq, m.uid) for m in ordered]
    page = args.partial.page(pairs) if args.partial is not None else []
    returned = returned_messages(pairs, opts, page)
    if ReturnOption.SAVE in opts:
        # RFC 5182 §2.4 as for SEARCH: $ is a set, kept in mailbox order.
        selected.view.saved = sorted(u for _, u in returned)
        if set(opts) == {ReturnOption.SAVE}:
            return completed  # RFC 5182 §2.1: no ESEARCH
    if updating:
        # RFC 5267 §4.3: a live result in the requested order; changes are told at their
        # places in it (§4.3.3, §4.3.4).
        refused = selected.live.keep(LiveResult.for_sort(
            cmd.tag, by_uid, program.predicate, program.wanted, args.criteria, reads, ordered
        ))
        if refused is not None:
            session.untagged(refused)
        else:
            selected.view.track_changes()
    numbers = [m.uid if by_uid else m.seq for m in ordered]
    # RFC 4731 §3.2 as for SEARCH: the highest mod-sequence of the messages returned.
    modseqs = {m.uid: m.modseq for m in ordered}
    modseq = max(modseqs[u] for _, u in returned) if with_modseq and returned else None
    session.untagged(esearch(cmd.tag, by_uid=by_uid, numbers=numbers, opts=opts,
                             partial=args.partial, modseq=modseq))
    return completed


async def thread(session: Session, cmd: Command[ThreadArgs], selected: Selected) -> Reply:
    args = cmd.args
    _check_charset(args.charset)
    found, expunged, _ = await _matching(
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
