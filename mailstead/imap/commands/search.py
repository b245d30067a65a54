"""SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH return options (RFC 4731) and
SEARCHRES ``SAVE``/``$`` (RFC 5182). IMAP4rev2 clients always get ESEARCH."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailstead.core.errors import NotFound
from mailstead.imap import response
from mailstead.imap.parse.commands import Command
from mailstead.imap.parse.search import SUPPORTED_CHARSETS, SearchArgs, SearchKey
from mailstead.imap.search import Candidate, Needs, matcher, needs
from mailstead.imap.selected import InvalidSequence
from mailstead.imap.session import CommandError, Reply
from mailstead.imap.structure import StoredStructure
from mailstead.store.interfaces import Store

if TYPE_CHECKING:
    from mailstead.imap.session import Session


_BATCH = 64


async def _load(store: Store, cand: Candidate, wanted: Needs) -> bool:
    """Fill what the program needs; False when the message vanished meanwhile."""
    try:
        cand.structure = StoredStructure(await store.get_structure(cand.meta.blob_id))
        if wanted.body:
            cand.raw = await store.read_blob(cand.meta.blob_id)
        elif wanted.header:
            end = cand.structure.parsed.root.header_end
            cand.raw = await store.read_blob(cand.meta.blob_id, 0, end)
    except NotFound:
        return False
    return True


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

    predicate = matcher(args.key, seq_uids)
    wanted = needs(args.key)
    store = session.store
    metas = await store.list_messages(view.mailbox_id)
    visible = [
        Candidate(m, seq, int(m.uid) in view.recent)
        for m in metas
        if (seq := view.seq_of(int(m.uid))) is not None  # not yet announced: invisible
    ]
    found: list[tuple[int, int]] = []  # (seq, uid)
    for start in range(0, len(visible), _BATCH):
        chunk = visible[start : start + _BATCH]
        if wanted.structure:
            loaded = await asyncio.gather(*(_load(store, c, wanted) for c in chunk))
            chunk = [c for c, ok in zip(chunk, loaded, strict=True) if ok]
        found.extend((c.seq, int(c.meta.uid)) for c in chunk if predicate(c))

    numbers = [uid if by_uid else seq for seq, uid in found]
    opts = args.return_opts
    if opts is None and not session.rev2:
        session.untagged("SEARCH" + "".join(f" {n}" for n in numbers))  # RFC 3501 §7.2.5
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
    session.untagged(" ".join(parts))
    return Reply(text=f"{cmd.name} completed")
