"""One IMAP connection: read loop with limits, state check, dispatch, untagged updates.

Invariants (the things every handler may rely on, and must keep):

1. Exactly one command runs at a time; its tagged reply is written last, after the untagged
   updates it caused (RFC 9051 §2.2.2). No exception text ever reaches the client: handlers
   return a :class:`~mailstead.imap.replies.Reply` or raise a
   :class:`~mailstead.imap.replies.CommandError` (or a core error, mapped in
   :func:`~mailstead.imap.replies.error_reply`); anything else becomes ``NO [SERVERBUG]``
   and goes to the log.
2. Everything about a command comes from its entry in the command table
   (:data:`mailstead.imap.commands.COMMANDS`): its grammar, its record, the states it may
   run in (checked once, here, before dispatch), when expunges may be sent around it, the
   mailbox names to map, the capability that announces it.
3. The state carries its data (:mod:`mailstead.imap.states`): a user once authenticated, a
   view and a change subscription while selected. The subscription exists exactly while
   a mailbox is selected.
4. Untagged updates of the selected mailbox (EXISTS, FETCH FLAGS, EXPUNGE) come from the
   store's change bus through :class:`SelectedMailbox` and are written only at the flush
   points here: before and after each command and while IDLE, as the command's
   :class:`~mailstead.imap.dispatch.Expunge` policy allows (RFC 9051 §7.5.1); never while
   no command is running. The ADDTO/REMOVEFROM of live results (RFC 5267 §4.3) go out in
   the same flushes, their programs evaluated on the changed messages just before.
5. NOTIFY (RFC 5465, imap/notify.py) is the one exception to "never while no command is
   running": a session that sent NOTIFY SET also gets what it asked for pushed between
   commands and while IDLE, by one short task (the *pump*) that runs only while the session
   waits for the client, and is finished before the next command runs. A session without
   NOTIFY has no pump, no second subscription and no extra work at the flush points.
6. Limits live in the read loop: line length, literal size (APPENDLIMIT for APPEND), total
   command size, number of bad commands (then BYE; before login a separate, smaller budget
   for lines that are no IMAP command, whose last one gets only BYE), auto-logout timer
   (RFC 9051 §5.4), output buffered for pipelined commands before we wait for the client.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mailstead.auth.authenticator import Authenticator
from mailstead.config.schema import Settings
from mailstead.core import metrics, sanity
from mailstead.core.budget import Reservation
from mailstead.core.errors import InvalidName, MailsteadError, NotFound
from mailstead.core.log import redact_command
from mailstead.core.spool import Spool, SpoolDir
from mailstead.imap import response
from mailstead.imap.commands import COMMAND_CAPABILITIES, COMMANDS, GRAMMARS, contexts
from mailstead.imap.commands.fetch import fetch as fetch_command
from mailstead.imap.commands.metadata import entry_octets
from mailstead.imap.commands.status import status_items
from mailstead.imap.dispatch import Expunge
from mailstead.imap.names import NameMapper
from mailstead.imap.notify import Listed, Notifications, status_report
from mailstead.imap.parse.commands import Command, Fetch, parse_command, parse_tag
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.fetch import FetchAtt
from mailstead.imap.parse.primitives import SequenceSet
from mailstead.imap.parse.receiver import AsideLiteral, Frame, FrameError, NeedLiteral, Receiver
from mailstead.imap.parse.sort import THREAD_CAPABILITIES
from mailstead.imap.replies import (
    CommandError,
    Disconnect,
    Reply,
    Status,
    bad,
    error_reply,
)
from mailstead.imap.selected import InvalidSequence, RecentTracker, SelectedMailbox
from mailstead.imap.sort_answers import Answers
from mailstead.imap.sort_keys import KeptRecords
from mailstead.imap.states import (
    Authenticated,
    LoggedOut,
    NotAuthenticated,
    Selected,
    SessionState,
    StateKind,
)
from mailstead.net.listener import client_key
from mailstead.net.stream import (
    ConnectionClosed,
    DeadlineExceeded,
    IdleTimeout,
    LineTooLong,
    Stream,
)
from mailstead.net.tls import TLSContexts
from mailstead.store.changes import Subscription
from mailstead.store.interfaces import Accounts, MailboxAcls, Mailboxes, Messages, Metadata
from mailstead.store.models import User

_log = logging.getLogger("mailstead.imap")

PIPELINE_LIMIT = 64  # commands answered before we insist the client reads our output
MAX_NON_APPEND_LITERAL = 1024 * 1024  # literals outside APPEND (search strings, names)
#: The commands whose literals are messages: APPENDLIMIT bounds them, and large ones are
#: spooled to disk (RFC 8508 §3: REPLACE carries its message as APPEND does).
MESSAGE_COMMANDS = frozenset({"APPEND", "REPLACE", "UID REPLACE"})
#: One command before login, literals included: LOGIN, AUTHENTICATE and ID need a few KiB
#: at most, and stacked literals once let an anonymous client park ~50 MiB per command.
MAX_PRE_LOGIN_COMMAND = 16 * 1024

#: Extensions that are not one command of their own; they are always advertised.
EXTENSIONS = (
    "LITERAL+",  # RFC 7888
    "ESEARCH",  # RFC 4731
    "ESORT",  # RFC 5267 §3: SORT ... RETURN (...) answered in ESEARCH
    "CONTEXT=SORT",  # RFC 5267 §4: SORT RETURN (UPDATE), ADDTO/REMOVEFROM with positions
    "SEARCHRES",  # RFC 5182
    "PARTIAL",  # RFC 9394
    "SPECIAL-USE",  # RFC 6154
    "CREATE-SPECIAL-USE",
    "LIST-EXTENDED",  # RFC 5258
    "LIST-STATUS",  # RFC 5819
    "CHILDREN",  # RFC 3348
    "STATUS=SIZE",  # RFC 8438
    "BINARY",  # RFC 3516
    "UTF8=ACCEPT",  # RFC 6855
    "MULTIAPPEND",  # RFC 3502
    "CATENATE",  # RFC 4469
    "CONDSTORE",  # RFC 7162
    "QRESYNC",
    "SAVEDATE",  # RFC 8514
    "OBJECTID",  # RFC 8474
    "PREVIEW",  # RFC 8970
    "QUOTA=RES-STORAGE",  # RFC 9208 §5.1
    "METADATA-SERVER",  # RFC 5464 §1 (METADATA itself is announced by its commands)
    "RIGHTS=texk",  # RFC 4314 §2.1: t, e, x and k are rights of their own
    "LIST-MYRIGHTS",  # RFC 8440
    *THREAD_CAPABILITIES,  # RFC 5256: THREAD=ORDEREDSUBJECT, THREAD=REFERENCES
)
#: Command capabilities advertised only where they apply (decided in ``capabilities``).
_CONDITIONAL = frozenset({"STARTTLS"})
#: RFC 5465 §5.8: output pushed to a client that does not read it, past which NOTIFY ends
#: with OK [NOTIFICATIONOVERFLOW] (the change events waiting are bounded by the setting
#: ``limits.imap_notify_max_backlog``).
MAX_NOTIFY_OUTPUT = 4 * 1024 * 1024


class MailStore(Accounts, Mailboxes, MailboxAcls, Messages, Metadata, Protocol):
    """What IMAP needs of the mailstore: the logged-in account, its mailboxes, the access
    control lists of shared ones, their messages (with the change bus) and their metadata
    entries. Nothing of the directory or the outbound queue."""


@dataclass(frozen=True, slots=True)
class ServerContext:
    """What the sessions of one listener share: built once by :class:`IMAPServer`."""

    settings: Settings
    store: MailStore
    authenticator: Authenticator
    tls: TLSContexts | None  # None: no certificate, so no STARTTLS either
    starttls: bool  # the listener offers STARTTLS (RFC 9051 §6.2.1)
    recent: RecentTracker = field(default_factory=RecentTracker)
    # SORT and THREAD answers over whole mailboxes, for the next identical command.
    sort_answers: Answers = field(default_factory=Answers)
    sort_records: KeptRecords = field(default_factory=KeptRecords)
    # Where message data goes (memory, or spool files past a threshold) and its budgets,
    # shared by every session; None keeps everything in memory, unbudgeted.
    spools: SpoolDir | None = None


class Session:
    """State machine between the parser and the stream (see the module invariants)."""

    def __init__(self, stream: Stream, ctx: ServerContext) -> None:
        self.stream = stream
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ctx.store
        limits = ctx.settings.limits
        self.max_line = limits.imap_max_line_length
        self.timeout = float(limits.imap_idle_timeout_seconds)
        self.max_command = max(limits.max_message_size, MAX_NON_APPEND_LITERAL) + self.max_line
        self.receiver = Receiver(max_line=self.max_line, max_command=MAX_PRE_LOGIN_COMMAND)
        self.transfer_timeout = float(limits.transfer_timeout_seconds)
        self.login_timeout = float(limits.login_timeout_seconds)
        self._login_deadline = float("inf")  # event-loop time, set when the session starts
        self.spools = ctx.spools if ctx.spools is not None else SpoolDir(None)
        #: The literals of the command being received, taken from the memory budget, and
        #: the large APPEND literals it spooled to files; given back (and the files
        #: removed) once the command has run.
        self._held = Reservation(self.spools.memory)
        self._spooled: list[Spool] = []
        self._deadline_passed: str | None = None  # why the last read timed out, if not idling
        self.names = NameMapper(ctx.settings.imap.hierarchy_separator)
        self.state: SessionState = NotAuthenticated()
        self.enabled: set[str] = set()
        # (mailbox id, UIDVALIDITY) and \Recent UIDs of the mailbox a SELECT or EXAMINE
        # just left, for a new selection of the same mailbox (see commands/select.py).
        self.kept_recent: tuple[tuple[int, int], set[int]] | None = None
        self.errors = 0
        self.errors_before_login = 0
        self.failed_logins = 0
        self.current_tag = "*"
        self.commands = 0
        self._unflushed = 0
        self.log = stream.log
        # RFC 5465 NOTIFY: what the client asked for (None: it never did, or NOTIFY NONE),
        # and the pump that pushes it while we wait for the client (invariant 5).
        self.notify: Notifications | None = None
        self._pump: asyncio.Task[None] | None = None
        self._pump_again = False
        self._pump_failure: BaseException | None = None

    # -- what handlers ask ------------------------------------------------------------------
    @property
    def selection(self) -> Selected | None:
        """The selected mailbox, if any (commands of the authenticated state that care)."""
        return self.state if isinstance(self.state, Selected) else None

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        """Mailbox names and quoted strings as UTF-8 (RFC 9051 §5.1, RFC 6855 §3)."""
        return "IMAP4REV2" in self.enabled or "UTF8=ACCEPT" in self.enabled

    @property
    def qresync(self) -> bool:
        """RFC 7162 §3.2.3: on after ENABLE QRESYNC (which also turns CONDSTORE on)."""
        return "QRESYNC" in self.enabled

    @property
    def condstore(self) -> bool:
        """RFC 7162 §3.1: on from the first CONDSTORE-enabling command to the end."""
        return "CONDSTORE" in self.enabled

    def enable_condstore(self) -> None:
        """Switch CONDSTORE on (RFC 7162 §3.1). The first enabling command other than
        SELECT/EXAMINE, while a mailbox is selected, also tells the client the mailbox's
        HIGHESTMODSEQ, which it did not get when it selected it."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        selected = self.selection
        if selected is not None:
            events = selected.subscription.drain()
            if events:
                selected.view.absorb(events, self._claimer(selected.view))
            self.untagged(f"OK [HIGHESTMODSEQ {selected.view.highestmodseq}] Highest")

    @property
    def plaintext_allowed(self) -> bool:
        return self.stream.is_tls or self.settings.auth.allow_plaintext

    @property
    def offers_starttls(self) -> bool:
        return self.ctx.starttls and self.ctx.tls is not None and not self.stream.is_tls

    def capabilities(self) -> str:
        """The CAPABILITY list for this session now (RFC 9051 §6.1.1): the login methods
        before login, the commands of the table and the extensions."""
        caps = ["IMAP4rev1", "IMAP4rev2"]
        if isinstance(self.state, NotAuthenticated):
            if self.offers_starttls:
                caps.append("STARTTLS")
            if self.plaintext_allowed:
                mechanisms = self.ctx.authenticator.mechanisms(self.stream.channel_bindings)
                caps += [f"AUTH={name}" for name in mechanisms]
            else:
                caps.append("LOGINDISABLED")
            caps.append("SASL-IR")  # RFC 4959
        caps += [c for c in COMMAND_CAPABILITIES if c not in _CONDITIONAL]
        caps += EXTENSIONS
        caps.append(f"APPENDLIMIT={self.settings.limits.max_message_size}")  # RFC 7889
        return " ".join(caps)

    def send(self, data: bytes) -> None:
        self.stream.write(data)

    def untagged(self, text: str | bytes) -> None:
        self.stream.write(response.untagged(text))

    @property
    def separator(self) -> bytes:
        """The hierarchy delimiter as LIST/LSUB/NAMESPACE show it (a quoted string)."""
        return b'"' + self.names.separator.encode() + b'"'

    def mailbox_name(self, name: str) -> bytes:
        """A store mailbox name as this client sees it (separator, then encoding)."""
        return response.mailbox_name(self.names.to_imap(name), utf8=self.utf8)

    async def read_line(self) -> bytes:
        """One line for SASL exchanges and IDLE's DONE, under the same limits."""
        try:
            return await self.stream.readline(self.max_line, self.timeout)
        except LineTooLong as exc:
            raise bad("Line too long") from exc

    # -- state changes ------------------------------------------------------------------------
    def login(self, user: User) -> None:
        self.state = Authenticated(user)
        self.log.user = user.address

    def open_subscription(self, owner_id: int) -> Subscription:
        """Subscribe to the changes of the mailbox owner's account (the user's own, or
        the account that shares it) before reading a mailbox, so no change slips between
        the read and the selection; the caller hands it to :meth:`select`, or closes it
        if that fails."""
        return self.store.changes.subscribe(owner_id)

    def select(self, user: User, view: SelectedMailbox, subscription: Subscription) -> None:
        self.state = Selected(user, view, subscription)

    def unselect(self, *, keep_recent: bool = False) -> None:
        """Leave the selected mailbox. ``keep_recent`` when SELECT or EXAMINE replaces it,
        so that selecting it again keeps this session's \\Recent; CLOSE, UNSELECT and the
        end of the session forget it."""
        state = self.state
        if not isinstance(state, Selected):
            return
        view = state.view
        key = (view.mailbox_id, view.uidvalidity)
        self.kept_recent = (key, set(view.recent)) if keep_recent else None
        state.subscription.close()
        self.state = Authenticated(state.user)

    def logout(self) -> None:
        self.unselect()
        self.stop_notify()
        self.state = LoggedOut()

    def start_notify(self, notifications: Notifications) -> None:
        """NOTIFY SET: replaces what an earlier one asked (RFC 5465 §3.1)."""
        self.stop_notify()
        self.notify = notifications

    def stop_notify(self) -> None:
        """NOTIFY NONE, an overflow, or the end of the session."""
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def claim_recent(self, view: SelectedMailbox, uids: list[int]) -> set[int]:
        """The new messages this session is the first to see (RFC 3501 §2.3.2 \\Recent)."""
        return self.ctx.recent.claim((view.mailbox_id, view.uidvalidity), uids)

    def _claimer(self, view: SelectedMailbox) -> Callable[[list[int]], set[int]]:
        return lambda uids: self.claim_recent(view, uids)

    # -- untagged updates ---------------------------------------------------------------------
    def fetch_flags_line(self, view: SelectedMailbox, seq: int, flags: frozenset[str]) -> bytes:
        """An unsolicited flag change; with CONDSTORE it carries UID and MODSEQ (RFC 7162
        §3.1: "in all subsequent unsolicited FETCH responses")."""
        shown = set(flags)
        uid = view.uids[seq - 1]
        if not self.rev2 and uid in view.recent:
            shown.add("\\Recent")
        if self.condstore:
            return b"* %d FETCH (FLAGS %s UID %d MODSEQ (%d))\r\n" % (
                seq, response.flag_list(shown), uid, view.modseqs.get(uid, 0)
            )
        return b"* %d FETCH (FLAGS %s)\r\n" % (seq, response.flag_list(shown))

    def absorb(self) -> None:
        """Fold the changes the store published since the last look into the view."""
        selected = self.selection
        if selected is None:
            return
        events = selected.subscription.drain()
        if events:
            selected.view.absorb(events, self._claimer(selected.view))

    async def refresh_live(self) -> None:
        """Before a flush: run the live results' programs on the messages that changed
        (RFC 5267 §4.3), so the flush can tell ADDTO and REMOVEFROM. Nothing happens
        without live results."""
        selected = self.selection
        if selected is not None and selected.live:
            await contexts.refresh(self, selected)

    def flush(self, *, allow_expunge: bool, hold_recent: bool = False,
              flag_changes: bool = True) -> None:
        """Write the pending untagged updates of the selected mailbox (invariant 4);
        ``hold_recent`` keeps RECENT for a later flush of the same command (REPLACE sends
        its EXISTS before its EXPUNGE, and one RECENT after both). Live results' updates
        go with them: REMOVEFROM before the EXPUNGE of a member, the verdicts of the last
        :meth:`refresh_live` after the EXISTS and FETCHes (RFC 5267 §4.3.3, §4.3.4)."""
        selected = self.selection
        if selected is None:
            return
        view = selected.view
        self.absorb()
        if view.gone:
            self.send(response.untagged("BYE Selected mailbox was deleted"))
            raise Disconnect
        live = selected.live
        if view.has_pending:
            for line in view.updates(
                allow_expunge=allow_expunge,
                rev2=self.rev2,
                fetch_flags=lambda seq, flags: self.fetch_flags_line(view, seq, flags),
                vanished=self.qresync,
                hold_recent=hold_recent,
                before_expunge=(
                    (lambda uids: [response.untagged(t) for t in live.expunged(uids, view.seq_of)])
                    if live else None
                ),
                flag_changes=flag_changes,
            ):
                self.send(line)
        if live:
            for text in live.apply(view.seq_of):
                self.send(response.untagged(text))

    # -- NOTIFY (RFC 5465) ----------------------------------------------------------------------
    async def update(self, *, allow_expunge: bool) -> None:
        """A command's flush point with NOTIFY on: the selected mailbox's updates, the FETCH
        of new messages NOTIFY asked for, and the other mailboxes' notifications. (Without
        NOTIFY the session calls :meth:`flush` directly: no coroutine per command.)"""
        await self.deliver_notifications(allow_expunge=allow_expunge, pushing=False)

    async def deliver_notifications(self, *, allow_expunge: bool, pushing: bool) -> None:
        """Write what NOTIFY owes now. ``pushing``: no command is running (between commands,
        IDLE), so the selected mailbox gets only what its filter asked for (RFC 5465 §6.1:
        nothing without one; flag changes only with FlagChange; expunges not with
        ``selected-delayed`` outside IDLE); at a command's flush point it gets what it
        always gets."""
        notify = self.notify
        if notify is None:
            return
        if notify.overflowed:
            self._notify_overflowed()
            return
        selected = self.selection
        rule = notify.selected
        if selected is not None and (rule is not None or not pushing):
            if pushing:
                await self.refresh_live()  # RFC 5267 §4.3: ADDTO/REMOVEFROM go with the push
            view = selected.view
            known = view.uids[view.reported_exists - 1] if view.reported_exists else 0
            self.flush(allow_expunge=allow_expunge,
                       flag_changes=not pushing or rule is None or rule.flags)
            if rule is not None and rule.fetch:
                new = view.uids[bisect.bisect_right(view.uids, known):]
                await self._fetch_new(selected, new, rule.fetch)
        notify.absorb(selected.view.mailbox_id if selected is not None else None)
        for note in notify.take_lists():
            self.untagged(self._list_line(notify, note))
        for changed in notify.take_metadata():
            # RFC 5464 §4.4.2: the unsolicited form names the entries, without values.
            where = self.mailbox_name(changed.mailbox) if changed.mailbox is not None else b'""'
            self.untagged(b"METADATA " + where + b" "
                          + b" ".join(entry_octets(name) for name in changed.entries))
        if notify.subscriptions_touched:
            now = await self.store.list_subscriptions(notify.subscription.user_id)
            for note in notify.subscriptions_now(now):
                self.untagged(self._list_line(notify, note))
        items = status_report(self.condstore)
        for mailbox_id in notify.take_status():
            try:
                box = await self.store.get_mailbox_by_id(mailbox_id)
            except NotFound:
                continue  # deleted since: its LIST (\NonExistent) says so
            if not box.noselect and isinstance(self.state, Authenticated | Selected):
                data = await status_items(self, box, items, self.state.user)
                self.untagged(b"STATUS " + self.mailbox_name(box.name) + b" " + data)
        if self.notify is notify and self.stream.output_backlog() > MAX_NOTIFY_OUTPUT:
            self._notify_overflowed()

    def _notify_overflowed(self) -> None:
        """RFC 5465 §5.8: say so, then behave as after NOTIFY NONE."""
        self.stop_notify()
        self.untagged("OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off")

    async def _fetch_new(self, selected: Selected, uids: list[int],
                         items: tuple[FetchAtt, ...]) -> None:
        """RFC 5465 §5.2: after the EXISTS, a FETCH of the new messages with the attributes
        MessageNew named (UID FETCH, so UID comes along)."""
        if not uids:
            return
        ranges = tuple((u, u) for u in uids)
        args = Fetch(SequenceSet(ranges), items)
        await fetch_command(self, Command(self.current_tag, "UID FETCH", args), selected)

    def _list_line(self, notify: Notifications, note: Listed) -> bytes:
        """``LIST (attrs) "/" name`` for a MailboxName or SubscriptionChange notification
        (RFC 5465 §5.4, §5.5), with OLDNAME after a rename (RFC 5258 §3.4 extended data)."""
        attrs: list[str] = []
        if note.nonexistent or note.name not in notify.names.values():
            # Deleted, or a subscription to a name that is no mailbox (RFC 5258 §3.5).
            attrs.append("\\NonExistent")
        else:
            children = notify.has_children(note.name)
            attrs.append("\\HasChildren" if children else "\\HasNoChildren")
        if note.subscribed:
            attrs.append("\\Subscribed")
        line = (b"LIST (" + " ".join(attrs).encode() + b") " + self.separator + b" "
                + self.mailbox_name(note.name))
        if note.oldname is not None:
            line += b' ("OLDNAME" (' + self.mailbox_name(note.oldname) + b"))"
        return line

    def listen(self, *, allow_expunge: bool) -> None:
        """Waiting for the client (between commands, or in IDLE): changes that arrive now
        are pushed by the pump (invariant 5)."""
        notify = self.notify
        if notify is None:
            return

        def wake() -> None:
            if self._pump is not None and not self._pump.done():
                self._pump_again = True
            else:
                self._pump = asyncio.ensure_future(self._run_pump(allow_expunge))

        notify.wake = wake
        selected = self.selection
        if selected is not None and notify.selected is not None:
            selected.subscription.set_notifier(wake)
            if selected.subscription.backlog() or selected.view.has_pending:
                wake()
        if notify.pending:
            wake()

    async def quiet(self) -> None:
        """The client spoke: stop pushing, and let a running pump finish first."""
        if self.notify is not None:
            self.notify.wake = None
        selected = self.selection
        if selected is not None:
            selected.subscription.set_notifier(None)
        pump, self._pump = self._pump, None
        if pump is not None:
            await pump
        failure, self._pump_failure = self._pump_failure, None
        if failure is not None:
            raise failure

    async def _run_pump(self, allow_expunge: bool) -> None:
        try:
            while True:
                self._pump_again = False
                await self.deliver_notifications(allow_expunge=allow_expunge, pushing=True)
                if not self._pump_again:
                    return
        except Disconnect as exc:
            # The selected mailbox was deleted; its BYE is written. Close, so that the
            # read waiting for the client ends too.
            self._pump_failure = exc
            with contextlib.suppress(ConnectionClosed, IdleTimeout):
                await self.stream.drain()
            self.stream.abort()
        except (ConnectionClosed, IdleTimeout) as exc:
            self._pump_failure = exc
        except MailsteadError as exc:
            self.log.info("NOTIFY delivery failed: %s", exc)
        except Exception as exc:  # a bug: logged; under test it fails the test
            sanity.degrade(self.log, exc, "bug in NOTIFY delivery: %s", exc, exc_info=True)

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        self._login_deadline = asyncio.get_running_loop().time() + self.login_timeout
        self.send(response.untagged(f"OK [CAPABILITY {self.capabilities()}] mailstead ready"))
        try:
            while not isinstance(self.state, LoggedOut):
                try:
                    if self.notify is not None:
                        self.listen(allow_expunge=self._push_expunges())
                    try:
                        frame = await self._read_frame()
                    finally:
                        if self.notify is not None or self._pump is not None:
                            await self.quiet()
                except FrameError as exc:
                    self._drop_literals()  # the command is gone, and with it its literals
                    if exc.fatal:
                        self.send(response.untagged(f"BYE [{exc.code or 'TOOBIG'}] {exc.reason}"))
                        break
                    if exc.code == "TOOBIG":
                        # RFC 7889 §4: a synchronising literal over the limit is refused
                        # with NO [TOOBIG] and the client never sends it.
                        self.send(response.tagged(exc.tag or "*", "NO", exc.reason, exc.code))
                    else:
                        self._not_a_command(exc.tag, exc.reason)
                    await self.stream.drain()
                    continue
                if frame is None:
                    # A refused literal, already answered: the command is over, and the
                    # literals it sent before (a MULTIAPPEND's earlier messages) go too.
                    self._drop_literals()
                    continue
                try:
                    await self._execute(frame)
                finally:
                    self._drop_literals()
                if self.errors >= self.settings.limits.max_errors_per_session:
                    self.send(response.untagged("BYE Too many invalid commands"))
                    break
                self._unflushed += 1
                if self.stream.pending_bytes() == 0 or self._unflushed >= PIPELINE_LIMIT:
                    self._unflushed = 0
                    await self.stream.drain()
        except Disconnect:
            pass
        except asyncio.CancelledError:
            # Server shutdown (listener drain): RFC 9051 §7.1.5 says goodbye first.
            self.send(response.untagged("BYE Server shutting down"))
            raise
        except IdleTimeout:
            why = self._deadline_passed or "idle for too long"
            self.log.info("autologout: %s", why)
            self.send(response.untagged(f"BYE Autologout; {why}"))
        except ConnectionClosed:
            return
        finally:
            self._drop_literals()
            self.unselect()
            self.stop_notify()
            if self._pump is not None:
                self._pump.cancel()
        with contextlib.suppress(ConnectionClosed, IdleTimeout):
            await self.stream.drain()

    def _push_expunges(self) -> bool:
        """Between commands, expunges of the selected mailbox are pushed with ``selected``
        and held with ``selected-delayed`` (RFC 5465 §6.1.1, §6.1.2)."""
        rule = self.notify.selected if self.notify is not None else None
        return rule is not None and not rule.delayed

    def _drop_literals(self) -> None:
        """The command is over (run, refused or cut off): what its literals held of the
        budgets goes back, and its spool files are removed."""
        self._held.close()
        for spool in self._spooled:
            spool.close()
        self._spooled.clear()

    def _bad(self, tag: str | None, reason: str, code: str | None = None) -> None:
        self.errors += 1
        self.send(response.tagged(tag or "*", "BAD", reason, code))

    def _not_a_command(self, tag: str | None, reason: str, code: str | None = None) -> None:
        """Answer a line that is no IMAP command at all: no valid tag, no or an unknown
        command name, or a line over the length limit. Before login the budget is
        ``imap.max_errors_before_login`` and the line that reaches it gets only ``BYE``
        (RFC 9051 §7.1.5), nothing that echoes the input: the ALPACA cross-protocol
        mitigation, so that an HTTP request or another protocol's chatter sent to this port is
        cut off at its first line instead of being answered line by line. A known command
        with bad arguments is a client bug, not a stray protocol, and keeps its ``BAD``."""
        if isinstance(self.state, NotAuthenticated):
            self.errors_before_login += 1
            if self.errors_before_login >= self.settings.imap.max_errors_before_login:
                self.log.info("not an IMAP command before login (%s); closing", reason)
                self.send(response.untagged("BYE Invalid command before login"))
                raise Disconnect
        self._bad(tag, reason, code)

    async def _read_frame(self) -> Frame | None:
        rx = self.receiver
        logged_in = not isinstance(self.state, NotAuthenticated)
        rx.max_command = self.max_command if logged_in else MAX_PRE_LOGIN_COMMAND
        loop = asyncio.get_running_loop()
        # The literals of one command, however steadily they trickle, arrive by this;
        # before login the whole command must also come before the login deadline.
        transfer_by = float("inf")
        while True:
            event = rx.next()
            if isinstance(event, Frame):
                return event
            if isinstance(event, NeedLiteral):
                spool = self._spool_for(event)
                if self._refuse_literal(event, spool):
                    return None
                if spool is not None:
                    if transfer_by == float("inf"):
                        transfer_by = loop.time() + self.transfer_timeout
                    deadline = transfer_by if logged_in else min(transfer_by,
                                                                 self._login_deadline)
                    try:
                        rx.set_aside(await self._read_into(spool, event, deadline))
                    except DeadlineExceeded:
                        raise self._deadline(logged_in, loop.time()) from None
                continue
            deadline = transfer_by if logged_in else min(transfer_by, self._login_deadline)
            try:
                if rx.literal_remaining:
                    if transfer_by == float("inf"):
                        transfer_by = loop.time() + self.transfer_timeout
                        deadline = min(deadline, transfer_by)
                    async for chunk in self.stream.iter_exactly(
                            rx.literal_remaining, self.timeout, until=deadline):
                        rx.feed(chunk)
                    continue
                rx.feed(await self.stream.readline(self.max_line, self.timeout,
                                                   until=deadline))
            except LineTooLong:
                rx.reset()
                raise FrameError("command line too long", None) from None
            except DeadlineExceeded:
                raise self._deadline(logged_in, loop.time()) from None

    def _deadline(self, logged_in: bool, now: float) -> IdleTimeout:
        """The timeout for a passed deadline, with the reason the BYE will give."""
        if not logged_in and now >= self._login_deadline:
            self._deadline_passed = "authentication took too long"
        else:
            self._deadline_passed = "the command's data took too long to arrive"
        return IdleTimeout(self._deadline_passed)

    def command_spool(self) -> Spool:
        """A spool for message data the running command makes (a CATENATE message), from
        the same budgets as the literals; removed, like theirs, once the command is over."""
        spool = self.spools.spool(client_key(self.stream.peer[0]))
        self._spooled.append(spool)
        return spool

    def _spool_for(self, lit: NeedLiteral) -> Spool | None:
        """A spool for an APPEND (or REPLACE) literal too large to keep in memory, else
        None."""
        spools = self.spools
        if (lit.command not in MESSAGE_COMMANDS or spools.path is None
                or lit.size <= spools.threshold
                or lit.size > self.settings.limits.max_message_size):
            return None
        spool = spools.spool(client_key(self.stream.peer[0]))
        self._spooled.append(spool)
        return spool

    async def _read_into(self, spool: Spool, lit: NeedLiteral, deadline: float) -> AsideLiteral:
        """Read the announced literal into ``spool``, all of it even when the budgets stop
        keeping it (the stream stays in step; the command is then refused)."""
        nul = False
        async for chunk in self.stream.iter_exactly(lit.size, self.timeout, until=deadline):
            if not lit.binary and not nul and b"\x00" in chunk:
                nul = True
            await spool.write(chunk)
        if spool.refused:
            self.log.info("literal of %d octets refused: budget for message data spent",
                          lit.size)
            return AsideLiteral(None, nul)
        return AsideLiteral(await spool.finish(), nul)

    def _refuse_literal(self, lit: NeedLiteral, spool: Spool | None) -> bool:
        """Check a literal's size before the client sends it (RFC 7889 APPENDLIMIT: the
        continuation goes out only after the check), and take it from the process's budget
        for message data: memory, or disk for a literal that ``spool`` will hold. Returns
        True when refused."""
        limit = (
            self.settings.limits.max_message_size
            if lit.command in MESSAGE_COMMANDS
            else MAX_NON_APPEND_LITERAL
        )
        if (lit.size == 0 and lit.synchronizing and lit.command in MESSAGE_COMMANDS
                and not lit.text_part):
            # RFC 3502 §6.3.11: a zero-length message literal cancels the whole APPEND;
            # refused before the continuation, as Dovecot does, so nothing more is sent.
            # (The one other literal there, a mailbox name, cannot be empty either.)
            self.receiver.reject_literal()
            self.send(response.tagged(lit.tag or "*", "NO", "Empty message"))
            return True
        if lit.size > limit:
            if not lit.synchronizing:
                # RFC 7888 §4: the octets are already on their way; we cannot resync.
                raise FrameError("literal too big", lit.tag, fatal=True, code="TOOBIG")
            self.receiver.reject_literal()
            self.send(response.tagged(lit.tag or "*", "NO", "Literal too big", "TOOBIG"))
            return True
        if not (spool.expect(lit.size) if spool is not None else self._held.take(lit.size)):
            self.log.info("literal of %d octets refused: budget for message data spent",
                          lit.size)
            if not lit.synchronizing:
                raise FrameError("too much data arriving at once, try again later", lit.tag,
                                 fatal=True, code="UNAVAILABLE")
            self.receiver.reject_literal()
            self._drop_literals()
            self.send(response.tagged(lit.tag or "*", "NO",
                                      "Too much data arriving at once, try again later",
                                      "UNAVAILABLE"))
            return True
        if lit.synchronizing:
            self.send(b"+ Ready for literal data\r\n")
        return False

    async def _execute(self, received: Frame) -> None:
        frame = received.data
        try:
            cmd = parse_command(frame, GRAMMARS, utf8=self.utf8, aside=received.aside)
        except ParseError as exc:
            self.log.info("bad command: %s (%r)", exc.reason, redact_command(frame[:120]))
            tag = exc.tag or parse_tag(frame)
            if exc.command is None:
                self._not_a_command(tag, exc.reason, exc.code)
            else:
                self._bad(tag, exc.reason, exc.code)
            return
        spec = COMMANDS[cmd.name]
        try:
            cmd = self.names.command(cmd, spec.mailbox)  # mailbox names in store terms now
        except InvalidName as exc:
            self.send(response.tagged(cmd.tag, "NO", str(exc), "CANNOT"))
            return
        self.commands += 1
        if self.commands > self.settings.limits.max_commands_per_session:
            self.send(response.untagged("BYE Too many commands in one session"))
            raise Disconnect
        if self.state.kind not in spec.states:
            # Well-formed but untimely: NO rather than BAD (the syntax was fine), as James.
            self.send(response.tagged(cmd.tag, "NO", f"{cmd.name} is not valid in this state"))
            return
        self.current_tag = cmd.tag
        try:
            # Updates that arrived since the last command go first, so any sequence numbers
            # in this command's own responses already account for them; expunges only as
            # the command's policy allows (invariant 4).
            if spec.expunge is not Expunge.DROPPED:
                await self.refresh_live()
                if self.notify is None:
                    self.flush(allow_expunge=spec.expunge is Expunge.BEFORE)
                else:
                    await self.update(allow_expunge=spec.expunge is Expunge.BEFORE)
            with metrics.command("imap", cmd.name):
                reply = await spec.run(self, cmd)
            await self.refresh_live()
            if self.notify is None:
                self.flush(allow_expunge=spec.expunge is not Expunge.HELD)
            else:
                await self.update(allow_expunge=spec.expunge is not Expunge.HELD)
        except Disconnect:
            raise
        except (ConnectionClosed, IdleTimeout):
            raise
        except CommandError as exc:
            if exc.status is Status.BAD:
                self.errors += 1
            reply = Reply(exc.status, exc.text, exc.code)
            self.flush(allow_expunge=False)
        except InvalidSequence as exc:
            self.errors += 1
            reply = Reply(Status.BAD, str(exc) or "Invalid message sequence number")
        except MailsteadError as exc:
            reply = error_reply(exc)
            self.log.info("%s failed: %s", cmd.name, exc)
        except Exception as exc:  # a bug: logged, never shown; under test it fails the test
            sanity.degrade(self.log, exc, "bug (%s) in %s", cmd.name, exc_info=True)
            reply = Reply(Status.NO, "Internal error, the problem was logged", "SERVERBUG")
        if not reply.sent:
            self.send(response.tagged(cmd.tag, reply.status, reply.text, reply.code))


__all__ = ["EXTENSIONS", "ServerContext", "Session", "StateKind"]
