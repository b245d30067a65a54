"""SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH return options (RFC 4731),
SEARCHRES ``SAVE``/``$`` (RFC 5182) and paged results, ``PARTIAL`` (RFC 9394). IMAP4rev2
clients always get ESEARCH."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailstead.core.errors import NotFound
from mailstead.imap import access, search_index
from mailstead.imap.batches import batches
from mailstead.imap.esearch import esearch
from mailstead.imap.live import LiveResult
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.search import (
    SUPPORTED_CHARSETS,
    Numbers,
    ReturnOption,
    SearchArgs,
    SearchKey,
)
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.search import Candidate, Needs, matcher, needs, uses_modseq
from mailstead.imap.search_index import IndexAnswers
from mailstead.imap.selected import InvalidSequence
from mailstead.imap.states import Selected
from mailstead.mime.stored import StoredStructure
from mailstead.store.interfaces import Messages

if TYPE_CHECKING:
    from mailstead.imap.session import Session


_BATCH = 1024  # candidates whose structures are read in one store query
_READ_BATCH = 64  # message bodies read concurrently (store read threads)
_BODY_BYTES = 16 * 1024 * 1024  # whole bodies held at once by one SEARCH (a bigger one alone)


def returned_messages(
    found: list[tuple[int, int]],
    opts: tuple[ReturnOption, ...],
    page: Sequence[tuple[int, int]],
) -> list[tuple[int, int]]:
    """The messages the result options return: what SAVE keeps in ``$``
    and what the MODSEQ return data covers. With ALL or COUNT, or with none of MIN, MAX and
    PARTIAL (SAVE alone), every message found (RFC 5182 §2.4, RFC 9394 §3.2: with COUNT "the
    "$" marker would always contain references to all messages found"); otherwise the
    PARTIAL page "together with" the MIN and/or MAX message (RFC 9394 §3.2, Table 1)."""
    asked = set(opts)
    every = {ReturnOption.ALL, ReturnOption.COUNT}
    paged = {ReturnOption.MIN, ReturnOption.MAX, ReturnOption.PARTIAL}
    if every & asked or not paged & asked:
        return found
    chosen = set(page)
    if found and ReturnOption.MIN in asked:
        chosen.add(found[0])
    if found and ReturnOption.MAX in asked:
        chosen.add(found[-1])
    return sorted(chosen)


async def load_candidates(
    store: Messages, chunk: list[Candidate], wanted: Needs
) -> list[Candidate]:
    """Fill what the program needs: the structures in one store query (``get_structures``),
    bytes concurrently. Messages that vanished meanwhile are left out."""
    stored = await store.get_structures([c.meta.blob_id for c in chunk])
    present: list[tuple[Candidate, StoredStructure]] = []
    for c in chunk:
        data = stored.get(c.meta.blob_id)
        if data is not None:
            c.structure = StoredStructure(data)
            present.append((c, c.structure))
    if not (wanted.body or wanted.header):
        return [c for c, _ in present]

    async def read(cand: Candidate, structure: StoredStructure) -> bool:
        try:
            if wanted.body:
                cand.raw = await store.read_blob(cand.meta.blob_id)
            else:
                end = structure.header_end
                cand.raw = await store.read_blob(cand.meta.blob_id, 0, end)
        except NotFound:
            return False
        return True

    out: list[Candidate] = []
    for i in range(0, len(present), _READ_BATCH):
        part = present[i : i + _READ_BATCH]
        ok = await asyncio.gather(*(read(c, structure) for c, structure in part))
        out += [c for (c, _), good in zip(part, ok, strict=True) if good]
    return out


@dataclass(slots=True)
class Candidates:
    """What SEARCH, SORT and THREAD evaluate a program over."""

    predicate: Callable[[Candidate], bool]
    wanted: Needs  # what the program reads of each message
    visible: list[Candidate]  # the messages this session can see, in mailbox order
    #: Messages the client still counts that another session expunged: the EXPUNGE must
    #: wait (RFC 9051 §7.5.1), so the answer says that it left them out (§7.1
    #: EXPUNGEISSUED), as FETCH and STORE do.
    expunged_meanwhile: bool
    #: The full-text index's answers for the text keys (None: nothing to ask it).
    index: IndexAnswers | None = None
    #: What the program reads of a message whose text keys the index settled.
    settled: Needs = field(default_factory=Needs)
    #: The program without the index's answers, for a live result (RFC 5267 §4.3): the
    #: answers hold the messages there were when the command ran, and a message that
    #: arrives later must be judged by reading it, not by its absence from them.
    unindexed: Callable[[Candidate], bool] | None = None

    @property
    def live_predicate(self) -> Callable[[Candidate], bool]:
        return self.unindexed if self.unindexed is not None else self.predicate

    def reads(self, c: Candidate) -> Needs:
        """What evaluating the program needs of this message: less than :attr:`wanted`
        when the index settles every text key for it."""
        index = self.index
        if index is None or index.unanswerable or not index.settles(self._keys, int(c.meta.uid)):
            return self.wanted
        return self.settled

    @property
    def _keys(self) -> list[SearchKey]:
        return list(self.index.hits) if self.index is not None else []


async def candidates(session: Session, selected: Selected, key: SearchKey) -> Candidates:
    """The program ``key`` compiled for this session's view, and the messages it may
    match (their save dates loaded when the program reads them)."""
    view = selected.view

    def seq_uids(numbers: Numbers) -> set[int]:
        try:
            return set(view.resolve(numbers.numbers, uid=numbers.uid))
        except InvalidSequence:
            return set(view.resolve_clamped(numbers.numbers))

    if uses_modseq(key):
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    store = session.store
    metas = await access.own_view(session, selected, await store.list_messages(view.mailbox_id))
    # After the list: a message stored meanwhile is not a candidate, so the index never
    # has to speak for one it has not seen (decision 0027).
    index = await search_index.ask(store, view.mailbox_id, key)
    predicate = matcher(key, seq_uids, selected.user.id, index)
    wanted = needs(key)
    visible = [
        Candidate(m, seq, int(m.uid) in view.recent)
        for m in metas
        if (seq := view.seq_of(int(m.uid))) is not None  # not yet announced: invisible
    ]
    if wanted.savedate:
        saved = await store.save_dates(view.mailbox_id)
        for c in visible:
            c.savedate = saved.get(c.meta.uid)
    unindexed = matcher(key, seq_uids, selected.user.id) if index is not None else None
    return Candidates(
        predicate, wanted, visible, len(visible) < view.exists, index, needs(key, text=False),
        unindexed,
    )


async def _load(store: Messages, program: Candidates, chunk: list[Candidate]) -> list[Candidate]:
    """Load what each message of the chunk needs (the bodies only of those the index does
    not settle), keeping mailbox order; messages that vanished are left out."""
    groups: dict[Needs, list[Candidate]] = {}
    for c in chunk:
        groups.setdefault(program.reads(c), []).append(c)
    loaded: list[Candidate] = []
    for reads, group in groups.items():
        if reads.structure:
            loaded += await load_candidates(store, group, reads)
        else:
            loaded += group
    if len(groups) > 1:
        loaded.sort(key=lambda c: c.seq)
    return loaded


def _evaluate(predicate: Callable[[Candidate], bool], chunk: list[Candidate]) -> list[bool]:
    return [predicate(c) for c in chunk]


async def search(session: Session, cmd: Command[SearchArgs], selected: Selected) -> Reply:
    args = cmd.args
    view = selected.view
    by_uid = cmd.name == "UID SEARCH"
    saving = args.return_opts is not None and ReturnOption.SAVE in args.return_opts
    updating = args.return_opts is not None and ReturnOption.UPDATE in args.return_opts
    if updating:
        selected.live.check_tag(cmd.tag)
    if args.charset is not None and args.charset not in SUPPORTED_CHARSETS:
        if saving:
            view.saved = []  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties $
        raise no("Unsupported charset", "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")")

    with_modseq = uses_modseq(args.key)
    program = await candidates(session, selected, args.key)
    predicate, wanted, visible = program.predicate, program.wanted, program.visible
    expunged_meanwhile = program.expunged_meanwhile
    store = session.store
    found: list[tuple[int, int]] = []  # (seq, uid)
    modseqs: dict[int, int] = {}  # uid -> modseq of what was found
    body_bytes = _BODY_BYTES if wanted.body else None
    for chunk in batches(visible, lambda c: c.meta.size, count=_BATCH, octets=body_bytes):
        if wanted.structure:
            loaded = await _load(store, program, chunk)
            expunged_meanwhile = expunged_meanwhile or len(loaded) < len(chunk)
            chunk = loaded
        if any(c.raw is not None for c in chunk):
            # Decoding and scanning message text grows with what the messages hold (a
            # MIME bomb of 10,000 parts): off the event loop, so no other session waits.
            hits = await asyncio.to_thread(_evaluate, predicate, chunk)
        else:
            hits = [predicate(c) for c in chunk]
        for c, hit in zip(chunk, hits, strict=True):
            if hit:
                found.append((c.seq, int(c.meta.uid)))
                modseqs[int(c.meta.uid)] = int(c.meta.modseq)
            c.raw = c.structure = None  # searched: let the next chunk have the memory

    completed = (
        done("Some messages were expunged", "EXPUNGEISSUED")
        if expunged_meanwhile
        else done(f"{cmd.name} completed")
    )
    numbers = [uid if by_uid else seq for seq, uid in found]
    opts = args.return_opts
    if opts is None and not session.rev2:
        # RFC 3501 §7.2.5; RFC 7162 §3.1.5: with a MODSEQ key, the highest found.
        tail = f" (MODSEQ {max(modseqs.values())})" if with_modseq and found else ""
        session.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + tail)
        return completed
    if not opts:
        opts = (ReturnOption.ALL,)  # rev2 plain SEARCH, and RETURN () (RFC 4731 §3.1)
    # RFC 9394 §3.1: the first result (lowest UID) is 1, -1 the last; MIN, MAX and COUNT
    # still describe every message found (§3.2 adds the MIN/MAX message to the page).
    page = args.partial.page(found) if args.partial is not None else []
    returned = returned_messages(found, opts, page)
    if updating:
        # RFC 5267 §4.3: a live result in mailbox order; its changes are told at position
        # 0 (§4.3.3). The program stays as compiled now: sequence numbers and $ in it
        # name the messages they named when the command ran.
        refused = selected.live.keep(LiveResult(cmd.tag, by_uid, program.live_predicate,
                                                wanted, None,
                                                frozenset(), {u for _, u in found}))
        if refused is not None:
            session.untagged(refused)
        else:
            view.track_changes()
    if saving:
        # RFC 5182 §2.4: with only MIN and/or MAX, $ holds just those messages; RFC 9394
        # §3.2: with PARTIAL, the page and those.
        view.saved = [u for _, u in returned]
        if set(opts) == {ReturnOption.SAVE}:
            return completed  # RFC 5182 §2.1: no ESEARCH
    # RFC 4731 §3.2: the highest mod-sequence of the messages returned; with only MIN
    # and/or MAX, of those one or two; with PARTIAL, of the page and those (RFC 9394 §3.2
    # names the same set for SAVE).
    modseq = max(modseqs[u] for _, u in returned) if with_modseq and returned else None
    session.untagged(esearch(cmd.tag, by_uid=by_uid, numbers=numbers, opts=opts,
                             partial=args.partial, modseq=modseq))
    return completed
