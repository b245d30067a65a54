"""What the composition root wires to the imap (STARTTLS) and imaps (implicit TLS) listeners.

One :class:`IMAPServer` per process serves both listeners, so the \\Recent bookkeeping
(RFC 3501 §2.3.2: one session is told a message is new) spans ports 143 and 993.
"""

from __future__ import annotations

from mailstead.auth.authenticator import Authenticator
from mailstead.config.schema import ListenerSettings, Settings
from mailstead.core.spool import SpoolDir
from mailstead.core.types import TLSMode
from mailstead.imap import response
from mailstead.imap.selected import RecentTracker
from mailstead.imap.session import MailStore, ServerContext, Session
from mailstead.net.listener import Handler, RejectHook
from mailstead.net.stream import Stream
from mailstead.net.tls import TLSContexts


class IMAPServer:
    """Shared state of every IMAP session in the process, and the per-listener handlers."""

    def __init__(
        self,
        store: MailStore,
        authenticator: Authenticator,
        settings: Settings,
        tls: TLSContexts | None,
        *,
        spools: SpoolDir | None = None,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.settings = settings
        self.tls = tls
        self.recent = RecentTracker()
        self.spools = spools

    def context(self, listener: ListenerSettings) -> ServerContext:
        """What the sessions of one listener share."""
        return ServerContext(
            settings=self.settings,
            store=self.store,
            authenticator=self.authenticator,
            tls=self.tls,
            starttls=TLSMode(listener.tls) is TLSMode.STARTTLS,
            recent=self.recent,
            spools=self.spools,
        )

    def endpoint(self, name: str, listener: ListenerSettings) -> tuple[Handler, RejectHook]:
        """(handler, reject hook) for the listener ``name`` (imap or imaps)."""
        ctx = self.context(listener)

        async def handle(stream: Stream) -> None:
            await Session(stream, ctx).run()

        return handle, reject


async def reject(stream: Stream, reason: str) -> None:
    """Connection cap reached: RFC 9051 §7.1.5, BYE as the greeting refuses the connection."""
    stream.write(response.untagged(f"BYE {reason}"))
