"""One POP3 connection: the state machine between the wire format and the maildrop.

Invariants:

- State is checked once, before dispatch, from :data:`ALLOWED` (RFC 1939 §3-§6: the
  AUTHORIZATION, TRANSACTION and UPDATE states); handlers are found only through
  :data:`COMMANDS`.
- No credentials cross a connection without TLS unless ``allow_plaintext``; then CAPA does
  not advertise USER or SASL and the commands answer ``-ERR [AUTH]`` (RFC 2595 §2.2,
  RFC 8314 §3). STLS discards pipelined plaintext (the stream does it, RFC 2595 §4).
- The maildrop lock is taken only after a successful login and released however the
  session ends; only QUIT in TRANSACTION commits, so a dropped connection changes nothing
  (RFC 1939 §6).
- Every error becomes ``-ERR`` with generic text; details go to the log with the connection
  id. A failure in the middle of a multi-line response cannot be reported in-band, so it
  closes the connection instead.
- Limits (line length, idle timeout, error and command budgets) are applied in the read
  loop, not in handlers.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailstead.auth.authenticator import Authenticator
from mailstead.auth.sasl import (
    SUPPORTED_MECHANISMS,
    Challenge,
    SaslCancelled,
    start_mechanism,
)
from mailstead.core.errors import AuthError, AuthThrottled, NotFound, StoreError
from mailstead.core.log import redact_command
from mailstead.net.stream import LineTooLong, Stream, StreamError
from mailstead.net.tls import TLSContexts
from mailstead.pop3 import protocol as wire
from mailstead.pop3.errors import CloseSession, CommandError, POP3Error, ResponseCode
from mailstead.pop3.maildrop import CHUNK_SIZE, Maildrop, MaildropLocks, MaildropMessage
from mailstead.pop3.protocol import Command, DotStuffer, LineLimiter
from mailstead.store.interfaces import Store

_log = logging.getLogger("mailstead.pop3")


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session needs from the settings; built once per listener."""

    hostname: str
    tls_mode: str = "starttls"  # "none", "starttls" or "implicit"
    allow_plaintext: bool = False
    max_line_length: int = 4096
    idle_timeout: float = 600.0
    max_errors: int = 10
    max_commands: int = 100_000
    login_delay: int = 0  # RFC 2449 §6.8; 0 = no delay, not advertised


class LoginDelay:
    """RFC 2449 §6.8 LOGIN-DELAY: the minimum time between two logins to one maildrop."""

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


Handler = Callable[["Session", Command], Awaitable[None]]


class Session:
    """A POP3 session over one :class:`Stream`."""

    def __init__(
        self,
        stream: Stream,
        *,
        store: Store,
        authenticator: Authenticator,
        locks: MaildropLocks,
        config: SessionConfig,
        tls: TLSContexts | None = None,
        login_delay: LoginDelay | None = None,
    ) -> None:
        self.stream = stream
        self.store = store
        self.authenticator = authenticator
        self.locks = locks
        self.config = config
        self.tls = tls
        self.login_delay = login_delay or LoginDelay(config.login_delay)
        self.state = State.AUTHORIZATION
        self.log = stream.log
        self.pending_user: str | None = None
        self.utf8 = False
        self.user_id: int | None = None
        self.policy = "delete"
        self.maildrop: Maildrop | None = None
        self.finished = False  # QUIT answered: close after flushing
        self._errors = 0
        self._commands = 0
        self._mid_response = False  # a multi-line response has started on the wire

    # -- transport helpers ----------------------------------------------------------------

    @property
    def secure(self) -> bool:
        return self.stream.is_tls

    @property
    def plaintext_allowed(self) -> bool:
        """Whether credentials may be sent now (RFC 2595 §2.2: not in the clear by default)."""
        return self.secure or self.config.allow_plaintext

    @property
    def can_stls(self) -> bool:
        return (
            self.config.tls_mode == "starttls"
            and self.tls is not None
            and not self.secure
            and self.state is State.AUTHORIZATION
        )

    def send(self, data: bytes) -> None:
        self.stream.write(data)

    async def flush(self) -> None:
        """Drain unless more pipelined commands are waiting (RFC 2449 §6.6 PIPELINING)."""
        if self.stream.pending_bytes() == 0:
            await self.stream.drain()

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        self.stream.idle_timeout = self.config.idle_timeout
        try:
            # RFC 1939 §4 greeting; no APOP timestamp since APOP is not offered.
            self.send(wire.ok(f"{self.config.hostname} POP3 server ready"))
            await self.stream.drain()
            while True:
                try:
                    line = await self.stream.readline(self.config.max_line_length)
                except LineTooLong:
                    self.log.info("command line too long")
                    await self._refuse(POP3Error("line too long", counts=True))
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
        handler = COMMANDS.get(command.name)
        if handler is None:
            return await self._refuse(POP3Error("unknown command", counts=True))
        if self.state not in ALLOWED[command.name]:
            return await self._refuse(POP3Error("command not valid in this state", counts=True))
        if command.name != "PASS":
            self.pending_user = None  # RFC 1939 §7: PASS must follow USER directly
        try:
            await handler(self, command)
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
            self.log.error("%s failed: %s: %s", command.name, type(exc).__name__, exc)
            self.log.debug("traceback", exc_info=True)
            if not self._mid_response:
                self.send(wire.err("internal server error", ResponseCode.SYS_TEMP))
            raise CloseSession("internal error") from exc
        if self.finished:
            await self.stream.drain()
            return False
        await self.flush()
        return True

    async def _refuse(self, error: POP3Error) -> bool:
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
        if self.user_id is not None and self.maildrop is not None:
            self.locks.release(self.user_id)
            self.maildrop = None

    # -- shared by the handlers ------------------------------------------------------------

    def require_plaintext_ok(self) -> None:
        if not self.plaintext_allowed:
            # RFC 2449 §8.1 / RFC 3206 [AUTH]; the client should switch to STLS or POP3S.
            raise POP3Error(
                "plaintext authentication disallowed on non-secure connections, use STLS",
                ResponseCode.AUTH,
            )

    async def login(self, username: str, password: str) -> None:
        """Check credentials, lock the maildrop, snapshot it, and enter TRANSACTION."""
        ip = self.stream.peer[0]
        try:
            record = await self.authenticator.authenticate(username, password, ip)
        except AuthThrottled:
            raise POP3Error("too many failed logins, try again later", ResponseCode.AUTH) from None
        except AuthError:
            raise POP3Error("authentication failed", ResponseCode.AUTH, counts=True) from None
        user = await self.store.find_user(record.address)
        if user is None:  # removed in the instant since authentication
            raise POP3Error("authentication failed", ResponseCode.AUTH, counts=True)
        self.log.user = user.address
        if self.login_delay.too_soon(user.id):
            # RFC 2449 §8.1.1
            raise POP3Error("logged in too recently, try again later", ResponseCode.LOGIN_DELAY)
        if not self.locks.acquire(user.id):
            # RFC 2449 §8.1.2: another session holds this maildrop.
            self.log.info("maildrop in use")
            raise POP3Error("maildrop already locked by another session", ResponseCode.IN_USE)
        try:
            maildrop = await Maildrop.open(self.store, user.id)
        except (StoreError, NotFound) as exc:
            self.locks.release(user.id)
            self.log.error("cannot open maildrop: %s", exc)
            raise POP3Error("unable to open maildrop", ResponseCode.SYS_TEMP) from None
        self.user_id = user.id
        self.policy = user.pop3_policy
        self.maildrop = maildrop
        self.state = State.TRANSACTION
        self.login_delay.record(user.id)
        count, octets = maildrop.stat()
        self.log.info("logged in, %d messages (%d octets), policy %s", count, octets, self.policy)
        self.send(wire.ok(f"maildrop has {count} messages ({octets} octets)"))

    def message(self, command: Command, index: int = 0) -> MaildropMessage:
        """The message named by argument ``index``; -ERR if missing or deleted (RFC 1939 §5)."""
        if len(command.args) <= index:
            raise POP3Error("message number required", counts=True)
        number = wire.parse_number(command.args[index])
        assert self.maildrop is not None
        found = self.maildrop.get(number)
        if found is None:
            if self.maildrop.is_deleted(number):
                raise POP3Error(f"message {number} already deleted")
            raise POP3Error("no such message")
        return found

    async def send_message(
        self, message: MaildropMessage, first: bytes, top_lines: int | None = None
    ) -> None:
        """Stream a message (all of it, or its header and ``top_lines`` body lines)."""
        assert self.maildrop is not None
        maildrop = self.maildrop
        # (start, end, line limit) ranges of the stored bytes to send, in order.
        ranges: list[tuple[int, int, LineLimiter | None]]
        if top_lines is None:
            ranges = [(0, message.size, None)]
        else:
            header_end = min(await maildrop.header_end(message), message.size)
            ranges = [(0, header_end, None)]
            if top_lines > 0:
                ranges.append((header_end, message.size, LineLimiter(top_lines)))
        ranges = [r for r in ranges if r[1] > r[0]]
        # Read the first piece before answering +OK, so a body that has gone (expunged and
        # collected since login) is still an in-band -ERR.
        head = b""
        if ranges:
            try:
                head = await maildrop.store.read_blob(
                    message.blob_id, ranges[0][0], min(ranges[0][1], ranges[0][0] + CHUNK_SIZE)
                )
            except NotFound:
                raise POP3Error("message is no longer available") from None
            if not head:
                raise POP3Error("message is no longer available")
        self.send(first)
        self._mid_response = True
        stuffer = DotStuffer()
        try:
            for index, (start, stop, limiter) in enumerate(ranges):
                if index == 0:
                    start += len(head)
                    self.send(stuffer.feed(limiter.feed(head) if limiter else head))
                    if limiter is not None and limiter.done:
                        continue
                chunks = maildrop.read_chunks(message, start, stop)
                try:
                    async for chunk in chunks:
                        self.send(stuffer.feed(limiter.feed(chunk) if limiter else chunk))
                        await self.stream.drain()
                        if limiter is not None and limiter.done:
                            break
                finally:
                    await chunks.aclose()
            self.send(stuffer.finish())
        except (StoreError, OSError) as exc:
            # The +OK is out; nothing in-band can say this failed. Close instead.
            self.log.error("message %s failed mid-response: %s", message.uid, exc)
            raise CloseSession("store failure during a multi-line response") from exc
        self._mid_response = False

    def capabilities(self) -> list[bytes]:
        """RFC 2449 §6, per connection state and TLS policy."""
        caps = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if self.plaintext_allowed:
                caps.append(b"USER")
                caps.append(b"SASL " + " ".join(SUPPORTED_MECHANISMS).encode())
            if self.can_stls:
                caps.append(b"STLS")  # RFC 2595 §4
            caps.append(b"UTF8 USER")  # RFC 6856 §2: USER/PASS accept UTF-8
        # RFC 2449 §6.7: the server never removes messages on its own, whatever the policy.
        caps.append(b"EXPIRE NEVER")
        if self.config.login_delay > 0:
            caps.append(f"LOGIN-DELAY {self.config.login_delay}".encode())
        caps.append(b"IMPLEMENTATION mailstead")
        return caps


# -- command handlers -----------------------------------------------------------------------


async def capa(s: Session, cmd: Command) -> None:
    """RFC 2449 §5."""
    s.send(wire.multiline(wire.ok("capability list follows"), s.capabilities()))


async def stls(s: Session, cmd: Command) -> None:
    """RFC 2595 §4: only before login, only once, only on a plaintext STLS listener."""
    if not s.can_stls or s.tls is None:
        raise POP3Error("STLS not available")
    s.send(wire.ok("begin TLS negotiation"))
    await s.stream.start_tls(s.tls.server_context)
    s.pending_user = None
    s.utf8 = False  # RFC 2595 §4: the session starts over, as after the greeting


async def user(s: Session, cmd: Command) -> None:
    """RFC 1939 §7. Always +OK so the answer does not reveal which accounts exist."""
    s.require_plaintext_ok()
    if not cmd.rest.strip():
        raise POP3Error("user name required", counts=True)
    s.pending_user = cmd.rest.strip()
    s.send(wire.ok("send PASS"))


async def pass_(s: Session, cmd: Command) -> None:
    """RFC 1939 §7. The whole rest of the line is the password (it may contain spaces)."""
    s.require_plaintext_ok()
    username, s.pending_user = s.pending_user, None
    if username is None:
        raise POP3Error("USER first", counts=True)
    await s.login(username, cmd.rest)


async def auth(s: Session, cmd: Command) -> None:
    """RFC 5034 §4 AUTH with optional initial response; bare AUTH lists the mechanisms."""
    if not cmd.args:
        if not s.plaintext_allowed:
            raise POP3Error("no mechanisms available without TLS, use STLS", ResponseCode.AUTH)
        names = [name.encode() for name in SUPPORTED_MECHANISMS]
        s.send(wire.multiline(wire.ok("mechanisms follow"), names))
        return
    s.require_plaintext_ok()
    if len(cmd.args) > 2:
        raise POP3Error("syntax: AUTH mechanism [initial-response]", counts=True)
    initial = cmd.args[1].encode("ascii", "replace") if len(cmd.args) == 2 else None
    try:
        mechanism = start_mechanism(cmd.args[0], initial)
    except AuthError:
        raise POP3Error("unsupported authentication mechanism", counts=True) from None
    try:
        result = mechanism.step(None)
        while isinstance(result, Challenge):
            s.send(wire.continuation(result.encoded()))
            await s.stream.drain()
            try:
                line = await s.stream.readline(s.config.max_line_length)
            except LineTooLong:
                raise POP3Error("authentication response too long", counts=True) from None
            result = mechanism.step(line.rstrip(b"\r\n"))
    except SaslCancelled:
        raise POP3Error("authentication cancelled") from None
    except AuthError:
        raise POP3Error("authentication failed", ResponseCode.AUTH, counts=True) from None
    await s.login(result.username, result.password)


async def utf8(s: Session, cmd: Command) -> None:
    """RFC 6856 §2: enter UTF-8 mode (before login). Messages are sent as stored."""
    s.utf8 = True
    s.send(wire.ok("UTF8 enabled"))


async def quit_(s: Session, cmd: Command) -> None:
    """RFC 1939 §6: in TRANSACTION, enter UPDATE and commit the DELE marks, all or nothing."""
    s.finished = True
    if s.state is State.AUTHORIZATION or s.maildrop is None:
        s.send(wire.ok("bye"))  # RFC 1939 §4: QUIT before login just closes
        return
    s.state = State.UPDATE
    try:
        done = await s.maildrop.commit(s.policy)
    except (StoreError, OSError) as exc:
        s.log.error("QUIT commit failed, nothing changed: %s", exc)
        s.send(wire.err("some deleted messages not removed, nothing was changed",
                        ResponseCode.SYS_TEMP))
        return
    if done:
        s.log.info("QUIT committed %d message(s) with policy %s", done, s.policy)
    # Durable before +OK: the store's write returns only after commit and fsync.
    s.send(wire.ok(f"bye, {done} message(s) {'deleted' if s.policy == 'delete' else s.policy}"))


async def stat(s: Session, cmd: Command) -> None:
    """RFC 1939 §5 STAT: count and octets of messages not marked deleted."""
    assert s.maildrop is not None
    count, octets = s.maildrop.stat()
    s.send(wire.ok(f"{count} {octets}"))


async def list_(s: Session, cmd: Command) -> None:
    """RFC 1939 §5 LIST [msg]: exact sizes (stored messages are canonical CRLF)."""
    assert s.maildrop is not None
    if cmd.args:
        message = s.message(cmd)
        s.send(wire.ok(f"{message.number} {message.size}"))
        return
    count, octets = s.maildrop.stat()
    lines = [f"{m.number} {m.size}".encode() for m in s.maildrop.live()]
    s.send(wire.multiline(wire.ok(f"{count} messages ({octets} octets)"), lines))


async def uidl(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 UIDL [msg]."""
    assert s.maildrop is not None
    if cmd.args:
        message = s.message(cmd)
        s.send(wire.ok(f"{message.number} {message.uidl}"))
        return
    lines = [f"{m.number} {m.uidl}".encode() for m in s.maildrop.live()]
    s.send(wire.multiline(wire.ok("unique-id listing follows"), lines))


async def retr(s: Session, cmd: Command) -> None:
    """RFC 1939 §5 RETR msg, streamed from the store."""
    message = s.message(cmd)
    await s.send_message(message, wire.ok(f"{message.size} octets"))


async def top(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 TOP msg n: the header, the blank line, and n lines of the body."""
    if len(cmd.args) != 2:
        raise POP3Error("syntax: TOP msg lines", counts=True)
    message = s.message(cmd)
    lines = wire.parse_number(cmd.args[1], allow_zero=True)
    await s.send_message(message, wire.ok("top of message follows"), top_lines=lines)


async def dele(s: Session, cmd: Command) -> None:
    """RFC 1939 §5 DELE msg: only marks; QUIT commits."""
    message = s.message(cmd)
    assert s.maildrop is not None
    s.maildrop.mark_deleted(message.number)
    s.send(wire.ok(f"message {message.number} deleted"))


async def noop(s: Session, cmd: Command) -> None:
    """RFC 1939 §5 NOOP."""
    s.send(wire.ok())


async def rset(s: Session, cmd: Command) -> None:
    """RFC 1939 §5 RSET: unmark every message marked deleted."""
    assert s.maildrop is not None
    s.maildrop.reset()
    count, octets = s.maildrop.stat()
    s.send(wire.ok(f"maildrop has {count} messages ({octets} octets)"))


# -- tables -----------------------------------------------------------------------------------

AUTHZ = frozenset({State.AUTHORIZATION})
TRANS = frozenset({State.TRANSACTION})
BOTH = AUTHZ | TRANS

#: Which command runs which handler. APOP is deliberately absent (it needs the password in
#: a recoverable form), so it gets "unknown command".
COMMANDS: dict[str, Handler] = {
    "CAPA": capa,
    "STLS": stls,
    "USER": user,
    "PASS": pass_,
    "AUTH": auth,
    "UTF8": utf8,
    "QUIT": quit_,
    "STAT": stat,
    "LIST": list_,
    "UIDL": uidl,
    "RETR": retr,
    "TOP": top,
    "DELE": dele,
    "NOOP": noop,
    "RSET": rset,
}

#: Which command is allowed in which state (RFC 1939 §4-§7, RFC 2449 §5, RFC 2595 §4,
#: RFC 5034 §4, RFC 6856 §2). Checked once, before dispatch.
ALLOWED: dict[str, frozenset[State]] = {
    "CAPA": BOTH,
    "STLS": AUTHZ,
    "USER": AUTHZ,
    "PASS": AUTHZ,
    "AUTH": AUTHZ,
    "UTF8": AUTHZ,
    "QUIT": BOTH,
    "STAT": TRANS,
    "LIST": TRANS,
    "UIDL": TRANS,
    "RETR": TRANS,
    "TOP": TRANS,
    "DELE": TRANS,
    "NOOP": TRANS,
    "RSET": TRANS,
}

assert COMMANDS.keys() == ALLOWED.keys()
