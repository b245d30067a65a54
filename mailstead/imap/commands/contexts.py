"""Live results of SEARCH and SORT (RFC 5267 §4.3): making them, keeping them up to date,
and CANCELUPDATE (§4.3.5).

Keeping a result up to date never runs the search again. The selected view records which
messages arrived or had their flags changed (``SelectedMailbox.touched``); before each
flush the session calls :func:`refresh`, which reads those messages alone (their metadata
in one store query, their stored structure or text only when a program needs it), runs
each live result's compiled program on them and leaves the verdicts with the result.
Expunged messages need no evaluation: membership decides. The lines themselves go out in
the flush (:mod:`mailstead.imap.live`), at the points the RFC allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailstead.imap.batches import batches
from mailstead.imap.commands.search import load_candidates
from mailstead.imap.live import LiveResult
from mailstead.imap.parse.commands import CancelUpdate, Command
from mailstead.imap.replies import Reply, done, no
from mailstead.imap.search import Candidate, Needs
from mailstead.imap.selected import SelectedMailbox, uid_ranges
from mailstead.imap.sort import Sortable
from mailstead.imap.states import Selected
from mailstead.store.interfaces import Messages

if TYPE_CHECKING:
    from mailstead.imap.session import Session

_BATCH = 1024  # changed messages read in one store query
_BODY_BYTES = 16 * 1024 * 1024  # whole bodies held at once (as SEARCH)


def _judge(
    results: Sequence[LiveResult], chunk: list[Candidate]
) -> list[dict[int, Sortable | None]]:
    """Each result's verdict on each message of ``chunk``."""
    out: list[dict[int, Sortable | None]] = []
    for result in results:
        verdicts: dict[int, Sortable | None] = {}
        for c in chunk:
            uid = int(c.meta.uid)
            verdicts[uid] = (
                Sortable.of(c.meta, uid, c.structure, result.reads) if result.predicate(c) else None
            )
        out.append(verdicts)
    return out


async def refresh(session: Session, selected: Selected) -> None:
    """Evaluate the live results' programs on the messages that changed since the last
    call; the verdicts wait in each result for the next flush to tell them."""
    view = selected.view
    if not selected.live:
        view.track_changes(False)
        return
    session.absorb()
    if view.gone:
        return  # the flush says BYE; there is nothing left to read
    touched, view.touched = view.touched or set(), set()
    uids = sorted(u for u in touched if view.seq_of(u) is not None and not view.is_expunged(u))
    if not uids:
        return
    results = list(selected.live)
    wanted = Needs(
        structure=any(r.wanted.structure or bool(r.reads) for r in results),
        header=any(r.wanted.header for r in results),
        body=any(r.wanted.body for r in results),
        savedate=any(r.wanted.savedate for r in results),
    )
    store = session.store
    try:
        for part in batches(uids, lambda _: 1, count=_BATCH, octets=None):
            await _judge_part(store, view, results, wanted, part)
    except BaseException:
        # Cut short (IDLE ended while the store was read, or the read failed): the
        # messages are looked at again next time, so no change goes untold.
        if view.touched is not None:
            view.touched.update(uids)
        raise


async def _judge_part(
    store: Messages,
    view: SelectedMailbox,
    results: list[LiveResult],
    wanted: Needs,
    part: list[int],
) -> None:
    ranges = uid_ranges(part)
    metas = await store.list_messages(view.mailbox_id, ranges)
    chunk = [
        Candidate(m, seq, int(m.uid) in view.recent)
        for m in metas
        if (seq := view.seq_of(int(m.uid))) is not None
    ]
    if wanted.savedate:
        saved = await store.save_dates(view.mailbox_id, ranges)
        for c in chunk:
            c.savedate = saved.get(c.meta.uid)
    body_bytes = _BODY_BYTES if wanted.body else None
    for piece in batches(chunk, lambda c: c.meta.size, count=_BATCH, octets=body_bytes):
        if wanted.structure:
            piece = await load_candidates(store, piece, wanted)
        if wanted.body or wanted.header:
            # Scanning message text: off the event loop, as SEARCH does.
            verdicts = await asyncio.to_thread(_judge, results, piece)
        else:
            verdicts = _judge(results, piece)
        for result, found in zip(results, verdicts, strict=True):
            result.verdicts.update(found)
        for c in piece:
            c.raw = c.structure = None  # judged: let the next piece have the memory


async def cancelupdate(session: Session, cmd: Command[CancelUpdate], selected: Selected) -> Reply:
    """RFC 5267 §4.3.5: stop the named live results. A tag that names none is ``NO``, as
    Dovecot answers; the others named are cancelled all the same."""
    live = selected.live
    unknown = [tag for tag in cmd.args.tags if not live.cancel(tag)]
    if not live:
        selected.view.track_changes(False)
    if unknown:
        raise no("No live result has that tag")
    return done("CANCELUPDATE completed")
