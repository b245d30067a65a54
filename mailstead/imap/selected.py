"""The selected mailbox as one session sees it: the seq<->UID view and pending updates.

Invariants (RFC 9051 §2.3.1.2, §7.5.1):

- ``uids`` is strictly ascending; message sequence number ``n`` is ``uids[n - 1]``. It changes
  only in :meth:`updates`: new UIDs are appended (then EXISTS is sent) and expunged UIDs are
  removed (each with an EXPUNGE) — and the latter only when the caller says expunges are
  allowed. Between two such points every sequence number the client knows stays valid.
- A UID the store expunged stays in the view, marked pending, until an EXPUNGE for it is sent;
  FETCH/STORE/SEARCH simply do not find it in the store any more.
- ``reported_exists`` is the count the client was last told; it only shrinks through EXPUNGE
  responses, so the client's view and ours never disagree.
- No FETCH shows a keyword the client was not told of by FLAGS first: ``keywords`` is
  what it was told, and whatever writes a FETCH with flags asks
  :meth:`SelectedMailbox.announce_keywords` first (RFC 9051 §7.3.5).
- Flag changes are deduplicated by modseq: an event whose modseq is not above what this
  session already knows (from SELECT or from its own STORE) produces no FETCH.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence

from mailstead.core.types import SEEN
from mailstead.imap import response
from mailstead.imap.parse.primitives import SequenceSet
from mailstead.store.models import ChangeEvent, ChangeKind, Mailbox, MessageMeta


class InvalidSequence(Exception):
    """A message sequence number outside 1..EXISTS (answered BAD, like Dovecot and mox)."""


class MailboxGone(Exception):
    """The selected mailbox was deleted by another session."""


class RecentTracker:
    """\\Recent for IMAP4rev1 (RFC 3501 §2.3.2), kept per process: the first session to see
    a message (read-write) claims it. Not persisted — after a restart everything counts as
    recent once, which the RFC allows ("may be lost"). Keyed by (mailbox id, UIDVALIDITY):
    a database may reuse the id of a deleted mailbox, never its UIDVALIDITY."""

    def __init__(self) -> None:
        self._claimed: dict[tuple[int, int], int] = {}

    def claim(self, mailbox: tuple[int, int], uids: Iterable[int]) -> set[int]:
        mark = self._claimed.get(mailbox, 0)
        mine = {u for u in uids if u > mark}
        if mine:
            self._claimed[mailbox] = max(mine)
        return mine

    def unclaimed(self, mailbox: tuple[int, int], uids: Iterable[int]) -> set[int]:
        """The UIDs no read-write session has claimed yet (EXAMINE, STATUS RECENT)."""
        mark = self._claimed.get(mailbox, 0)
        return {u for u in uids if u > mark}


class SelectedMailbox:
    """One session's view of its selected mailbox (see the module invariants)."""

    def __init__(
        self,
        mailbox: Mailbox,
        messages: Sequence[MessageMeta],
        *,
        readonly: bool,
        recent: set[int] | None = None,
        name_prefix: str = "",
        private_seen: set[int] | None = None,
        viewer: int | None = None,
    ) -> None:
        self.mailbox_id = mailbox.id
        self.owner_id = mailbox.user_id  # another account's for a shared mailbox
        # What comes before the owner's name for it ("Other Users/<owner>/" for a shared
        # mailbox, decision 0028), so a RENAME by the owner keeps the session's name right.
        self.name_prefix = name_prefix
        # Another account's mailbox: the UIDs this user has seen by its own \\Seen, which
        # replaces the owner's in everything this session shows (decision 0028); None for
        # the user's own mailboxes. ``viewer`` is the user.
        self.private_seen = private_seen
        self.viewer = viewer
        self.name = mailbox.name
        self.uidvalidity = mailbox.uidvalidity
        self.readonly = readonly
        # UID and ModSeq are ints at run time; SELECT of a big mailbox builds these per row.
        self.uids: list[int] = [m.uid for m in messages]
        self.modseqs: dict[int, int] = {m.uid: m.modseq for m in messages}
        # RFC 7162 HIGHESTMODSEQ as far as this session has absorbed changes.
        self.highestmodseq = max(mailbox.highestmodseq, max(self.modseqs.values(), default=0))
        self.reported_exists = len(self.uids)
        self.recent: set[int] = set(recent or ())
        self.saved: list[int] = []  # RFC 5182 SEARCHRES "$", as UIDs
        self.keywords: set[str] = set()
        for flags in {m.flags for m in messages}:  # few distinct flag sets
            self.keywords.update(f for f in flags if not f.startswith("\\"))
        self._expunged: set[int] = set()
        self._flag_updates: dict[int, frozenset[str]] = {}
        self._new_keywords: set[str] = set()  # on messages that arrived, not yet announced
        self._recent_reported = len(self.recent)
        self.gone = False
        #: UIDs that arrived or whose flags changed since live results last looked (RFC
        #: 5267 §4.3); None while no live result asks, so nothing is kept for nobody.
        self.touched: set[int] | None = None

    # -- numbers --------------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def contains(self, uid: int) -> bool:
        return uid in self.modseqs

    def resolve(self, seqset: SequenceSet, *, uid: bool) -> list[int]:
        """The UIDs a sequence set names, ascending and unique (RFC 9051 §9 seq-number:
        ``*`` is the largest number in use, ``a:b`` equals ``b:a``)."""
        if seqset.saved:
            return [u for u in self.saved if u in self.modseqs]
        if uid:
            return self._resolve_uids(seqset)
        n = len(self.uids)
        if n == 0 and all(a is None or b is None for a, b in seqset.ranges):
            return []  # "1:*" in an empty mailbox names nothing (Dovecot, James agree)
        chosen: set[int] = set()
        for a, b in seqset.ranges:
            lo = n if a is None else a
            hi = n if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            if lo < 1 or hi > n:
                raise InvalidSequence("message sequence number out of range")
            chosen.update(self.uids[lo - 1 : hi])
        return sorted(chosen)

    def resolve_clamped(self, seqset: SequenceSet) -> list[int]:
        """Like :meth:`resolve` for sequence numbers, but numbers beyond EXISTS match
        nothing instead of being an error (SEARCH keys)."""
        n = len(self.uids)
        chosen: set[int] = set()
        for a, b in seqset.ranges:
            lo = n if a is None else a
            hi = n if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            chosen.update(self.uids[max(lo, 1) - 1 : min(hi, n)])
        return sorted(chosen)

    def _resolve_uids(self, seqset: SequenceSet) -> list[int]:
        if not self.uids:
            return []
        top = self.uids[-1]
        chosen: set[int] = set()
        for a, b in seqset.ranges:
            lo = top if a is None else a
            hi = top if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            start = bisect.bisect_left(self.uids, lo)
            end = bisect.bisect_right(self.uids, hi)
            chosen.update(self.uids[start:end])
        return sorted(chosen)

    # -- changes from the store -----------------------------------------------------------
    def absorb(self, events: Iterable[ChangeEvent], claim: Callable[[list[int]], set[int]]) -> None:
        """Fold committed changes into the pending updates. ``claim`` decides which new UIDs
        are \\Recent for this session."""
        for ev in events:
            if ev.mailbox_id != self.mailbox_id:
                continue
            if ev.modseq > self.highestmodseq:
                self.highestmodseq = int(ev.modseq)
            if ev.kind is ChangeKind.EXISTS:
                new = [int(u) for u in ev.uids if int(u) not in self.modseqs]
                # The new messages' flags ride on the event: keywords nobody announced to
                # this session yet go out as FLAGS after the EXISTS (RFC 9051 §7.3.5).
                for arrived, flags in zip(ev.uids, ev.flags, strict=False):
                    if int(arrived) in new:
                        self._new_keywords.update(
                            f for f in flags if not f.startswith("\\") and f not in self.keywords
                        )
                if self.touched is not None:
                    self.touched.update(new)
                for u in sorted(new):
                    if self.uids and u < self.uids[-1]:
                        bisect.insort(self.uids, u)  # not expected: UIDs are assigned in order
                    else:
                        self.uids.append(u)
                    self.modseqs[u] = int(ev.modseq)
                if new and not self.readonly:
                    self.recent |= claim(new)
            elif ev.kind is ChangeKind.FLAGS:
                for u, flags in zip(ev.uids, ev.flags, strict=False):
                    u = int(u)
                    known = self.modseqs.get(u)
                    if known is None or u in self._expunged:
                        continue
                    if self.touched is not None:
                        self.touched.add(u)  # this session's own STORE changes results too
                    if ev.modseq <= known:
                        continue
                    self.modseqs[u] = int(ev.modseq)
                    if self.private_seen is not None:  # this user's \Seen, not the owner's
                        others = flags - {SEEN}
                        flags = others | {SEEN} if u in self.private_seen else others
                    self._flag_updates[u] = flags
            elif ev.kind is ChangeKind.PRIVATE_SEEN:
                if self.private_seen is None or ev.viewer != self.viewer:
                    continue
                for u, flags in zip(ev.uids, ev.flags, strict=False):
                    u = int(u)
                    seen = SEEN in flags
                    if u not in self.modseqs or u in self._expunged or (
                            (u in self.private_seen) == seen):
                        continue  # this session's own change, already shown
                    if seen:
                        self.private_seen.add(u)
                    else:
                        self.private_seen.discard(u)
                    self._flag_updates[u] = flags
            elif ev.kind is ChangeKind.EXPUNGE:
                for u in ev.uids:
                    if int(u) in self.modseqs:
                        self._expunged.add(int(u))
                        self._flag_updates.pop(int(u), None)
            elif ev.kind is ChangeKind.MAILBOX_DELETED:
                self.gone = True
            elif ev.kind is ChangeKind.MAILBOX_RENAMED and ev.name:
                self.name = self.name_prefix + ev.name

    def track_changes(self, on: bool = True) -> None:
        """Record (or stop recording) which messages arrive or change flags, for live
        results (RFC 5267 §4.3)."""
        if not on:
            self.touched = None
        elif self.touched is None:
            self.touched = set()

    def note_own_flags(self, uid: int, modseq: int) -> None:
        """This session's STORE already told the client; the echo event must stay quiet."""
        if uid in self.modseqs and modseq > self.modseqs[uid]:
            self.modseqs[uid] = modseq
        self.highestmodseq = max(self.highestmodseq, modseq)
        self._flag_updates.pop(uid, None)

    def note_expunged(self, uids: Iterable[int]) -> None:
        for u in uids:
            if u in self.modseqs:
                self._expunged.add(u)
                self._flag_updates.pop(u, None)

    def is_expunged(self, uid: int) -> bool:
        return uid in self._expunged

    @property
    def has_pending(self) -> bool:
        return bool(
            self._expunged
            or self._flag_updates
            or self._new_keywords
            or self.reported_exists != len(self.uids)
        )

    def updates(
        self,
        *,
        allow_expunge: bool,
        rev2: bool,
        fetch_flags: Callable[[int, frozenset[str]], bytes],
        vanished: bool = False,
        hold_recent: bool = False,
        before_expunge: Callable[[list[int]], list[bytes]] | None = None,
        flag_changes: bool = True,
    ) -> list[bytes]:
        """Untagged responses for everything pending, in an order that keeps numbers
        consistent: EXPUNGEs first (when allowed; one VANISHED with the UIDs instead once
        QRESYNC is on, RFC 7162 §3.2.10), then EXISTS/RECENT, FLAGS when the new messages
        brought keywords this session has not announced, then flag FETCHes.
        ``before_expunge`` gets the UIDs about to be expunged while their numbers are still
        valid, and its lines go first (RFC 5267 §4.3.4: REMOVEFROM before EXPUNGE). Without
        ``flag_changes`` the flag FETCHes stay pending for a later call (NOTIFY without
        FlagChange pushes new and expunged messages only, RFC 5465 §5.1)."""
        out: list[bytes] = []
        if allow_expunge and self._expunged:
            if before_expunge is not None:
                out += before_expunge(
                    [u for u in sorted(self._expunged) if self.seq_of(u) is not None]
                )
            gone: list[int] = []
            for u in sorted(self._expunged):
                seq = self.seq_of(u)
                if seq is None:
                    continue
                del self.uids[seq - 1]
                del self.modseqs[u]
                self.recent.discard(u)
                self.saved = [s for s in self.saved if s != u] if self.saved else self.saved
                if seq <= self.reported_exists:
                    self.reported_exists -= 1
                    if vanished:
                        gone.append(u)
                    else:
                        out.append(b"* %d EXPUNGE\r\n" % seq)
            self._expunged.clear()
            if gone:
                out.append(b"* VANISHED %s\r\n" % response.uid_set(gone).encode())
        if len(self.uids) != self.reported_exists:
            self.reported_exists = len(self.uids)
            out.append(b"* %d EXISTS\r\n" % self.reported_exists)
        if hold_recent:
            if len(self.recent) != self._recent_reported:
                self._recent_reported = -1  # changed: owed at the next flush, whatever it is
        else:
            if not rev2 and len(self.recent) != self._recent_reported:
                # RFC 3501 §7.3.2: RECENT whenever the count changes (arrivals or expunges).
                out.append(b"* %d RECENT\r\n" % len(self.recent))
            self._recent_reported = len(self.recent)
        if self._new_keywords:
            fresh = self._new_keywords - self.keywords
            self._new_keywords.clear()
            if fresh:
                self.keywords |= fresh
                out += self.flags_announcement()
        if self._flag_updates and flag_changes:
            for u in sorted(self._flag_updates):
                seq = self.seq_of(u)
                if seq is not None:
                    flags = self._flag_updates[u]
                    out += self.announce_keywords(flags)
                    out.append(fetch_flags(seq, flags))
            self._flag_updates.clear()
        return out

    def announce_keywords(self, flags: Iterable[str]) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS to send *before* a FETCH that shows ``flags``, when
        they hold a keyword this session has not announced yet; nothing otherwise.

        Every FETCH that shows flags asks this, not only the unsolicited ones: a FETCH or
        STORE reads the flags from the store, which may already hold a keyword another
        session created after this command's flush drained the change bus. That keyword's
        event is absorbed only at the next flush, after the FETCH went out; the client must
        have learned of it by then (RFC 9051 §7.3.5, §7.5.2)."""
        fresh = {f for f in flags if not f.startswith("\\")} - self.keywords
        if not fresh:
            return []
        self.keywords |= fresh
        return self.flags_announcement()

    def flags_announcement(self) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS again after a new keyword appeared (RFC 9051 §7.3.5)."""
        flags = self.flags_response()
        lines = [response.untagged(b"FLAGS " + flags)]
        if not self.readonly:
            permanent = flags[:-1] + b" \\*)"
            lines.append(
                response.untagged(b"OK [PERMANENTFLAGS " + permanent + b"] Flags permitted")
            )
        return lines

    def flags_response(self) -> bytes:
        return response.flag_list(
            ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", *self.keywords]
        )


def uid_ranges(uids: Sequence[int]) -> list[tuple[int, int | None]]:
    """Sorted UIDs -> inclusive ranges for ``Store.list_messages``."""
    out: list[tuple[int, int | None]] = []
    start = prev = -1
    for u in uids:
        if start < 0:
            start = prev = u
        elif u == prev + 1:
            prev = u
        else:
            out.append((start, prev))
            start = prev = u
    if start >= 0:
        out.append((start, prev))
    return out
