"""What the composition root wires to the pop3 (STLS) and pop3s (implicit TLS) listeners.

One :class:`POP3Server` per process serves both listeners, so the maildrop locks
(RFC 2449 ``[IN-USE]``) and the login-delay bookkeeping are shared between them: a client
on port 995 is refused while another holds the same maildrop on port 110.
"""

from __future__ import annotations

from mailstead.auth.authenticator import Authenticator
from mailstead.config.schema import ListenerSettings, Settings
from mailstead.core.types import TLSMode
from mailstead.net.listener import Handler, RejectHook
from mailstead.net.stream import Stream
from mailstead.net.tls import TLSContexts
from mailstead.pop3 import protocol as wire
from mailstead.pop3.commands import COMMANDS
from mailstead.pop3.errors import ResponseCode
from mailstead.pop3.maildrop import MaildropLocks, MaildropStore
from mailstead.pop3.session import LoginDelay, Session, SessionConfig


class POP3Server:
    """Shared state of every POP3 session in the process, and the per-listener handlers."""

    def __init__(
        self,
        store: MaildropStore,
        authenticator: Authenticator,
        settings: Settings,
        tls: TLSContexts | None,
        *,
        login_delay: int = 0,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.settings = settings
        self.tls = tls
        self.locks = MaildropLocks()
        self.login_delay = LoginDelay(login_delay)

    def session_config(self, listener: ListenerSettings) -> SessionConfig:
        limits = self.settings.limits
        return SessionConfig(
            hostname=self.settings.hostname,
            tls_mode=TLSMode(listener.tls),
            allow_plaintext=self.settings.auth.allow_plaintext,
            max_line_length=limits.pop3_max_line_length,
            idle_timeout=float(limits.pop3_idle_timeout_seconds),
            login_timeout=float(limits.login_timeout_seconds),
            max_errors=limits.max_errors_per_session,
            max_commands=limits.max_commands_per_session,
            login_delay=self.login_delay.seconds,
        )

    def endpoint(self, name: str, listener: ListenerSettings) -> tuple[Handler, RejectHook]:
        """(handler, reject hook) for the listener ``name`` (pop3 or pop3s)."""
        config = self.session_config(listener)

        async def handle(stream: Stream) -> None:
            session = Session(
                stream,
                store=self.store,
                authenticator=self.authenticator,
                locks=self.locks,
                config=config,
                commands=COMMANDS,
                tls=self.tls,
                login_delay=self.login_delay,
            )
            await session.run()

        return handle, reject


async def reject(stream: Stream, reason: str) -> None:
    """Connection cap reached: RFC 2449 §8 [SYS/TEMP] instead of a greeting."""
    stream.write(wire.err(f"{reason}, try again later", ResponseCode.SYS_TEMP))
