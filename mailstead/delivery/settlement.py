"""Settling the outbound queue: the DSNs owed for final recipients, then retirement.

A recipient that reached a final state (delivered or failed) may still owe its sender a
notification (RFC 3461 §4.1, RFC 3464): a failure report unless NOTIFY said otherwise,
a success report for NOTIFY=SUCCESS (``relayed`` when the remote server did not take DSN
over). :meth:`Settlement.settle_pending` sends what is owed, marks the recipients
settled, and removes a message once every recipient is final and settled.

The DSN goes out *before* the recipients are marked settled, so a crash between the two
can repeat a notification but never lose one. Nothing is ever sent to the null sender: a
bounce never bounces (RFC 3461 §6.2, RFC 5321 §6.1). A notification for one of our own
users goes into their INBOX; for a remote sender it is queued with the null reverse-path.
Delay notices (sent by the scheduler while a recipient is still deferred) use the same
:meth:`Settlement.notify`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from mailstead.config.schema import DeliverySettings
from mailstead.core.errors import InvalidName, MailsteadError
from mailstead.core.types import Address
from mailstead.delivery.bounce import DSNAction, DSNRecipient, build_dsn
from mailstead.delivery.clock import Clock
from mailstead.delivery.deliver import DeliveryStore
from mailstead.delivery.outcome import Notify, notify_allows
from mailstead.delivery.router import DeliveryError, Router
from mailstead.store.models import (
    OutboundEnvelope,
    QueuedMessage,
    QueuedRecipient,
    QueueStatus,
    Recipient,
)

log = logging.getLogger("mailstead.delivery")


class Settlement:
    """Owes, sends and records DSNs; retires finished messages.

    ``wake`` is called when a notification was queued for a remote sender, so the
    scheduler delivers it now rather than at its next poll.
    """

    def __init__(self, store: DeliveryStore, router: Router, *, hostname: str,
                 conf: DeliverySettings, clock: Clock, wake: Callable[[], None]) -> None:
        self.store = store
        self.router = router
        self.hostname = hostname
        self.conf = conf
        self.clock = clock
        self.wake = wake
        self._pending: set[int] = set()
        self._lock = asyncio.Lock()

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def mark(self, queue_ids: Iterable[int]) -> None:
        """These messages have recipients that became final: settle them next round."""
        self._pending.update(queue_ids)

    async def settle_pending(self) -> None:
        async with self._lock:
            ids, self._pending = sorted(self._pending), set()
            for queue_id in ids:
                try:
                    await self._settle(queue_id)
                except MailsteadError as exc:
                    log.error("queued message #%d: settling failed: %s", queue_id, exc)

    async def _settle(self, queue_id: int) -> None:
        """Send the DSN owed for final recipients; retire the message when all are done."""
        found = await self.store.queued_messages([queue_id])
        if not found:
            return
        message = found[0]
        recipients = message.envelope.recipients
        unsettled = [r for r in recipients if r.status.final and not r.settled]
        if unsettled:
            owed_fail = [r for r in unsettled if r.status is QueueStatus.FAILED
                         and notify_allows(r, Notify.FAILURE)]
            owed_ok = [r for r in unsettled if r.status is QueueStatus.DELIVERED
                       and notify_allows(r, Notify.SUCCESS)]
            if message.envelope.mail_from and (owed_fail or owed_ok):
                await self.notify(message, owed_fail + owed_ok, None)
            await self.store.update_queue_recipients(
                [dataclasses.replace(r, settled=True) for r in unsettled])
        if all(r.status.final for r in recipients):
            await self.store.remove_queued(queue_id)

    def _dsn_entry(self, message: QueuedMessage, r: QueuedRecipient,
                   action: DSNAction | None) -> DSNRecipient:
        text = r.last_error or ""
        is_reply = len(text) > 3 and text[:3].isdigit() and text[3:4] == " "
        # r.remote is "name[address]:port TLSv1.3"; people want "name[address]".
        where, _, tls = (r.remote or "").partition(" ")
        host_text = where.rsplit(":", 1)[0] if where.endswith(tuple("0123456789")) else where
        host = host_text or None
        if action is None:
            if r.status is QueueStatus.FAILED:
                action = DSNAction.FAILED
            else:
                action = DSNAction.RELAYED if r.remote else DSNAction.DELIVERED
        if action is DSNAction.DELIVERED and not r.remote:
            reason = "delivered to the mailbox"
        elif is_reply and host:
            reason = f"host {host} said: {text}" + (f" (over {tls})" if tls else "")
        else:
            reason = text or "no further detail"
        until = None
        if action is DSNAction.DELAYED:
            until = message.created + timedelta(seconds=self.conf.max_age_seconds)
        succeeded = action in (DSNAction.DELIVERED, DSNAction.RELAYED)
        status = r.status_code or ("2.0.0" if succeeded else "4.0.0")
        return DSNRecipient(
            recipient=r.address, action=action, status=status, reason=reason,
            reply=text if is_reply and r.remote else None,
            remote_mta=host.split("[")[0] if host else None,
            original_recipient=r.orcpt, last_attempt=r.last_attempt,
            will_retry_until=until,
        )

    async def notify(self, message: QueuedMessage, recipients: Iterable[QueuedRecipient],
                     action: DSNAction | None) -> None:
        """One DSN to the envelope sender about ``recipients`` (never to the null sender);
        ``action`` None takes each recipient's from its state."""
        sender = message.envelope.mail_from
        entries = [self._dsn_entry(message, r, action) for r in recipients]
        if not sender or not entries:
            return
        try:
            original = await self.store.read_blob(message.blob_id)
        except MailsteadError:
            original = b""
        dsn = build_dsn(hostname=self.hostname, sender=sender, recipients=entries,
                        original=original, envid=message.envelope.envid,
                        ret=message.envelope.ret, arrival=message.created,
                        now=self.clock.now())
        # One line per notification, beside the per-recipient outcome lines: which message
        # it is about (its trace id), to whom it goes, and what it reports.
        log.info("%s: DSN to <%s>: %s", message.envelope.trace_id or f"queue {message.id}",
                 sender, ", ".join(f"{e.recipient} {e.action.value}" for e in entries))
        await self.send_notification(sender, dsn)

    async def send_notification(self, sender: str, dsn: bytes) -> None:
        """Deliver a DSN: into the mailbox when the sender is ours, else queued for the
        remote sender with the null reverse-path (RFC 3461 §6.2, RFC 5321 §4.5.5)."""
        try:
            address = Address.parse(sender)
        except InvalidName:
            log.warning("not sending a DSN to unparsable sender %r", sender)
            return
        remote: list[str] = []
        if await self.router.local_domain(address.domain) is not None:
            try:
                route = await self.router.resolve(address)
            except DeliveryError as exc:
                log.warning("DSN for <%s> dropped: %s", sender, exc)
                return
            targets = [Recipient(t.user_id, "INBOX") for t in route.local]
            if targets:
                await self.store.deliver(dsn, targets)
            remote = list(route.remote)
        else:
            remote = [str(address)]
        if remote:
            envelope = OutboundEnvelope(
                mail_from="", recipients=tuple(QueuedRecipient(a, (Notify.NEVER.value,))
                                               for a in remote),
                smtputf8=not dsn.isascii())
            await self.store.enqueue(dsn, envelope)
            self.wake()
