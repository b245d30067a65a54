"""Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE (RFC 9051 §6.2, RFC 4959 SASL-IR)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, NoReturn

from mailstead.auth import exchange as sasl
from mailstead.auth.authenticator import UserRecord
from mailstead.auth.sasl import SaslCancelled, SaslMalformed, SaslRefused, UnknownMechanism
from mailstead.core.errors import AuthError, AuthThrottled
from mailstead.imap.parse.commands import Authenticate, Command, Login
from mailstead.imap.replies import Disconnect, Reply, bad, done, no
from mailstead.store.models import User

if TYPE_CHECKING:
    from mailstead.imap.session import Session

MAX_FAILED_LOGINS = 3  # per connection, then BYE (as Dovecot and James do)


async def starttls(session: Session, cmd: Command[None]) -> Reply:
    """RFC 9051 §6.2.1. The OK goes out in plaintext, then the handshake; anything the client
    pipelined after STARTTLS is discarded by the stream (CVE-2011-0411 class)."""
    tls = session.ctx.tls
    if not session.ctx.starttls or tls is None:
        raise bad("STARTTLS is not available here")
    if session.stream.is_tls:
        raise bad("TLS is already active")
    session.send(b"%s OK Begin TLS negotiation now\r\n" % cmd.tag.encode())
    try:
        await session.stream.start_tls(tls.server_context)
    except Exception as exc:  # handshake failed: the connection is unusable
        session.log.info("STARTTLS handshake failed: %s", exc)
        raise Disconnect from exc
    session.receiver.reset()
    return Reply(sent=True)


async def _finish_login(session: Session, username: str, password: str) -> Reply:
    try:
        record = await session.ctx.authenticator.authenticate(
            username, password, session.stream.peer[0]
        )
    except AuthThrottled as exc:
        raise no("Too many failed logins, try again later", "UNAVAILABLE") from exc
    except AuthError as exc:
        _failed(session, exc)
    return await _logged_in(session, record, "LOGIN")


def _failed(session: Session, exc: AuthError) -> NoReturn:
    session.failed_logins += 1
    if session.failed_logins >= MAX_FAILED_LOGINS:
        # Stop guessing on this connection; the shared throttle covers reconnects. The
        # BYE takes the place of the tagged reply, as in James: RFC 9051 §7.1.5 lets a
        # server close at once with a BYE when it ends the session on a failure.
        session.untagged("BYE Authentication failed too many times")
        raise Disconnect from exc
    raise no("Authentication failed", "AUTHENTICATIONFAILED") from exc


async def _logged_in(session: Session, record: UserRecord, how: str) -> Reply:
    # The authenticator hands back the store's own record; look it up only if it did not.
    user = record if isinstance(record, User) else await session.store.find_user(record.address)
    if user is None:  # removed in the instant since the password check
        raise no("Authentication failed", "AUTHENTICATIONFAILED")
    session.login(user)
    session.log.info("login %s (%s)", user.address, how)
    # RFC 9051 §6.2.3: capabilities may change after login, so announce them in the OK.
    return done("Logged in", f"CAPABILITY {session.capabilities()}")


async def login(session: Session, cmd: Command[Login]) -> Reply:
    if not session.plaintext_allowed:
        # RFC 9051 §6.2.3: LOGINDISABLED is advertised; refuse before looking at anything.
        raise no("Plaintext login is disabled, use STARTTLS", "PRIVACYREQUIRED")
    return await _finish_login(session, cmd.args.username, cmd.args.password)


class _Continuations:
    """The IMAP side of a SASL exchange: ``+ base64`` out, one line back (RFC 9051 §7.5)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def challenge(self, data: bytes) -> bytes:
        self._session.send(b"+ " + base64.b64encode(data) + b"\r\n")
        await self._session.stream.drain()
        line = await self._session.read_line()
        return line.rstrip(b"\r\n")


async def authenticate(session: Session, cmd: Command[Authenticate]) -> Reply:
    """RFC 9051 §6.2.2 with SASL-IR (RFC 4959): challenges go out as ``+ base64``. The
    mechanisms, SCRAM included, run in :mod:`mailstead.auth.exchange`, shared with SMTP
    and POP3; without TLS none is offered unless plaintext is allowed (decision 0026)."""
    if not session.plaintext_allowed:
        raise no("Authentication needs TLS, use STARTTLS", "PRIVACYREQUIRED")
    try:
        result = await sasl.authenticate(
            session.ctx.authenticator,
            cmd.args.mechanism,
            cmd.args.initial,
            _Continuations(session),
            ip=session.stream.peer[0],
            bindings=session.stream.channel_bindings,
        )
    except UnknownMechanism as exc:
        raise no("Unsupported authentication mechanism", "CANNOT") from exc
    except SaslCancelled as exc:
        raise bad("Authentication cancelled") from exc
    except AuthThrottled as exc:
        raise no("Too many failed logins, try again later", "UNAVAILABLE") from exc
    except SaslMalformed as exc:
        session.log.info("SASL error: %s", exc)
        raise no("Authentication failed", "AUTHENTICATIONFAILED") from exc
    except SaslRefused as exc:
        session.log.info("SASL refused: %s", exc)
        _failed(session, exc)
    except AuthError as exc:  # the authenticator logged why
        _failed(session, exc)
    return await _logged_in(session, result.user, result.describe())
