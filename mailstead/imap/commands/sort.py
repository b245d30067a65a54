"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256); SORT's return options (ESORT, RFC
5267 §3) and live sorted results (CONTEXT=SORT, §4).

The messages are found as SEARCH finds them (the same evaluator over the same batches);
what SORT and THREAD compare comes from the sort keys the store kept of each body
(:mod:`mailstead.imap.sort_keys`, decision 0031), so no message is parsed again and no
structure decoded. Ordering and threading are pure (:mod:`mailstead.imap.sort`) and run
off the event loop: on a large mailbox they take longer than a session may hold it. An
answer over every message the session sees is kept for the next identical command
(:mod:`mailstead.imap.sort_answers`). ESORT, live results and a program with a MODSEQ
key need the sorted records themselves, so they take the records, not a kept answer.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from mailstead.imap import access
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
from mailstead.imap.parse.search import SUPPORTED_CHARSETS, All, ReturnOption, SearchKey
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
from mailstead.imap.sort_answers import Answer, numbers
from mailstead.imap.sort_keys import arrival_records, sortables
from mailstead.imap.states import Selected
from mailstead.store.models import MessageMeta

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


#: Orders the records and renders the answer's data, numbered by UID when told so.
Answerer = Callable[[list[Sortable], bool], str]


async def _matching(
    session: Session, selected: Selected, key: SearchKey
) -> tuple[list[Candidate], Candidates, bool]:
    """The messages ``key`` finds, the compiled program (a live result keeps it; its
    ``visible`` are the messages the session sees), and whether some the client still
    counts were expunged meanwhile (then the reply says ``EXPUNGEISSUED``, as SEARCH's
    does)."""
    program = await candidates(session, selected, key)
    predicate, visible, wanted = program.predicate, program.visible, program.wanted
    expunged_meanwhile = program.expunged_meanwhile
    store = session.store
    found: list[Candidate] = []
    body_bytes = _BODY_BYTES if wanted.body else None
    # A program over the message list alone is evaluated in one step.
    count = _BATCH if wanted.structure else max(len(visible), 1)
    for chunk in batches(visible, lambda c: c.meta.size, count=count, octets=body_bytes):
        if wanted.structure:
            loaded = await load_candidates(store, chunk, wanted)
            expunged_meanwhile = expunged_meanwhile or len(loaded) < len(chunk)
            chunk = loaded
        # Evaluating the program (and any text it scans) grows with the mailbox: off the
        # event loop.
        found += await asyncio.to_thread(_select, predicate, chunk)
        for c in chunk:
            c.raw = c.structure = None  # read: let the next chunk have the memory
    return found, program, expunged_meanwhile


async def _every_message(
    session: Session, selected: Selected
) -> tuple[list[MessageMeta], array[int], array[int]] | None:
    """For a program that finds every message (``ALL``, what clients send): the messages,
    their UIDs and sequence numbers, read from the message lists alone, without the
    program's evaluation. None unless the store's list and the session's hold the same
    UIDs (then every message is visible and numbered by its place); otherwise an expunge
    or a delivery is not announced yet, and the full path answers."""
    view = selected.view
    metas = await session.store.list_messages(view.mailbox_id)
    uids = numbers([m.uid for m in metas])
    if uids != numbers(view.uids):
        return None
    return metas, uids, numbers(range(1, len(uids) + 1))


async def _answer(
    session: Session, selected: Selected, key: SearchKey, reads: frozenset[Field],
    what: Hashable, by_uid: bool, answer: Answerer,
) -> tuple[str, bool]:
    """The answer's data over the messages ``key`` finds, compared by the fields ``reads``
    names, and whether some were expunged meanwhile. An answer over every message the
    session sees is the same whatever the program was: it is kept under ``what`` (the
    criteria or algorithm), and a kept one over the same messages is used instead."""
    kept = session.ctx.sort_answers
    view = selected.view
    # The answers kept or made from the message list alone skip the program's evaluation,
    # and with it the check candidates() makes: reading needs "r" (RFC 4314, decision 0028).
    access.require(await access.selected_rights(session, selected), "r", "reading it")
    every = await _every_message(session, selected) if isinstance(key, All) else None
    if every is not None:
        metas, uids, seqs = every
        text = kept.get((view.mailbox_id, view.uidvalidity, what), uids, seqs, by_uid)
        if text is not None:
            return text, False
        # \Recent is not read by ALL.
        found, expunged = [Candidate(m, seq, False) for seq, m in enumerate(metas, 1)], False
        whole = True
    else:
        found, program, expunged = await _matching(session, selected, key)
        whole = not expunged and len(found) == len(program.visible)
        if whole:
            uids = numbers([c.meta.uid for c in found])
            seqs = numbers([c.seq for c in found])
            text = kept.get((view.mailbox_id, view.uidvalidity, what), uids, seqs, by_uid)
            if text is not None:
                return text, False
    if reads:
        records, vanished = await sortables(
            session.store, session.ctx.sort_records, (view.mailbox_id, view.uidvalidity), found
        )
    else:  # ARRIVAL and SIZE: the message list is enough
        records, vanished = arrival_records(found), False
    # Ordering and threading grow with the mailbox: off the event loop.
    text = await asyncio.to_thread(answer, records, by_uid)
    if whole and not vanished:
        kept.put((view.mailbox_id, view.uidvalidity, what), Answer(
            uids, seqs, text if by_uid else None, None if by_uid else text))
    return text, expunged or vanished


def _uid(m: Sortable) -> int:
    return m.uid


def _seq(m: Sortable) -> int:
    return m.seq


async def _ordered(
    session: Session, selected: Selected, args: SortArgs, reads: frozenset[Field]
) -> tuple[list[Sortable], bool, Candidates]:
    """The records of the messages ``args.key`` finds, in the order of ``args.criteria``,
    whether some were expunged meanwhile, and the program (for a live result)."""
    view = selected.view
    found, program, expunged = await _matching(session, selected, args.key)
    if reads:
        records, vanished = await sortables(
            session.store, session.ctx.sort_records, (view.mailbox_id, view.uidvalidity), found
        )
    else:  # ARRIVAL and SIZE: the message list is enough
        records, vanished = arrival_records(found), False
    # Ordering grows with the mailbox: off the event loop.
    ordered = await asyncio.to_thread(sort_messages, records, args.criteria)
    return ordered, expunged or vanished, program


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
    by_uid = cmd.name == "UID SORT"
    with_modseq = uses_modseq(args.key)
    if opts is None and not with_modseq:

        def answer(records: list[Sortable], by_uid: bool) -> str:
            ordered = sort_messages(records, args.criteria)
            if by_uid:
                return " ".join([str(m.uid) for m in ordered])
            return " ".join([str(m.seq) for m in ordered])

        text, expunged = await _answer(session, selected, args.key, reads,
                                       ("SORT", args.criteria), by_uid, answer)
        # RFC 5256 §4: sort-data = "SORT" *(SP nz-number)
        session.untagged("SORT " + text if text else "SORT")
        return _completed(cmd.name, expunged)
    ordered, expunged, program = await _ordered(session, selected, args, reads)
    completed = _completed(cmd.name, expunged)
    if opts is None:
        # RFC 5256 §4 with RFC 7162 §3.1.5, §7: with a MODSEQ key, SP search-sort-mod-seq,
        # the highest mod-sequence found.
        tail = f" (MODSEQ {max(m.modseq for m in ordered)})" if ordered else ""
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
            cmd.tag, by_uid, program.live_predicate, program.wanted, args.criteria, reads,
            ordered
        ))
        if refused is not None:
            session.untagged(refused)
        else:
            selected.view.track_changes()
    shown = [m.uid if by_uid else m.seq for m in ordered]
    # RFC 4731 §3.2 as for SEARCH: the highest mod-sequence of the messages returned.
    modseqs = {m.uid: m.modseq for m in ordered}
    modseq = max(modseqs[u] for _, u in returned) if with_modseq and returned else None
    session.untagged(esearch(cmd.tag, by_uid=by_uid, numbers=shown, opts=opts,
                             partial=args.partial, modseq=modseq))
    return completed


async def thread(session: Session, cmd: Command[ThreadArgs], selected: Selected) -> Reply:
    args = cmd.args
    _check_charset(args.charset)
    algorithm = (
        references if args.algorithm is ThreadAlgorithm.REFERENCES else ordered_subject
    )

    def answer(records: list[Sortable], by_uid: bool) -> str:
        return render_threads(algorithm(records), _uid if by_uid else _seq)

    text, expunged = await _answer(
        session, selected, args.key, THREAD_FIELDS[args.algorithm], ("THREAD", args.algorithm),
        cmd.name == "UID THREAD", answer,
    )
    # RFC 5256 §4: thread-data = "THREAD" [SP 1*thread-list]
    session.untagged("THREAD " + text if text else "THREAD")
    return _completed(cmd.name, expunged)
