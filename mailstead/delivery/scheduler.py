"""The outbound delivery loop: claim due recipients, deliver them, record, notify, retire.

One :class:`Scheduler` per server process. Its loop:

1. **claim**: recipients that are due (``queued`` or ``deferred`` with ``next_attempt`` in
   the past, message not on hold) are marked ``inflight`` in the store in one write, so a
   crash can tell what was being attempted (:meth:`OutboundQueue.recover_queue` at
   start-up makes them due again);
2. **route**: each recipient goes to a *destination* (:mod:`.routes`): a static route, the
   smarthost, or the MX hosts of its domain. Recipients in a domain we host are delivered
   into the store, never over the network;
3. **deliver** (:mod:`.attempts`): each destination has a work queue and up to
   ``max_connections_per_domain`` workers; a worker holds one connection (and a slot of
   the global and per-host limits) and sends message after message over it (connection
   reuse), up to ``max_messages_per_connection``. MX hosts are tried in preference order,
   each address in turn (RFC 5321 §5.1);
4. **record** (:mod:`.outcome`): a 2xx makes the recipient ``delivered``; a 5xx
   ``failed``; a 4xx or a connection failure ``deferred`` with the next attempt after the
   configured interval, until the message is ``max_age_seconds`` old (then it fails,
   RFC 5321 §4.5.4.1). A delay notice goes out once, after ``delay_warning_seconds``,
   when NOTIFY allows DELAY (by default it does);
5. **settle and retire** (:mod:`.settlement`): the failure and success DSNs owed
   (RFC 3461 §5.2 / RFC 3464), then a message whose recipients are all final and settled
   leaves the queue.

Time comes from an injectable :class:`~.clock.Clock`, so tests run a day of retries in
milliseconds with :class:`~.clock.ManualClock`. :meth:`Scheduler.run_once` delivers
everything due now and waits for it, for tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from mailstead.config.schema import Settings
from mailstead.core import metrics, sanity
from mailstead.core.errors import StoreError
from mailstead.delivery.attempts import (
    Batch,
    Connector,
    DestinationQueue,
    deliver_locally,
    send_batch,
)
from mailstead.delivery.bounce import DSNAction
from mailstead.delivery.clock import Clock, SystemClock
from mailstead.delivery.deliver import DeliveryStore
from mailstead.delivery.dns import DNSFailure, Resolver
from mailstead.delivery.outcome import Notify, Outcome, OutcomeKind, next_state, notify_allows
from mailstead.delivery.remote import RemoteError
from mailstead.delivery.router import Router
from mailstead.delivery.routes import Destination, RouteTable
from mailstead.delivery.settlement import Settlement
from mailstead.store.models import QueuedMessage, QueuedRecipient, QueueStatus

log = logging.getLogger("mailstead.delivery")

#: Recipients claimed but not finished, at most; bounds memory with a huge queue.
MAX_CLAIMED = 5000
CLAIM_BATCH = 1000


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Scheduler:
    """Delivers the outbound queue. ``start``/``stop`` from the composition root.

    The store piece it needs is the deliverer's (:class:`DeliveryStore`): the queue, and
    local delivery for recipients in our own domains and for notifications to our users.
    """

    def __init__(
        self,
        store: DeliveryStore,
        settings: Settings,
        *,
        router: Router,
        resolver: Resolver | None = None,
        routes: RouteTable | None = None,
        clock: Clock | None = None,
    ) -> None:
        conf = settings.delivery
        self.store = store
        self.conf = conf
        self.router = router
        self.routes = routes or RouteTable(conf)
        self.clock: Clock = clock or SystemClock()
        self.connector = Connector(
            conf, conf.helo_name or settings.hostname,
            resolver or Resolver(conf.nameservers, conf.dns_port,
                                 float(conf.dns_timeout_seconds), conf.ip_version))
        self.settlement = Settlement(store, self.router, hostname=settings.hostname,
                                     conf=conf, clock=self.clock, wake=self.wake)
        self._global = asyncio.Semaphore(conf.max_connections)
        self._queues: dict[str, DestinationQueue] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._claimed = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: run_once: deliver what is due and return, so no connection waits for more.
        self._draining = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        recovered = await self.store.recover_queue(self.clock.now())
        if recovered:
            log.info("outbound queue: %d recipients were in flight at the last stop; "
                     "they are due again", recovered)
        self._task = asyncio.create_task(self._run(), name="outbound-scheduler")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, give running transactions ``grace`` seconds, then cancel them;
        recipients still in flight become due again for the next start."""
        self._stopping = True
        for queue in self._queues.values():
            queue.arrived.set()  # idle connections waiting for more mail give up now
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._workers:
            _, pending = await asyncio.wait(set(self._workers), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self.store.recover_queue(self.clock.now())

    @property
    def _reuse_seconds(self) -> float:
        """How long an idle connection waits for more mail (none while draining or
        stopping)."""
        if self._draining or self._stopping:
            return 0.0
        return float(self.conf.connection_reuse_seconds)

    @property
    def running(self) -> bool:
        """Whether the scheduling loop is alive (started, not stopped, not crashed)."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """New mail is queued, or the operator said retry: look now, not at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._dispatch_due()
                await self.settlement.settle_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep delivering; the next round retries
                # Under test the bug stops the loop, and stop() raises it.
                sanity.degrade(log, exc, "outbound scheduler round failed: %s", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.conf.poll_seconds)
            self._wake.clear()

    async def run_once(self) -> None:
        """Deliver everything due now and wait until it is done (tests, benchmark)."""
        self._draining = True
        try:
            while True:
                claimed = await self._dispatch_due()
                while self._workers:
                    await asyncio.gather(*set(self._workers), return_exceptions=True)
                await self.settlement.settle_pending()
                if not claimed and not self._workers:
                    return
        finally:
            self._draining = False

    # -- claim and route -----------------------------------------------------------------
    async def _dispatch_due(self) -> int:
        total = 0
        while not self._stopping and self._claimed < MAX_CLAIMED:
            limit = min(CLAIM_BATCH, MAX_CLAIMED - self._claimed)
            messages = await self.store.claim_queue(self.clock.now(), limit)
            if not messages:
                break
            count = sum(len(m.envelope.recipients) for m in messages)
            self._claimed += count
            total += count
            for message in messages:
                await self._route(message)
            if count < limit:
                break
        if total == 0:
            # Work no attempt will trigger: DSNs owed after a crash, or by local delivery.
            self.settlement.mark(await self.store.unsettled_queue(200))
        return total

    async def _route(self, message: QueuedMessage) -> None:
        by_key: dict[str, tuple[Destination, list[QueuedRecipient]]] = {}
        local: list[QueuedRecipient] = []
        for recipient in message.envelope.recipients:
            domain = _domain_of(recipient.address)
            if await self.router.local_domain(domain) is not None:
                local.append(recipient)
                continue
            destination = self.routes.route(domain)
            by_key.setdefault(destination.key, (destination, []))[1].append(recipient)
        if local:
            self._spawn(self._deliver_locally(Batch(message, local)))
        size = self.conf.max_recipients_per_message
        for key, (destination, recipients) in by_key.items():
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = DestinationQueue(destination)
            for start in range(0, len(recipients), size):
                queue.add(Batch(message, recipients[start : start + size]))
            while queue.workers < self.conf.max_connections_per_domain and (
                    queue.workers < len(queue.batches)):
                queue.workers += 1
                self._spawn(self._worker(queue))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    # -- delivery ------------------------------------------------------------------------
    async def _worker(self, queue: DestinationQueue) -> None:
        """Connections to one destination, one after another, until its queue is empty."""
        try:
            async with self._global:
                while queue.batches and not self._stopping:
                    await self._one_connection(queue)
        finally:
            queue.workers -= 1
            if not queue.workers and not queue.batches:
                self._queues.pop(queue.destination.key, None)

    async def _one_connection(self, queue: DestinationQueue) -> None:
        try:
            async with self.connector.session(queue.destination) as session:
                while session.usable and not self._stopping and (
                        session.messages_sent < self.conf.max_messages_per_connection):
                    if not await queue.wait_for_work(self._reuse_seconds):
                        break
                    batch = queue.batches.popleft()
                    outcomes = await send_batch(session, batch, self.store)
                    await self._record([(batch, outcomes)])
        except (RemoteError, DNSFailure) as exc:
            # The destination is unreachable: everything waiting for it shares the fate.
            text = (str(exc.reply) if isinstance(exc, RemoteError) and exc.reply is not None
                    else exc.reason)
            outcome = Outcome.failure(temporary=exc.temporary, status=exc.status, text=text)
            batches = list(queue.batches)
            queue.batches.clear()
            await self._record([(batch, {r.address: outcome for r in batch.recipients})
                                for batch in batches])

    async def _deliver_locally(self, batch: Batch) -> None:
        await self._record([(batch, await deliver_locally(self.store, self.router, batch))])

    # -- recording -----------------------------------------------------------------------
    async def _record(self, done: Sequence[tuple[Batch, dict[str, Outcome]]]) -> None:
        """Turn outcomes into recipient state, send delay notices, queue settling."""
        now = self.clock.now()
        updates: list[QueuedRecipient] = []
        delays: list[tuple[QueuedMessage, list[QueuedRecipient]]] = []
        final: set[int] = set()
        for batch, outcomes in done:
            message = batch.message
            age = (now - message.created).total_seconds()
            delayed: list[QueuedRecipient] = []
            for recipient in batch.recipients:
                outcome = outcomes[recipient.address]
                updated = next_state(recipient, outcome, now=now, age=age, conf=self.conf)
                label = _outcome_label(updated.status, outcome)
                metrics.OUTBOUND_RECIPIENTS.labels(label).inc()
                # One line per outcome, as an admin greps for a message or a recipient.
                log.info("%s: to=<%s> %s via %s: %s",
                         message.envelope.trace_id or f"queue#{message.id}",
                         recipient.address, label, outcome.remote or "-", outcome.text)
                if (updated.status is QueueStatus.DEFERRED and not updated.delay_notified
                        and self.conf.delay_warning_seconds
                        and age >= self.conf.delay_warning_seconds):
                    updated = dataclasses.replace(updated, delay_notified=True)
                    if message.envelope.mail_from and notify_allows(updated, Notify.DELAY):
                        delayed.append(updated)
                updates.append(updated)
                if updated.status.final:
                    final.add(message.id)
            if delayed:
                delays.append((message, delayed))
        await self.store.update_queue_recipients(updates)
        self._claimed -= sum(len(batch.recipients) for batch, _ in done)
        for message, recipients in delays:
            await self.settlement.notify(message, recipients, DSNAction.DELAYED)
        self.settlement.mark(final)
        if self.settlement.has_pending and self._task is not None:
            self._wake.set()


def _outcome_label(status: QueueStatus, outcome: Outcome) -> str:
    """delivered, deferred, bounced (refused for good) or expired (deferred too long)."""
    if status is QueueStatus.DELIVERED:
        return "delivered"
    if status is not QueueStatus.FAILED:
        return "deferred"
    return "bounced" if outcome.kind is OutcomeKind.FAILED else "expired"
