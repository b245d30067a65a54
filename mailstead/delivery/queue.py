"""The durable outbound queue, as delivery code sees it.

SMTP receive puts mail for remote recipients here through :meth:`Delivery.commit`, in the
same store transaction as the local copies, so a ``250`` means "stored or queued, durably"
for every recipient. Nothing here ever drops a message: until outbound delivery exists
(the remote-SMTP issue), queued mail simply stays queued, across restarts.

Recipients with status ``delivered`` are local recipients that asked for a success DSN
(RFC 3461 §5.2.2 ``NOTIFY=SUCCESS``); the outbound side owes them a notification.
"""

from __future__ import annotations

from mailstead.store.interfaces import Store
from mailstead.store.models import QueuedMessage


class OutboundQueue:
    """Read and retire queued messages; filling it happens in :mod:`.deliver`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def messages(self) -> list[QueuedMessage]:
        """Every queued message, oldest first."""
        return await self.store.list_queue()

    async def pending(self) -> list[QueuedMessage]:
        """Messages that still have a recipient to deliver to or to notify."""
        return [
            message for message in await self.store.list_queue()
            if any(r.status in ("queued", "delivered") for r in message.envelope.recipients)
        ]

    async def remove(self, queue_id: int) -> None:
        """Retire a message once every recipient is done; its body becomes collectable."""
        await self.store.remove_queued(queue_id)
