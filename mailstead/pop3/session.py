"""One POP3 connection: the read loop, its limits, and the dispatch of each command.

Invariants:

- One table (:data:`mailstead.pop3.commands.COMMANDS`, given to the session by its
  server) says everything about a command: its grammar, handler, the states it is allowed
  in and the capability it depends on. A command line is parsed once; the state is
  checked once (RFC 1939 §3-§6), before the arguments are read; then the handler runs
  with its typed argument record and the state it asked for. Handlers never re-check the
  state or pick raw words apart.
- The state carries its data (:mod:`mailstead.pop3.states`): TRANSACTION holds the locked
  maildrop and the account's policy, so there is no "logged in without a maildrop".
  A USER name lives only until the next command, which must be PASS (RFC 1939 §7).
- No credentials cross a connection without TLS unless ``allow_plaintext``; then CAPA
  does not advertise USER or SASL and their commands answer ``-ERR [AUTH]`` (RFC 2595
  §2.2, RFC 8314 §3). CAPA and this refusal read one predicate, :meth:`Session.offers`.
  STLS discards pipelined plaintext (the stream does it, RFC 2595 §4).
- The maildrop lock is taken only after a successful login and released however the
  session ends; only QUIT in TRANSACTION commits, so a dropped connection changes nothing
  (RFC 1939 §6).
- Every error becomes ``-ERR`` with generic text, in one place (:meth:`Session._refuse`,
  called from :meth:`Session.handle_line`); details go to the log with the connection
  id. A failure in the middle of a multi-line response cannot be reported in-band, so it
  closes the connection instead.
- Limits (line length, idle timeout, error and command budgets) are applied in the read
  loop, not in handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from mailstead.auth.authenticator import Authenticator
from mailstead.core import metrics, sanity
from mailstead.core.errors import StoreError
from mailstead.core.log import redact_command
from mailstead.core.types import TLSMode
from mailstead.net.stream import DeadlineExceeded, LineTooLong, Stream, StreamError
from mailstead.net.tls import TLSContexts
from mailstead.pop3 import protocol as wire
from mailstead.pop3.errors import CloseSession, CommandError, POP3Error, ResponseCode
from mailstead.pop3.maildrop import MaildropLocks, MaildropStore
from mailstead.pop3.protocol import Capability, Command
from mailstead.pop3.states import Authorization, State, Transaction, Update


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session needs from the settings; built once per listener."""

    hostname: str
    tls_mode: TLSMode = TLSMode.STARTTLS
    allow_plaintext: bool = False
    max_line_length: int = 4096
    idle_timeout: float = 600.0
    login_timeout: float = 180.0  # AUTHORIZATION may last this long, however active
    max_errors: int = 10
    max_commands: int = 100_000
    login_delay: int = 0  # RFC 2449 §6.5; 0 = no delay, not advertised


class LoginDelay:
    """RFC 2449 §8.1.1 LOGIN-DELAY: the minimum time between two logins to one maildrop.

    One per server, shared by every session and listener; the clock is injected so tests
    move time instead of waiting for it.
    """

    def __init__(self, seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: dict[int, float] = {}

    def too_soon(self, user_id: int) -> bool:
        last = self._last.get(user_id)
        return self.seconds > 0 and last is not None and self._clock() - last < self.seconds

    def record(self, user_id: int) -> None:
        if self.seconds > 0:
            self._last[user_id] = self._clock()


#: The states a command is allowed in: one state, or either of the two a client talks in.
S = TypeVar("S", Authorization, Transaction, Authorization | Transaction)
#: A command's argument record (``None`` when it takes no arguments).
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class CommandSpec(Generic[S, A]):
    """Everything the session knows about one command, in one table entry.

    ``grammar`` turns the argument words into the typed record ``handler`` receives;
    ``states`` are where the command is allowed, and the handler receives the state it
    was allowed in; ``capability`` is the CAPA capability the command belongs to, which
    decides whether it is offered on this connection now. ``keeps_pending_user`` is for
    PASS alone: every other command forgets the USER name (RFC 1939 §7).
    """

    grammar: Callable[[Command], A]
    handler: Callable[[Session, S, A], Awaitable[None]]
    states: tuple[type[S], ...]
    capability: Capability | None = None
    keeps_pending_user: bool = False

    async def run(self, session: Session, command: Command) -> None:
        """The one state check, then the grammar, then the handler."""
        state = session.state
        # RFC 1939 §3: a command outside its state is refused before its arguments are read.
        if not isinstance(state, self.states):
            raise POP3Error("command not valid in this state", counts=True)
        if (
            not self.keeps_pending_user
            and isinstance(state, Authorization)
            and state.pending_user is not None
        ):
            state = dataclasses.replace(state, pending_user=None)
            session.state = state
        if self.capability is not None and not session.offers(self.capability):
            raise withdrawn(self.capability)
        await self.handler(session, state, self.grammar(command))


class CommandEntry(Protocol):
    """What the session and CAPA read from a table entry, whatever its state and argument
    types (a :class:`CommandSpec` of any kind)."""

    @property
    def states(self) -> tuple[type[State], ...]: ...

    @property
    def capability(self) -> Capability | None: ...

    async def run(self, session: Session, command: Command) -> None: ...


def withdrawn(capability: Capability) -> POP3Error:
    """The refusal of a command whose capability this connection does not offer now."""
    match capability:
        case Capability.USER | Capability.SASL:
            # RFC 2449 §8 / RFC 3206 [AUTH]; the client should switch to STLS or POP3S.
            return POP3Error(
                "plaintext authentication disallowed on non-secure connections, use STLS",
                ResponseCode.AUTH,
            )
        case Capability.STLS:
            return POP3Error("STLS not available")  # RFC 2595 §4
        case _:
            return POP3Error(f"{capability.value} not available")


class Session:
    """A POP3 session over one :class:`Stream`."""

    def __init__(
        self,
        stream: Stream,
        *,
        store: MaildropStore,
        authenticator: Authenticator,
        locks: MaildropLocks,
        config: SessionConfig,
        commands: Mapping[str, CommandEntry],
        tls: TLSContexts | None = None,
        login_delay: LoginDelay | None = None,
    ) -> None:
        self.stream = stream
        self.store = store
        self.authenticator = authenticator
        self.locks = locks
        self.config = config
        self.commands = commands
        self.tls = tls
        self.login_delay = login_delay or LoginDelay(config.login_delay)
        self.state: State = Authorization()
        self.log = stream.log
        self.utf8 = False
        self.finished = False  # QUIT answered: close after flushing
        self._errors = 0
        self._commands = 0
        self._mid_response = False  # a multi-line response has started on the wire

    # -- what the connection offers -------------------------------------------------------

    @property
    def secure(self) -> bool:
        return self.stream.is_tls

    @property
    def plaintext_allowed(self) -> bool:
        """Whether credentials may be sent now (RFC 2595 §2.2: not in the clear by default)."""
        return self.secure or self.config.allow_plaintext

    @property
    def can_stls(self) -> bool:
        """RFC 2595 §4: only before login, only once, only on a plaintext STLS listener."""
        return (
            self.config.tls_mode is TLSMode.STARTTLS
            and self.tls is not None
            and not self.secure
            and isinstance(self.state, Authorization)
        )

    def offers(self, capability: Capability) -> bool:
        """Whether this connection offers the capability now: CAPA lists it only then, and
        only then are its commands served (RFC 2449 §6)."""
        match capability:
            case Capability.USER | Capability.SASL:
                # RFC 2595 §2.2, RFC 8314 §3: no credentials in the clear unless allowed.
                return self.plaintext_allowed
            case Capability.STLS:
                return self.can_stls
            case Capability.LOGIN_DELAY:
                return self.config.login_delay > 0  # RFC 2449 §6.5: only when enforced
            case _:
                return True

    # -- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.stream.write(data)

    async def flush(self) -> None:
        """Drain unless more pipelined commands are waiting (RFC 2449 §6.6 PIPELINING)."""
        if self.stream.pending_bytes() == 0:
            await self.stream.drain()

    def begin_multiline(self, first: bytes) -> None:
        """Send the status line of a response whose body follows in pieces. From here on a
        failure cannot be reported in-band: the session closes instead."""
        self.send(first)
        self._mid_response = True

    def end_multiline(self, last: bytes) -> None:
        """Send the end of the body (its ``.CRLF``): the response is complete."""
        self.send(last)
        self._mid_response = False

    # -- the loop --------------------------------------------------------------------------

    async def _read_line(self, login_by: float) -> bytes:
        """The next command line; in the AUTHORIZATION state only until ``login_by``
        (event-loop time): the idle timer alone let an anonymous client that kept talking
        hold its connection for ever."""
        if not isinstance(self.state, Authorization):
            return await self.stream.readline(self.config.max_line_length)
        try:
            return await self.stream.readline(self.config.max_line_length, until=login_by)
        except DeadlineExceeded:
            raise CloseSession("authentication took too long") from None

    async def run(self) -> None:
        self.stream.idle_timeout = self.config.idle_timeout
        login_by = asyncio.get_running_loop().time() + self.config.login_timeout
        try:
            # RFC 1939 §4 greeting; no APOP timestamp since APOP is not offered.
            self.send(wire.ok(f"{self.config.hostname} POP3 server ready"))
            await self.stream.drain()
            while True:
                try:
                    line = await self._read_line(login_by)
                except LineTooLong:
                    self.log.info("command line too long")
                    if not await self._refuse(POP3Error("line too long", counts=True)):
                        break
                    continue
                if not await self.handle_line(line):
                    break
            await self.stream.drain()
        except CloseSession as exc:
            self.log.info("closing: %s", exc)
            await self._try_drain()
        finally:
            self._release()

    async def handle_line(self, line: bytes) -> bool:
        """Run one command line; False when the session is over."""
        self._commands += 1
        if self._commands > self.config.max_commands:
            self.send(wire.err("too many commands in one session", ResponseCode.SYS_PERM))
            return False
        try:
            command = wire.parse_command(line)
        except CommandError as exc:
            self.log.debug("bad command line: %s", exc.text)
            return await self._refuse(exc)
        self.log.debug("C: %s", redact_command(line).decode("utf-8", "replace")[:200])
        spec = self.commands.get(command.name)
        if spec is None:
            return await self._refuse(POP3Error("unknown command", counts=True))
        try:
            with metrics.command("pop3", command.name):
                await spec.run(self, command)
        except POP3Error as exc:
            return await self._refuse(exc)
        except StoreError as exc:
            if self._mid_response:
                raise CloseSession(f"store failure during {command.name}: {exc}") from exc
            self.log.error("%s failed in the store: %s", command.name, exc)
            code = ResponseCode.SYS_TEMP if exc.temporary else ResponseCode.SYS_PERM
            return await self._refuse(POP3Error("mail store error, try again later", code))
        except (CloseSession, StreamError):
            raise
        except Exception as exc:
            # A bug: log it for the operator, give the client a generic -ERR (never a
            # traceback) and end the session, since its state can no longer be trusted.
            # Under test it fails the test instead.
            sanity.degrade(self.log, exc, "bug (%s) in %s", command.name, exc_info=True)
            if not self._mid_response:
                self.send(wire.err("internal server error", ResponseCode.SYS_TEMP))
            raise CloseSession("internal error") from exc
        if self.finished:
            await self.stream.drain()
            return False
        await self.flush()
        return True

    async def _refuse(self, error: POP3Error) -> bool:
        """The one place an error becomes ``-ERR``; False once the error budget is spent."""
        self.send(wire.err(error.text, error.code))
        if error.counts:
            self._errors += 1
            if self._errors >= self.config.max_errors:
                self.send(wire.err("too many errors, closing connection"))
                await self.stream.drain()
                return False
        await self.flush()
        return True

    async def _try_drain(self) -> None:
        with contextlib.suppress(StreamError):
            await self.stream.drain()

    def _release(self) -> None:
        match self.state:
            case Transaction(user_id=user_id) | Update(user_id=user_id):
                self.locks.release(user_id)
            case Authorization():
                pass
