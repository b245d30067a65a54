"""SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH return options (RFC 4731) and
SEARCHRES ``SAVE``/``$`` (RFC 5182). IMAP4rev2 clients always get ESEARCH."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailstead.core.errors import NotFound
from mailstead.imap import response
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.search import SUPPORTED_CHARSETS, SearchArgs, SearchKey
from mailstead.imap.search import Candidate, Needs, matcher, needs, uses_modseq
from mailstead.imap.selected import InvalidSequence
from mailstead.imap.session import CommandError, Reply
from mailstead.imap.structure import StoredStructure
from mailstead.store.interfaces import Store

if TYPE_CHECKING:
    from mailstead.imap.session import Session


_BATCH = 1024  # candidates whose structures are read in one store query
_READ_BATCH = 64  # message bodies read concurrently (store read threads)


async def _load_chunk(store: Store, chunk: list[Candidate], wanted: Needs) -> list[Candidate]:
    """Fill what the program needs: the structures in one store query (``get_structures``),
    bytes concurrently. Messages that vanished meanwhile are left out."""
    stored = await store.get_structures([c.meta.blob_id for c in chunk])
    present = []
    for c in chunk:
        data = stored.get(c.meta.blob_id)
        if data is not None:
            c.structure = StoredStructure(data)
            present.append(c)
    if not (wanted.body or wanted.header):
        return present

    async def read(cand: Candidate) -> bool:
        assert cand.structure is not None
        try:
            if wanted.body:
                cand.raw = await store.read_blob(cand.meta.blob_id)
            else:
                end = cand.structure.header_end
                cand.raw = await store.read_blob(cand.meta.blob_id, 0, end)
        except NotFound:
            return False
        return True

    out: list[Candidate] = []
    for i in range(0, len(present), _READ_BATCH):
        part = present[i : i + _READ_BATCH]
        ok = await asyncio.gather(*(read(c) for c in part))
        out += [c for c, good in zip(part, ok, strict=True) if good]
    return out


async def search(session: Session, cmd: Command) -> Reply:
    args = cmd.args
    view = session.selected
    assert isinstance(args, SearchArgs) and view is not None
    by_uid = cmd.name == "UID SEARCH"
    saving = args.return_opts is not None and "SAVE" in args.return_opts
    if args.charset is not None and args.charset not in SUPPORTED_CHARSETS:
        if saving:
            view.saved = []  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties $
        raise CommandError(
            "NO", "Unsupported charset", "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")"
        )

    def seq_uids(key: SearchKey) -> set[int]:
        seqset = key.a
        try:
            return set(view.resolve(seqset, uid=key.op == "UID"))  # type: ignore[arg-type]
        except InvalidSequence:
            return set(view.resolve_clamped(seqset))  # type: ignore[arg-type]

    with_modseq = uses_modseq(args.key)
    if with_modseq:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    assert session.user is not None
    predicate = matcher(args.key, seq_uids, session.user.id)
    wanted = needs(args.key)
    store = session.store
    metas = await store.list_messages(view.mailbox_id)
    visible = [
        Candidate(m, seq, int(m.uid) in view.recent)
        for m in metas
        if (seq := view.seq_of(int(m.uid))) is not None  # not yet announced: invisible
    ]
    if wanted.savedate:
        saved = await store.save_dates(view.mailbox_id)
        for c in visible:
            c.savedate = saved.get(c.meta.uid)
    found: list[tuple[int, int]] = []  # (seq, uid)
    modseqs: dict[int, int] = {}  # uid -> modseq of what was found
    for start in range(0, len(visible), _BATCH):
        chunk = visible[start : start + _BATCH]
        if wanted.structure:
            chunk = await _load_chunk(store, chunk, wanted)
        for c in chunk:
            if predicate(c):
                found.append((c.seq, int(c.meta.uid)))
                modseqs[int(c.meta.uid)] = int(c.meta.modseq)

    numbers = [uid if by_uid else seq for seq, uid in found]
    opts = args.return_opts
    if opts is None and not session.rev2:
        # RFC 3501 §7.2.5; RFC 7162 §3.1.5: with a MODSEQ key, the highest found.
        tail = f" (MODSEQ {max(modseqs.values())})" if with_modseq and found else ""
        session.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + tail)
        return Reply(text=f"{cmd.name} completed")
    if not opts:
        opts = ("ALL",)  # rev2 plain SEARCH, and RETURN () (RFC 4731 §3.1)
    if saving:
        # RFC 5182 §2.4: with only MIN and/or MAX, $ holds just those messages.
        if {"ALL", "COUNT"} & set(opts) or not {"MIN", "MAX"} & set(opts):
            view.saved = [u for _, u in found]
        else:
            keep = []
            if found and "MIN" in opts:
                keep.append(found[0][1])
            if found and "MAX" in opts:
                keep.append(found[-1][1])
            view.saved = sorted(set(keep))
        if set(opts) == {"SAVE"}:
            return Reply(text=f"{cmd.name} completed")  # RFC 5182 §2.1: no ESEARCH
    parts = ['ESEARCH (TAG ' + response.string(cmd.tag).decode("utf-8", "replace") + ")"]
    if by_uid:
        parts.append("UID")
    if numbers and "MIN" in opts:
        parts.append(f"MIN {numbers[0]}")
    if numbers and "MAX" in opts:
        parts.append(f"MAX {numbers[-1]}")
    if numbers and "ALL" in opts:
        parts.append(f"ALL {response.uid_set(numbers)}")
    if "COUNT" in opts:
        parts.append(f"COUNT {len(numbers)}")
    if with_modseq and found:
        # RFC 4731 §3.2: the highest mod-sequence of the messages returned; with only MIN
        # and/or MAX, of those one or two.
        if {"ALL", "COUNT"} & set(opts):
            reported = list(modseqs.values())
        else:
            reported = [modseqs[found[0][1]]] if "MIN" in opts else []
            reported += [modseqs[found[-1][1]]] if "MAX" in opts else []
        if reported:
            parts.append(f"MODSEQ {max(reported)}")
    session.untagged(" ".join(parts))
    return Reply(text=f"{cmd.name} completed")
