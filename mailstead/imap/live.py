"""Live results: SEARCH and SORT with ``RETURN (UPDATE)`` (RFC 5267 §4.3, CONTEXT=SEARCH
and CONTEXT=SORT), kept up to date by looking only at the messages that changed.

A live result remembers what the client was last told: the UIDs it holds (and, for SORT,
their order) and the compiled program. When messages arrive or their flags change, the
session evaluates the program against those messages alone
(:func:`mailstead.imap.commands.contexts.refresh`) and hands the verdicts here; when
messages are expunged, membership alone decides. Nothing here reads the store or the
clock: it turns verdicts into ``ADDTO`` and ``REMOVEFROM`` lines and keeps the members in
step with them.

Invariants:

- ``members`` is exactly the set the client holds after applying every line sent so far;
  a SORT result's ``order`` is those members in the requested order.
- Lines go out only from the session's flush points: a ``REMOVEFROM`` for expunged
  messages before their EXPUNGE (RFC 5267 §4.3.4: the numbers must still be valid), an
  ``ADDTO`` for new messages after their EXISTS (§4.3.3).
- Sequence-number results are kept as UIDs and numbered when a line is written, so an
  expunge between two updates renumbers nothing here.
- Sort keys never change for a stored message (flags are no sort key), so a member's
  position moves only because others come or go; ties go by UID, which is mailbox order
  (RFC 5256 §3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from mailstead.imap import response
from mailstead.imap.esearch import update
from mailstead.imap.parse.sort import Criterion
from mailstead.imap.replies import bad
from mailstead.imap.search import Needs, Predicate
from mailstead.imap.sort import Field, Sortable, sort_messages

#: Live results one selection keeps (RFC 5267 §4.3.1: "at least one updating context per
#: client, and SHOULD provide more"); past it UPDATE is refused with ``NO [NOUPDATE]``.
MAX_LIVE_RESULTS = 8
#: Messages one live result may hold when it is made; a larger result is answered but not
#: kept live (``NO [NOUPDATE]``), which bounds what a session holds between commands.
MAX_LIVE_MESSAGES = 100_000

#: A UID's message sequence number now, None when it is no longer in the client's view:
#: results of UID commands write the UID, the others this number.
Number = Callable[[int], int | None]


@dataclass(eq=False, slots=True)
class LiveResult:
    """One live result, named by the tag of the command that made it.

    ``criteria`` is None for SEARCH: its members are in mailbox order, so changes are told
    at context position 0 in mailbox order (RFC 5267 §4.3.3, §4.3.4: RECOMMENDED). For
    SORT the positions are places in ``order`` (1 is the first)."""

    tag: str
    by_uid: bool
    predicate: Predicate
    wanted: Needs
    criteria: tuple[Criterion, ...] | None
    reads: frozenset[Field]
    members: set[int]
    order: list[Sortable] = field(default_factory=list)  # SORT: members, with seq = uid
    #: Verdicts on changed messages not yet told: a Sortable (SEARCH: any) when the
    #: message matches, None when it does not.
    verdicts: dict[int, Sortable | None] = field(default_factory=dict)

    @classmethod
    def for_sort(
        cls,
        tag: str,
        by_uid: bool,
        predicate: Predicate,
        wanted: Needs,
        criteria: tuple[Criterion, ...],
        reads: frozenset[Field],
        ordered: Sequence[Sortable],
    ) -> LiveResult:
        order = [m._replace(seq=m.uid) for m in ordered]
        return cls(tag, by_uid, predicate, wanted, criteria, reads, {m.uid for m in ordered}, order)

    # -- changes ----------------------------------------------------------------------------
    def expunged(self, uids: Sequence[int], number: Number) -> list[str]:
        """The REMOVEFROM for members about to be expunged (numbered before the EXPUNGE)."""
        gone = {u for u in uids if u in self.members}
        for u in uids:
            self.verdicts.pop(u, None)
        return self._remove(gone, number)

    def apply(self, number: Number) -> list[str]:
        """Tell the verdicts gathered since the last flush: REMOVEFROM for members that no
        longer match, then ADDTO for messages that now do."""
        verdicts, self.verdicts = self.verdicts, {}
        live = {u: v for u, v in verdicts.items() if number(u) is not None}
        gone = {u for u, v in live.items() if v is None and u in self.members}
        added = [v for u, v in live.items() if v is not None and u not in self.members]
        return self._remove(gone, number) + self._add(added, number)

    def _line(self, kind: str, pairs: list[tuple[int, list[int]]]) -> list[str]:
        told = [(p, numbers) for p, numbers in pairs if numbers]
        return [update(self.tag, self.by_uid, kind, told)] if told else []

    def _numbers(self, uids: Iterable[int], number: Number) -> list[int]:
        if self.by_uid:
            return [u for u in uids if number(u) is not None]
        return [n for u in uids if (n := number(u)) is not None]

    def _remove(self, gone: set[int], number: Number) -> list[str]:
        if not gone:
            return []
        if self.criteria is None:
            self.members -= gone
            return self._line("REMOVEFROM", [(0, self._numbers(sorted(gone), number))])
        # Runs of consecutive places, told first to last: each run's place counts the
        # members before it that are still there when the client removes it (§4.3.4:
        # pairs are processed in order).
        pairs: list[tuple[int, list[int]]] = []
        removed = 0
        run: list[int] = []
        start = 0
        for i, m in enumerate(self.order):
            if m.uid in gone:
                if not run:
                    start = i + 1 - removed
                run.append(m.uid)
            elif run:
                pairs.append((start, run))
                removed += len(run)
                run = []
        if run:
            pairs.append((start, run))
        self.order = [m for m in self.order if m.uid not in gone]
        self.members -= gone
        return self._line("REMOVEFROM", [(p, self._numbers(r, number)) for p, r in pairs])

    def _add(self, added: list[Sortable], number: Number) -> list[str]:
        if not added:
            return []
        self.members |= {m.uid for m in added}
        if self.criteria is None:
            return self._line("ADDTO", [(0, self._numbers(sorted(m.uid for m in added), number))])
        fresh = {m.uid for m in added}
        self.order = sort_messages(
            self.order + [m._replace(seq=m.uid) for m in added], self.criteria
        )
        # Runs of consecutive new places, first to last: when a run is inserted every
        # result before it (old, or new from an earlier run) is already in place, so its
        # final place is where it goes (§4.3.3).
        pairs: list[tuple[int, list[int]]] = []
        run: list[int] = []
        start = 0
        for i, m in enumerate(self.order):
            if m.uid in fresh:
                if not run:
                    start = i + 1
                run.append(m.uid)
            elif run:
                pairs.append((start, run))
                run = []
        if run:
            pairs.append((start, run))
        return self._line("ADDTO", [(p, self._numbers(r, number)) for p, r in pairs])


class LiveResults:
    """The live results of one selection; they end with it (RFC 5267 §4.3: "Updates will
    cease when the mailbox is no longer selected")."""

    def __init__(self) -> None:
        self._results: dict[str, LiveResult] = {}

    def __bool__(self) -> bool:
        return bool(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[LiveResult]:
        return iter(list(self._results.values()))

    @property
    def full(self) -> bool:
        return len(self._results) >= MAX_LIVE_RESULTS

    def has(self, tag: str) -> bool:
        return tag in self._results

    def check_tag(self, tag: str) -> None:
        """RFC 5267 §4.3: UPDATE with the tag of a live result "SHALL result in the server
        rejecting the searching command with a BAD response" (updates are told by tag)."""
        if tag in self._results:
            raise bad("Tag already names a live result (CANCELUPDATE it first)")

    def keep(self, result: LiveResult) -> str | None:
        """Keep ``result`` live, or return the untagged ``NO [NOUPDATE "tag"]`` text that
        says why not (RFC 5267 §4.3.1: the command still succeeds and its other return
        options are honoured; it goes before the command's ESEARCH, as Dovecot orders
        them)."""
        if self.full or len(result.members) > MAX_LIVE_MESSAGES:
            why = "Too many live results" if self.full else "Result too large to keep live"
            tag = response.string(result.tag).decode("utf-8", "replace")
            return f"NO [NOUPDATE {tag}] {why}"
        self._results[result.tag] = result
        return None

    def cancel(self, tag: str) -> bool:
        """Stop one result's updates (RFC 5267 §4.3.5); False when no result has the tag."""
        return self._results.pop(tag, None) is not None

    def expunged(self, uids: Sequence[int], number: Number) -> list[str]:
        out: list[str] = []
        for result in self._results.values():
            out += result.expunged(uids, number)
        return out

    def apply(self, number: Number) -> list[str]:
        out: list[str] = []
        for result in self._results.values():
            out += result.apply(number)
        return out
