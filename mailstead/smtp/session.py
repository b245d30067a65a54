"""One SMTP conversation: state, limits, and the dispatch of commands to their handlers.

Invariants:

- Exactly one reply per command, in command order (RFC 2920 §3.1); replies are buffered and
  sent when the client has nothing more pipelined, or before we wait on the client (354,
  334, STARTTLS), so a pipelining client gets one packet per command group.
- The state is checked once, here, against the command's entry in :data:`COMMANDS` before
  its argument is read or its handler runs; a handler never re-checks sequencing. A
  refused BDAT still has its chunk consumed (RFC 3030 §2) by the entry's ``refuse`` hook,
  so the byte stream never desynchronises.
- A command's argument is parsed once, by its entry's grammar, into a typed record; the
  handler receives that record and the state the table allowed, typed as such.
- The state carries its data (:mod:`mailstead.smtp.states`): a transaction exists exactly
  in MailFrom, RcptTo and Chunking, BDAT chunks exactly in Chunking, the HELO name and the
  login exactly after HELO/EHLO. Leaving a transaction state drops the transaction with it.
- Limits live in the read loop: line length (``500 5.5.2``), commands per session, errors
  per session (``421 4.7.0`` then close) and the idle timeout (RFC 5321 §4.5.3.2.7, at
  least five minutes by default).
- Every reply after the greeting carries an enhanced status code (RFC 2034); no
  exception text or traceback ever reaches the client: unexpected failures are logged
  with the session id and answered ``451 4.3.0``.
- Nothing pipelined before STARTTLS is executed after it (RFC 3207 §4.2;
  :meth:`Stream.start_tls` discards it), and STARTTLS forgets HELO and AUTH.
- ``250`` after DATA/BDAT LAST is sent only after the store reports the message durable
  for every recipient (see :mod:`mailstead.delivery.deliver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from mailstead.auth.authenticator import Authenticator
from mailstead.core import metrics, sanity
from mailstead.core.spool import SpoolDir
from mailstead.core.types import TLSMode
from mailstead.delivery.deliver import Deliverer, TraceInfo
from mailstead.net.listener import client_key
from mailstead.net.stream import ConnectionClosed, IdleTimeout, LineTooLong, Stream, StreamError
from mailstead.net.tls import TLSContexts
from mailstead.smtp import codes
from mailstead.smtp.codes import Reply, SMTPError
from mailstead.smtp.commands import COMMANDS, CommandSpec
from mailstead.smtp.protocol import Command, ProtocolError, parse_command
from mailstead.smtp.states import (
    Chunking,
    Client,
    Connected,
    MailFrom,
    RcptTo,
    Ready,
    State,
)

log = logging.getLogger("mailstead.smtp")

MAX_INFLIGHT = 32  # commits one session may have running while it reads on
MAX_INFLIGHT_BYTES = 32 * 1024 * 1024
# Commit tasks are referenced here until done: the event loop keeps only weak references.
_running: set[asyncio.Task[Reply]] = set()


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-listener settings, resolved once from the configuration."""

    hostname: str
    submission: bool  # submission/submissions: AUTH required, relay for authenticated users
    tls_mode: TLSMode
    plaintext_auth: bool  # AUTH may be offered without TLS
    max_message_size: int
    max_recipients: int
    max_line_length: int
    idle_timeout: float
    max_errors: int
    max_commands: int
    reject_bare_lf: bool
    login_timeout: float = 180.0  # submission: AUTH within this long after connecting
    transfer_timeout: float = 1200.0  # one message's DATA, or its BDAT chunks, in all


class Session:
    """The state of one connection. Command modules read and change it."""

    def __init__(
        self,
        stream: Stream,
        config: SessionConfig,
        deliverer: Deliverer,
        authenticator: Authenticator,
        tls: TLSContexts | None,
        *,
        spools: SpoolDir | None = None,
    ) -> None:
        self.stream = stream
        # Where message data goes, in memory or in spool files, under budgets shared with
        # every session.
        self.spools = spools if spools is not None else SpoolDir(None)
        self.client_key = client_key(stream.peer[0])  # whose share of the spool it uses
        self.config = config
        self._login_deadline: float | None = None  # event-loop time; submission only
        self.deliverer = deliverer
        self.authenticator = authenticator
        self.tls = tls
        self.log = stream.log
        # What the grammars read (mailstead.smtp.grammar.Context), as plain attributes: the
        # RCPT grammar reads them for every recipient.
        self.hostname = config.hostname
        self.max_message_size = config.max_message_size
        self.state: State = Connected()
        self.closing = False
        self.errors = 0
        self.commands = 0
        # Replies in command order: bytes, or a commit still running (RFC 2920 §3.1).
        self._out: deque[bytes | asyncio.Task[Reply]] = deque()
        self._pending = 0  # commits in _out not yet done
        self._pending_bytes = 0
        self._sizes: dict[asyncio.Task[Reply], int] = {}
        self._idle = False  # blocked reading with nothing pipelined: replies may go out now

    # -- what handlers use ------------------------------------------------------------------
    @property
    def client_ip(self) -> str:
        return self.stream.peer[0]

    @property
    def offers_starttls(self) -> bool:
        return (
            self.config.tls_mode is TLSMode.STARTTLS
            and self.tls is not None
            and not self.stream.is_tls
        )

    @property
    def offers_auth(self) -> bool:
        """RFC 4954 §4 and RFC 8314: AUTH only on submission, and only over TLS unless the
        administrator allowed plaintext."""
        return self.config.submission and (self.stream.is_tls or self.config.plaintext_auth)

    @property
    def smtputf8(self) -> bool:
        """The transaction under way declared SMTPUTF8 (grammar.Context)."""
        state = self.state
        if isinstance(state, (MailFrom, RcptTo, Chunking)):
            return state.envelope.smtputf8
        return False

    def reply(self, reply: Reply) -> None:
        """Queue a reply; 5xx replies count against the error budget."""
        self._out.append(reply.encode())
        if reply.code >= 500:
            self.errors += 1

    async def reply_when_done(self, commit: Awaitable[Reply], size: int) -> None:
        """Queue the reply to a message whose commit runs on while we read what the client
        pipelined next (RFC 2920 §3.1 lets a client send MAIL right after the end of the
        data). Its reply keeps its place in the order; past MAX_INFLIGHT commits or
        MAX_INFLIGHT_BYTES we wait for the oldest before reading on."""
        task = asyncio.ensure_future(commit)
        _running.add(task)
        task.add_done_callback(self._commit_done)
        self._out.append(task)
        self._pending += 1
        self._pending_bytes += size
        self._sizes[task] = size
        while self._pending > MAX_INFLIGHT or self._pending_bytes > MAX_INFLIGHT_BYTES:
            oldest = next(t for t in self._out if isinstance(t, asyncio.Task) and not t.done())
            await asyncio.wait([oldest])

    def _commit_done(self, task: asyncio.Task[Reply]) -> None:
        _running.discard(task)
        self._pending -= 1
        self._pending_bytes -= self._sizes.pop(task, 0)
        if self._idle:
            self._write_ready()  # the client is waiting: send the 250 now

    def _write_ready(self) -> None:
        """Write the replies at the head of the queue that are known, in order."""
        chunks: list[bytes] = []
        out = self._out
        while out:
            item = out[0]
            if isinstance(item, bytes):
                chunks.append(item)
            elif item.done():
                reply = item.result()
                chunks.append(reply.encode())
                if reply.code >= 500:
                    self.errors += 1
            else:
                break
            out.popleft()
        if chunks:
            self.stream.write(b"".join(chunks))

    async def flush(self) -> None:
        """Send every queued reply, waiting for running commits (before 354, 334, 220)."""
        while self._out:
            head = self._out[0]
            if isinstance(head, asyncio.Task) and not head.done():
                await asyncio.wait([head])
            self._write_ready()
        await self.stream.drain()

    def trace(self, client: Client) -> TraceInfo:
        """What the Received: header of a transaction this client starts says."""
        return TraceInfo(
            hostname=self.config.hostname,
            helo=client.helo,
            client_ip=self.client_ip,
            esmtp=client.esmtp,
            tls=self.stream.tls_info,
            auth_user=client.user.address if client.user is not None else None,
            session_id=self.stream.session_id,
        )

    def reset_transaction(self) -> None:
        """RSET, QUIT, end of DATA/BDAT, a failure: the transaction, and with it the
        envelope and any chunks, is gone (RFC 5321 §4.1.1.5); HELO and AUTH stay."""
        state = self.state
        if isinstance(state, Chunking):
            state.spool.close()
        if isinstance(state, (MailFrom, RcptTo, Chunking)):
            self.state = Ready(state.client)

    def reset_all(self) -> None:
        """After STARTTLS: everything learnt before the handshake is void (RFC 3207 §4.2)."""
        self.reset_transaction()
        self.state = Connected()
        self.log.user = None

    # -- the loop ---------------------------------------------------------------------------
    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def _read_until(self) -> float | None:
        """The overall deadline the next command line must come by (event-loop time), if
        one applies now: logging in on submission, a BDAT message's transfer."""
        deadlines = []
        if self._login_deadline is not None:
            if isinstance(self.state, Connected) or self.state.client.user is None:
                deadlines.append(self._login_deadline)
            else:
                self._login_deadline = None  # logged in: this deadline is over for good
        if isinstance(self.state, Chunking):
            deadlines.append(self.state.deadline)
        return min(deadlines, default=None)

    async def run(self) -> None:
        if self.config.submission:
            self._login_deadline = self.loop_time() + self.config.login_timeout
        self.reply(Reply(220, "", f"{self.config.hostname} ESMTP mailstead"))
        try:
            while not self.closing:
                if self.stream.pending_bytes() == 0:
                    # RFC 2920 §3.2: reply once the pipeline is drained; a commit finishing
                    # while we wait for input sends its reply at once (_commit_done).
                    self._write_ready()
                    await self.stream.drain()
                    self._idle = True
                try:
                    line = await self.stream.readline(
                        self.config.max_line_length, self.config.idle_timeout,
                        until=self._read_until(),
                    )
                except LineTooLong:
                    self._idle = False
                    self.reply(codes.LINE_TOO_LONG)
                    self._check_budget()
                    continue
                self._idle = False
                self.commands += 1
                if self.commands > self.config.max_commands:
                    self.reply(codes.TOO_MANY_COMMANDS)
                    break
                await self._dispatch(COMMANDS, parse_command(line))
                self._check_budget()
            await self.flush()
        except IdleTimeout:
            self.log.info("idle timeout in state %s", type(self.state).__name__)
            await self._goodbye(codes.TIMEOUT)
        except asyncio.CancelledError:
            # Server shutdown: say so if we can, without waiting long (RFC 5321 §3.8).
            # Commits still running finish on their own; their replies are lost, so the
            # client retries (a message may then arrive twice, never not at all).
            self._idle = False
            self._out.clear()
            self.stream.write(codes.SHUTTING_DOWN.encode())
            raise
        except ConnectionClosed:
            return
        finally:
            if isinstance(self.state, Chunking):
                self.reset_transaction()  # its chunks: budgets given back, spool file gone

    def _check_budget(self) -> None:
        if self.errors >= self.config.max_errors and not self.closing:
            self.log.info("closing after %d errors", self.errors)
            self.reply(codes.TOO_MANY_ERRORS)
            self.closing = True

    async def _goodbye(self, reply: Reply) -> None:
        self.reply(reply)
        with contextlib.suppress(StreamError):
            await self.flush()

    async def _dispatch(self, table: dict[str, CommandSpec[Any, Any]], command: Command) -> None:
        spec = table.get(command.verb)
        if spec is None:
            self.log.debug("unknown command %r", command.verb or "?")
            self.reply(codes.UNKNOWN_COMMAND)
            return
        state = self.state
        try:
            if type(state) not in spec.states:
                if spec.refuse is not None:
                    await spec.refuse(self, state, spec.grammar(command.argument, self))
                self.reply(Reply(503, "5.5.1", spec.out_of_sequence))
                return
            if spec.guard is not None:
                spec.guard(self, state)
            with metrics.command("smtp", command.verb):
                await spec.handler(self, state, spec.grammar(command.argument, self))
        except SMTPError as exc:
            if exc.log_detail:
                self.log.info("%s: %s", command.verb, exc.log_detail)
            self.reply(exc.reply)
            if exc.close:
                self.closing = True
        except ProtocolError as exc:
            self.log.info("%s: %s", command.verb, exc)
            self.reply(codes.SYNTAX)
        except StreamError:
            raise
        except Exception as exc:  # a bug: logged, never shown; under test it fails the test
            sanity.degrade(self.log, exc, "bug (%s) in %s", command.verb, exc_info=True)
            self.reset_transaction()
            self.reply(codes.TEMPORARY_FAILURE)
