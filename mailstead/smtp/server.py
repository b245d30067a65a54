"""What the composition root wires to the smtp (MX), submission and submissions listeners.

One :class:`SMTPServer` per process serves all three; each listener gets its own session
configuration (MX: anyone may send to local recipients, nothing is relayed; submission:
AUTH required before MAIL, authenticated users may send anywhere as themselves).
"""

from __future__ import annotations

from mailstead.auth.authenticator import Authenticator
from mailstead.config.schema import ListenerSettings, Settings
from mailstead.core.spool import SpoolDir
from mailstead.core.types import TLSMode
from mailstead.delivery.deliver import Deliverer
from mailstead.net.listener import Handler, RejectHook
from mailstead.net.stream import Stream
from mailstead.net.tls import TLSContexts
from mailstead.smtp.codes import Reply
from mailstead.smtp.session import Session, SessionConfig

SUBMISSION_LISTENERS = frozenset({"submission", "submissions"})


class SMTPServer:
    """Shared state of every SMTP session in the process, and the per-listener handlers."""

    def __init__(
        self,
        deliverer: Deliverer,
        authenticator: Authenticator,
        settings: Settings,
        tls: TLSContexts | None,
        *,
        spools: SpoolDir | None = None,
    ) -> None:
        self.deliverer = deliverer
        self.authenticator = authenticator
        self.settings = settings
        self.tls = tls
        self.spools = spools

    def session_config(self, name: str, listener: ListenerSettings) -> SessionConfig:
        settings = self.settings
        limits = settings.limits
        return SessionConfig(
            hostname=settings.hostname,
            submission=name in SUBMISSION_LISTENERS,
            tls_mode=TLSMode(listener.tls),
            # Either switch loosens: [auth] allow_plaintext is the server-wide one.
            plaintext_auth=settings.auth.allow_plaintext or not settings.smtp.require_tls_for_auth,
            max_message_size=limits.max_message_size,
            max_recipients=settings.smtp.max_recipients,
            max_line_length=limits.smtp_max_line_length,
            idle_timeout=float(limits.smtp_idle_timeout_seconds),
            max_errors=limits.max_errors_per_session,
            max_commands=limits.max_commands_per_session,
            reject_bare_lf=settings.smtp.reject_bare_lf,
            login_timeout=float(limits.login_timeout_seconds),
            transfer_timeout=float(limits.transfer_timeout_seconds),
        )

    def endpoint(self, name: str, listener: ListenerSettings) -> tuple[Handler, RejectHook]:
        """(handler, reject hook) for one listener."""
        config = self.session_config(name, listener)

        async def handle(stream: Stream) -> None:
            session = Session(stream, config, self.deliverer, self.authenticator, self.tls,
                              spools=self.spools)
            await session.run()

        async def reject(stream: Stream, reason: str) -> None:
            # RFC 5321 §3.1: a server that cannot serve says 421 instead of 220.
            stream.write(Reply(421, "4.7.0", f"{config.hostname} {reason}, try again later")
                         .encode())

        return handle, reject
