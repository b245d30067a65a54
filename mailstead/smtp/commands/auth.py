"""AUTH (RFC 4954) with the shared SASL mechanisms and the shared Authenticator.

Failed logins are throttled by the Authenticator (shared with IMAP and POP3); the client
only ever learns "invalid credentials". Nothing of the exchange is logged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mailstead.auth import exchange as sasl
from mailstead.auth.sasl import (
    MAX_RESPONSE,
    SaslCancelled,
    SaslMalformed,
    SaslRefused,
    UnknownMechanism,
    encode_base64,
)
from mailstead.core.errors import AuthError, AuthThrottled
from mailstead.net.stream import LineTooLong
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.grammar import AuthArgs
from mailstead.smtp.states import Ready
from mailstead.store.models import User

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_THROTTLED = Reply(454, "4.7.0", "Temporary authentication failure")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
AUTH_MALFORMED = Reply(501, "5.5.2", "Cannot decode authentication response")


def guard(session: Session, state: Ready) -> None:
    """Whether AUTH may be used at all here, before its argument is read."""
    if state.client.user is not None:
        raise error(503, "5.5.1", "Already authenticated")  # RFC 4954 §4
    if not session.config.submission:
        raise error(502, "5.5.1", "AUTH is not available on this port")
    if not session.offers_auth:
        raise error(538, "5.7.11", "Encryption required for requested authentication mechanism")


class _Challenges:
    """The SMTP side of a SASL exchange: ``334 base64`` out, one line back (RFC 4954 §4)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def challenge(self, data: bytes) -> bytes:
        session = self._session
        session.reply(Reply(334, "", encode_base64(data).decode("ascii")))
        await session.flush()
        try:
            line = await session.stream.readline(MAX_RESPONSE + 2, session.config.idle_timeout)
        except LineTooLong:
            raise error(500, "5.5.6", "Authentication exchange line too long") from None
        return line.rstrip(b"\r\n")


async def handle(session: Session, state: Ready, args: AuthArgs) -> None:
    """RFC 4954 §4; the mechanisms, SCRAM included, run in :mod:`mailstead.auth.exchange`,
    shared with IMAP and POP3."""
    try:
        result = await sasl.authenticate(
            session.authenticator, args.mechanism, args.initial_response, _Challenges(session),
            ip=session.client_ip, bindings=session.stream.channel_bindings,
        )
    except UnknownMechanism:
        raise error(504, "5.5.4", "Unrecognized authentication type") from None
    except SaslCancelled:
        raise SMTPError(AUTH_CANCELLED) from None
    except SaslMalformed as exc:
        raise SMTPError(AUTH_MALFORMED, log=f"SASL error: {exc}") from None
    except AuthThrottled:
        raise SMTPError(AUTH_THROTTLED, log="login throttled") from None
    except SaslRefused as exc:
        raise SMTPError(AUTH_FAILED, log=f"SASL refused: {exc}") from None
    except AuthError:
        raise SMTPError(AUTH_FAILED) from None
    record = result.user
    user = record if isinstance(record, User) else (
        await session.deliverer.router.store.find_user(record.address)
    )
    if user is None:
        raise SMTPError(AUTH_FAILED)
    session.state = Ready(replace(state.client, user=user))
    session.log.user = user.address
    session.log.info("authenticated as %s (%s)", user.address, result.describe())
    session.reply(AUTH_OK)
