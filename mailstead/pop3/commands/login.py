"""USER, PASS (RFC 1939 §7) and AUTH (RFC 5034 §4): from AUTHORIZATION to TRANSACTION.

The dispatcher has already refused these when the connection does not offer credentials
in the clear (:meth:`~mailstead.pop3.session.Session.offers`), so a handler here never
checks TLS. :func:`login` is the one way into TRANSACTION.
"""

from __future__ import annotations

from mailstead.auth import exchange as sasl
from mailstead.auth.authenticator import UserRecord
from mailstead.auth.sasl import (
    SaslCancelled,
    SaslMalformed,
    SaslRefused,
    UnknownMechanism,
    encode_base64,
)
from mailstead.core.errors import AuthError, AuthThrottled, NotFound, StoreError
from mailstead.net.stream import LineTooLong
from mailstead.pop3 import protocol as wire
from mailstead.pop3.commands.arguments import Password, SaslStart, UserName
from mailstead.pop3.errors import POP3Error, ResponseCode
from mailstead.pop3.maildrop import Maildrop
from mailstead.pop3.session import Session
from mailstead.pop3.states import Authorization, Transaction


async def user(s: Session, state: Authorization, args: UserName) -> None:
    """RFC 1939 §7. Always +OK so the answer does not reveal which accounts exist."""
    s.state = Authorization(pending_user=args.name)
    s.send(wire.ok("send PASS"))


async def pass_(s: Session, state: Authorization, args: Password) -> None:
    """RFC 1939 §7: PASS must directly follow USER; the name is used up either way."""
    s.state = Authorization()
    if state.pending_user is None:
        raise POP3Error("USER first", counts=True)
    await login(s, state.pending_user, args.password)


class _Continuations:
    """The POP3 side of a SASL exchange: ``+ base64`` out, one line back (RFC 5034 §4)."""

    def __init__(self, s: Session) -> None:
        self._s = s

    async def challenge(self, data: bytes) -> bytes:
        s = self._s
        s.send(wire.continuation(encode_base64(data)))
        await s.stream.drain()
        try:
            line = await s.stream.readline(s.config.max_line_length)
        except LineTooLong:
            raise POP3Error("authentication response too long", counts=True) from None
        return line.rstrip(b"\r\n")


async def auth(s: Session, state: Authorization, args: SaslStart | None) -> None:
    """RFC 5034 §4 AUTH with optional initial response; bare AUTH lists the mechanisms.
    The mechanisms, SCRAM included, run in :mod:`mailstead.auth.exchange`, shared with
    IMAP and SMTP."""
    bindings = s.stream.channel_bindings
    if args is None:
        names = [name.encode() for name in s.authenticator.mechanisms(bindings)]
        s.send(wire.multiline(wire.ok("mechanisms follow"), names))
        return
    try:
        result = await sasl.authenticate(
            s.authenticator,
            args.mechanism,
            args.initial_response,
            _Continuations(s),
            ip=s.stream.peer[0],
            bindings=bindings,
        )
    except UnknownMechanism:
        raise POP3Error("unsupported authentication mechanism", counts=True) from None
    except SaslCancelled:
        raise POP3Error("authentication cancelled") from None
    except AuthThrottled:
        raise POP3Error("too many failed logins, try again later", ResponseCode.AUTH) from None
    except AuthError as exc:
        if isinstance(exc, (SaslMalformed, SaslRefused)):
            s.log.info("SASL error: %s", exc)
        raise POP3Error("authentication failed", ResponseCode.AUTH, counts=True) from None
    await _open_maildrop(s, result.user, result.describe())


async def login(s: Session, username: str, password: str) -> None:
    """Check credentials (USER/PASS), then :func:`_open_maildrop`."""
    ip = s.stream.peer[0]
    try:
        record = await s.authenticator.authenticate(username, password, ip)
    except AuthThrottled:
        raise POP3Error("too many failed logins, try again later", ResponseCode.AUTH) from None
    except AuthError:
        raise POP3Error("authentication failed", ResponseCode.AUTH, counts=True) from None
    await _open_maildrop(s, record, "USER/PASS")


async def _open_maildrop(s: Session, record: UserRecord, how: str) -> None:
    """Lock the maildrop, snapshot it, and enter TRANSACTION."""
    user = await s.store.find_user(record.address)
    if user is None:  # removed in the instant since authentication
        raise POP3Error("authentication failed", ResponseCode.AUTH, counts=True)
    s.log.user = user.address
    if s.login_delay.too_soon(user.id):
        # RFC 2449 §8.1.1
        raise POP3Error("logged in too recently, try again later", ResponseCode.LOGIN_DELAY)
    if not s.locks.acquire(user.id):
        # RFC 2449 §8.1.2: another session holds this maildrop.
        s.log.info("maildrop in use")
        raise POP3Error("maildrop already locked by another session", ResponseCode.IN_USE)
    try:
        maildrop = await Maildrop.open(s.store, user.id)
    except (StoreError, NotFound) as exc:
        s.locks.release(user.id)
        s.log.error("cannot open maildrop: %s", exc)
        raise POP3Error("unable to open maildrop", ResponseCode.SYS_TEMP) from None
    s.state = Transaction(user.id, maildrop, user.pop3_policy)
    s.login_delay.record(user.id)
    count, octets = maildrop.stat()
    s.log.info(
        "logged in (%s), %d messages (%d octets), policy %s", how, count, octets, user.pop3_policy
    )
    s.send(wire.ok(f"maildrop has {count} messages ({octets} octets)"))
