"""The outbound delivery loop: claim due recipients, deliver them, record, notify, retire.

One :class:`Scheduler` per server process. Its loop:

1. **claim**: recipients that are due (``queued`` or ``deferred`` with ``next_attempt`` in
   the past, message not on hold) are marked ``inflight`` in the store in one write, so a
   crash can tell what was being attempted (:meth:`Store.recover_queue` at start-up makes
   them due again);
2. **route**: each recipient goes to a *destination* (:mod:`.routes`): a static route, the
   smarthost, or the MX hosts of its domain. Recipients in a domain we host are delivered
   into the store, never over the network;
3. **deliver**: each destination has a work queue and up to
   ``max_connections_per_domain`` workers; a worker holds one connection (and a slot of
   the global and per-host limits) and sends message after message over it (connection
   reuse), up to ``max_messages_per_connection``. MX hosts are tried in preference order,
   each address in turn (RFC 5321 §5.1);
4. **record**: a 2xx makes the recipient ``delivered``; a 5xx ``failed``; a 4xx or a
   connection failure ``deferred`` with the next attempt after the configured interval,
   until the message is ``max_age_seconds`` old (then it fails, RFC 5321 §4.5.4.1);
5. **notify** (RFC 3461 §5.2 / RFC 3464): a failure DSN to the envelope sender unless
   NOTIFY=NEVER (or without FAILURE); a delay DSN once, after ``delay_warning_seconds``,
   when NOTIFY allows DELAY (by default it does); a success DSN for NOTIFY=SUCCESS
   (``relayed`` when the remote server took the message without taking over DSNs).
   Nothing is ever sent to the null sender: a bounce never bounces;
6. **retire**: a message whose recipients are all final and settled leaves the queue.

Time comes from an injectable :class:`Clock`, so tests run a day of retries in
milliseconds with :class:`ManualClock`. :meth:`Scheduler.run_once` delivers everything
due now and waits for it, for tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from mailstead.config.schema import Settings
from mailstead.core.errors import InvalidName, MailsteadError, StoreError
from mailstead.core.types import Address
from mailstead.delivery.bounce import DSNRecipient, build_dsn
from mailstead.delivery.dns import DNSFailure, Resolver
from mailstead.delivery.remote import (
    OutMessage,
    OutRecipient,
    RemoteError,
    RemoteSession,
)
from mailstead.delivery.router import DeliveryError, Router
from mailstead.delivery.routes import Destination, RouteTable, is_ip
from mailstead.store.interfaces import Store
from mailstead.store.models import (
    OutboundEnvelope,
    QueuedMessage,
    QueuedRecipient,
    QueueStatus,
    Recipient,
)
from mailstead.wire.smtp import Reply

log = logging.getLogger("mailstead.delivery")

#: Recipients claimed but not finished, at most; bounds memory with a huge queue.
MAX_CLAIMED = 5000
CLAIM_BATCH = 1000


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock tests move by hand: ``clock.advance(3600)`` is an hour later."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


@dataclass(slots=True)
class _Item:
    """The recipients of one message that go to one destination."""

    message: QueuedMessage
    recipients: list[QueuedRecipient]


@dataclass(slots=True)
class _DestinationQueue:
    destination: Destination
    items: collections.deque[_Item] = field(default_factory=collections.deque)
    workers: int = 0


@dataclass(slots=True)
class _Outcome:
    """What one attempt did to one recipient; the scheduler turns it into state."""

    kind: str  # delivered, failed, deferred
    status: str
    text: str  # the remote reply ("550 5.1.1 ...") or our reason
    remote: str | None = None
    tls: str | None = None
    dsn_passed_on: bool = False


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _notify_allows(recipient: QueuedRecipient, what: str) -> bool:
    """RFC 3461 §4.1: without NOTIFY, FAILURE and DELAY are the default; NEVER is none."""
    notify = {n.upper() for n in recipient.notify}
    if not notify:
        return what in ("FAILURE", "DELAY")
    return "NEVER" not in notify and what in notify


class Scheduler:
    """Delivers the outbound queue. ``start``/``stop`` from the composition root."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        router: Router | None = None,
        resolver: Resolver | None = None,
        routes: RouteTable | None = None,
        clock: Clock | None = None,
    ) -> None:
        conf = settings.delivery
        self.store = store
        self.settings = settings
        self.conf = conf
        self.hostname = settings.hostname
        self.helo = conf.helo_name or settings.hostname
        self.router = router or Router(store, settings.smtp.plus_separator)
        self.resolver = resolver or Resolver(conf.nameservers, conf.dns_port,
                                             float(conf.dns_timeout_seconds), conf.ip_version)
        self.routes = routes or RouteTable(conf)
        self.clock: Clock = clock or SystemClock()
        self._global = asyncio.Semaphore(conf.max_connections)
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._queues: dict[str, _DestinationQueue] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._claimed = 0
        self._to_settle: set[int] = set()
        self._settle_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Counters for logs, tests and the benchmark.
        self.delivered = 0
        self.failed = 0
        self.deferred = 0
        self.connections = 0
        self.dsns_sent = 0

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

    def wake(self) -> None:
        """New mail is queued, or the operator said retry: look now, not at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._dispatch_due()
                await self._settle_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep delivering; the next round retries
                log.exception("outbound scheduler round failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.conf.poll_seconds)
            self._wake.clear()

    async def run_once(self) -> None:
        """Deliver everything due now and wait until it is done (tests, benchmark)."""
        while True:
            claimed = await self._dispatch_due()
            while self._workers:
                await asyncio.gather(*set(self._workers), return_exceptions=True)
            await self._settle_pending()
            if not claimed and not self._workers:
                return

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
        self._to_settle.update(await self.store.unsettled_queue(200) if total == 0 else ())
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
            self._spawn(self._deliver_locally(message, local))
        size = self.conf.max_recipients_per_message
        for key, (destination, recipients) in by_key.items():
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _DestinationQueue(destination)
            for start in range(0, len(recipients), size):
                queue.items.append(_Item(message, recipients[start : start + size]))
            while queue.workers < self.conf.max_connections_per_domain and (
                    queue.workers < len(queue.items)):
                queue.workers += 1
                self._spawn(self._worker(queue))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    # -- delivery ------------------------------------------------------------------------
    async def _worker(self, queue: _DestinationQueue) -> None:
        """One connection's worth of work for one destination."""
        try:
            async with self._global:
                while queue.items and not self._stopping:
                    await self._one_connection(queue)
        finally:
            queue.workers -= 1
            if not queue.workers and not queue.items:
                self._queues.pop(queue.destination.key, None)

    async def _candidates(self, destination: Destination) -> list[tuple[str, str]]:
        """(host name, address) pairs to try, in order. Raises DNSFailure."""
        if destination.kind == "mx":
            hosts = await self.resolver.mx(destination.domain)
        else:
            hosts = None
        pairs: list[tuple[str, str]] = []
        if hosts is None:
            host = destination.host
            if is_ip(host):
                return [(host, host)]
            addresses = await self.resolver.addresses(host)
            if not addresses:
                raise DNSFailure(f"host {host} has no address", temporary=True,
                                 status="4.4.4")
            return [(host, a) for a in addresses]
        last_failure: DNSFailure | None = None
        for mx in hosts:
            if is_ip(mx.name):
                pairs.append((mx.name, mx.name))
                continue
            try:
                addresses = await self.resolver.addresses(mx.name)
            except DNSFailure as exc:
                last_failure = exc
                continue
            pairs.extend((mx.name, a) for a in addresses)
            if not addresses and mx.implicit:
                # RFC 5321 §5.1: no MX and no address records: the domain takes no mail.
                raise DNSFailure(f"domain {destination.domain} has no MX and no address "
                                 "records", temporary=False, status="5.1.2")
        if not pairs:
            if last_failure is not None and last_failure.temporary:
                raise last_failure
            raise DNSFailure(f"no MX host of {destination.domain} has an address",
                             temporary=True, status="4.4.4")
        return pairs

    async def _connect(self, destination: Destination) -> RemoteSession:
        """The first host that answers, in MX order. Raises RemoteError or DNSFailure."""
        pairs = await self._candidates(destination)
        last: RemoteError | None = None
        for host, address in pairs:
            semaphore = self._per_host.setdefault(
                address, asyncio.Semaphore(self.conf.max_connections_per_host))
            await semaphore.acquire()
            try:
                tls = dataclasses.replace(destination.tls, server_name=host) \
                    if destination.kind == "mx" else destination.tls
                session = await RemoteSession.connect(
                    host, address, destination.port, helo=self.helo, tls=tls,
                    auth=destination.auth,
                    connect_timeout=float(self.conf.connect_timeout_seconds),
                    command_timeout=float(self.conf.command_timeout_seconds),
                    data_timeout=float(self.conf.data_timeout_seconds),
                )
            except RemoteError as exc:
                semaphore.release()
                log.info("outbound: %s", exc.reason)
                last = exc
                if not exc.next_host:
                    raise
                continue
            except BaseException:
                semaphore.release()
                raise
            session._mailstead_semaphore = semaphore  # type: ignore[attr-defined]
            self.connections += 1
            return session
        assert last is not None
        raise last

    async def _one_connection(self, queue: _DestinationQueue) -> None:
        destination = queue.destination
        try:
            session = await self._connect(destination)
        except (RemoteError, DNSFailure) as exc:
            # The destination is unreachable: everything waiting for it shares the fate.
            outcome = _Outcome(
                "deferred" if exc.temporary else "failed", exc.status,
                str(exc.reply) if isinstance(exc, RemoteError) and exc.reply else exc.reason,
                remote=None)
            items = list(queue.items)
            queue.items.clear()
            await self._record_many([(item, {r.address: outcome for r in item.recipients})
                                     for item in items])
            return
        try:
            while queue.items and session.usable and not self._stopping and (
                    session.messages_sent < self.conf.max_messages_per_connection):
                item = queue.items.popleft()
                outcomes = await self._send(session, item)
                await self._record_many([(item, outcomes)])
        finally:
            await session.close()
            session._mailstead_semaphore.release()  # type: ignore[attr-defined]

    async def _send(self, session: RemoteSession, item: _Item) -> dict[str, _Outcome]:
        message = item.message
        env = message.envelope
        try:
            data = await self.store.read_blob(message.blob_id)
        except MailsteadError as exc:
            log.error("queued message #%d: body unreadable: %s", message.id, exc)
            outcome = _Outcome("deferred", "4.3.0", f"body unreadable: {exc}")
            return {r.address: outcome for r in item.recipients}
        out = OutMessage(
            mail_from=env.mail_from,
            recipients=[OutRecipient(r.address, r.notify, r.orcpt) for r in item.recipients],
            data=data, envid=env.envid, ret=env.ret, body=env.body, smtputf8=env.smtputf8,
        )
        remote = session.description
        try:
            result = await session.send(out)
        except RemoteError as exc:
            kind = "deferred" if exc.temporary else "failed"
            text = str(exc.reply) if exc.reply is not None else exc.reason
            outcome = _Outcome(kind, exc.status, text, remote=remote, tls=session.tls_version)
            log.info("queued #%d via %s: %s", message.id, remote, exc.reason)
            return {r.address: outcome for r in item.recipients}
        outcomes = {}
        for recipient in item.recipients:
            reply = result.replies.get(recipient.address) or Reply(451, "4.3.0", "no reply")
            kind = "delivered" if reply.is_positive else (
                "deferred" if reply.is_temporary else "failed")
            outcomes[recipient.address] = _Outcome(
                kind, reply.status, str(reply), remote=remote, tls=session.tls_version,
                dsn_passed_on=result.dsn_passed_on)
            log.info("queued #%d to <%s> via %s: %s", message.id, recipient.address, remote,
                     reply)
        return outcomes

    async def _deliver_locally(self, message: QueuedMessage,
                               recipients: list[QueuedRecipient]) -> None:
        """A recipient in a domain we host (added after queueing, or a group member that
        came back to us): into the store, never over the network."""
        outcomes: dict[str, _Outcome] = {}
        try:
            data = await self.store.read_blob(message.blob_id)
        except MailsteadError as exc:
            outcome = _Outcome("deferred", "4.3.0", f"body unreadable: {exc}")
            await self._record_many([(_Item(message, recipients),
                                      {r.address: outcome for r in recipients})])
            return
        for recipient in recipients:
            try:
                route = await self.router.resolve(Address.parse(recipient.address))
                targets = [Recipient(t.user_id, t.mailbox) for t in route.local]
                if targets:
                    sender = message.envelope.mail_from
                    copy = f"Return-Path: <{sender}>\r\n".encode() + data
                    await self.store.deliver(copy, targets)
                if route.remote:
                    await self.store.enqueue(data, dataclasses.replace(
                        message.envelope,
                        recipients=tuple(QueuedRecipient(a, recipient.notify, recipient.orcpt)
                                         for a in route.remote)))
                outcomes[recipient.address] = _Outcome("delivered", "2.0.0",
                                                       "250 2.0.0 delivered locally")
            except DeliveryError as exc:
                kind = "deferred" if exc.temporary else "failed"
                outcomes[recipient.address] = _Outcome(
                    kind, exc.enhanced, f"{exc.code} {exc.enhanced} {exc.text}")
            except (InvalidName, StoreError) as exc:
                outcomes[recipient.address] = _Outcome("deferred", "4.3.0", str(exc))
        await self._record_many([(_Item(message, recipients), outcomes)])

    # -- recording -----------------------------------------------------------------------
    async def _record_many(self, batch: Sequence[tuple[_Item, dict[str, _Outcome]]]) -> None:
        """Turn outcomes into recipient state, send delay notices, queue settling."""
        now = self.clock.now()
        updates: list[QueuedRecipient] = []
        delays: list[tuple[QueuedMessage, list[QueuedRecipient]]] = []
        for item, outcomes in batch:
            message = item.message
            age = (now - message.created).total_seconds()
            delayed: list[QueuedRecipient] = []
            for recipient in item.recipients:
                outcome = outcomes[recipient.address]
                updated = self._apply(recipient, outcome, now, age)
                if (updated.status is QueueStatus.DEFERRED and not updated.delay_notified
                        and self.conf.delay_warning_seconds
                        and age >= self.conf.delay_warning_seconds):
                    updated = dataclasses.replace(updated, delay_notified=True)
                    if message.envelope.mail_from and _notify_allows(updated, "DELAY"):
                        delayed.append(updated)
                updates.append(updated)
                if updated.status.final:
                    self._to_settle.add(message.id)
            if delayed:
                delays.append((message, delayed))
        await self.store.update_queue_recipients(updates)
        self._claimed -= sum(len(item.recipients) for item, _ in batch)
        for message, recipients in delays:
            await self._notify(message, recipients, "delayed")
        if self._to_settle and self._task is not None:
            self._wake.set()

    def _apply(self, recipient: QueuedRecipient, outcome: _Outcome, now: datetime,
               age: float) -> QueuedRecipient:
        if outcome.kind == "deferred" and age >= self.conf.max_age_seconds:
            # RFC 5321 §4.5.4.1: give up after the configured time, with the last reason.
            outcome = _Outcome("failed", "4.4.7",
                               f"gave up after {age / 86400:.1f} days in the queue; last "
                               f"error: {outcome.text}", outcome.remote, outcome.tls)
        attempted = dataclasses.replace(
            recipient, attempts=recipient.attempts + 1, last_attempt=now,
            last_error=outcome.text, remote=outcome.remote, tls=outcome.tls,
            status_code=outcome.status)
        if outcome.kind == "delivered":
            self.delivered += 1
            # Nothing owed unless SUCCESS was asked and the remote did not take it over.
            owed = "SUCCESS" in {n.upper() for n in recipient.notify} and not (
                outcome.dsn_passed_on)
            return dataclasses.replace(attempted, status=QueueStatus.DELIVERED, next_attempt=now,
                                       settled=not owed)
        if outcome.kind == "failed":
            self.failed += 1
            return dataclasses.replace(attempted, status=QueueStatus.FAILED, next_attempt=now,
                                       settled=False)
        self.deferred += 1
        intervals = self.conf.retry_intervals_seconds or [3600]
        wait = intervals[min(attempted.attempts - 1, len(intervals) - 1)]
        wait = max(1, wait)  # a zero interval must never become a busy loop
        return dataclasses.replace(attempted, status=QueueStatus.DEFERRED,
                                   next_attempt=now + timedelta(seconds=wait))

    # -- notifications and retirement ----------------------------------------------------
    async def _settle_pending(self) -> None:
        async with self._settle_lock:
            ids, self._to_settle = sorted(self._to_settle), set()
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
        unsettled = [r for r in recipients
                     if r.status.final and not r.settled]
        if unsettled:
            owed_fail = [r for r in unsettled
                         if r.status is QueueStatus.FAILED and _notify_allows(r, "FAILURE")]
            owed_ok = [r for r in unsettled if r.status is QueueStatus.DELIVERED
                       and "SUCCESS" in {n.upper() for n in r.notify}]
            if message.envelope.mail_from and (owed_fail or owed_ok):
                await self._notify(message, owed_fail + owed_ok, None)
            await self.store.update_queue_recipients(
                [dataclasses.replace(r, settled=True) for r in unsettled])
        done = all(r.status.final for r in recipients)
        if done:
            await self.store.remove_queued(queue_id)

    def _dsn_entry(self, message: QueuedMessage, r: QueuedRecipient,
                   action: str | None) -> DSNRecipient:
        text = r.last_error or ""
        is_reply = len(text) > 3 and text[:3].isdigit() and text[3:4] == " "
        # r.remote is "name[address]:port TLSv1.3"; people want "name[address]".
        where, _, tls = (r.remote or "").partition(" ")
        host_text = where.rsplit(":", 1)[0] if where.endswith(tuple("0123456789")) else where
        host = host_text or None
        if action is None:
            action = "failed" if r.status is QueueStatus.FAILED else (
                "relayed" if r.remote else "delivered")
        if action == "delivered" and not r.remote:
            reason = "delivered to the mailbox"
        elif is_reply and host:
            reason = f"host {host} said: {text}" + (f" (over {tls})" if tls else "")
        else:
            reason = text or "no further detail"
        until = None
        if action == "delayed":
            until = message.created + timedelta(seconds=self.conf.max_age_seconds)
        status = r.status_code or ("2.0.0" if action in ("delivered", "relayed") else "4.0.0")
        return DSNRecipient(
            recipient=r.address, action=action, status=status, reason=reason,
            reply=text if is_reply and r.remote else None,
            remote_mta=host.split("[")[0] if host else None,
            original_recipient=r.orcpt, last_attempt=r.last_attempt,
            will_retry_until=until,
        )

    async def _notify(self, message: QueuedMessage, recipients: Iterable[QueuedRecipient],
                      action: str | None) -> None:
        """One DSN to the envelope sender about ``recipients`` (never to the null sender)."""
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
        await self.send_notification(sender, dsn)
        self.dsns_sent += 1

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
                mail_from="", recipients=tuple(QueuedRecipient(a, ("NEVER",))
                                               for a in remote),
                smtputf8=not dsn.isascii())
            await self.store.enqueue(dsn, envelope)
            self.wake()
