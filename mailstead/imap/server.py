"""What the composition root wires to the imap and imaps listeners."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mailstead.imap import response
from mailstead.imap.selected import RecentTracker
from mailstead.imap.session import ServerContext, Session
from mailstead.net.stream import Stream

if TYPE_CHECKING:
    from mailstead.cli.serve import Services
    from mailstead.config.schema import ListenerSettings

Handler = Callable[[Stream], Awaitable[None]]
RejectHook = Callable[[Stream, str], Awaitable[None]]


def imap_protocol(
    services: Services, name: str, conf: ListenerSettings
) -> tuple[Handler, RejectHook]:
    """Factory for ``cli.serve._protocols()``: one handler per listener, sharing the
    process-wide \\Recent tracker across imap and imaps."""
    recent = services.extras.setdefault("imap.recent", RecentTracker())
    assert isinstance(recent, RecentTracker)
    ctx = ServerContext(
        settings=services.settings,
        store=services.store,
        authenticator=services.authenticator,
        tls_context=services.tls,
        starttls=conf.tls == "starttls",
        recent=recent,
    )

    async def handle(stream: Stream) -> None:
        await Session(stream, ctx).run()

    async def reject(stream: Stream, reason: str) -> None:
        # RFC 9051 §7.1.5: BYE as the greeting refuses the connection.
        stream.write(response.untagged(f"BYE {reason}"))

    return handle, reject
