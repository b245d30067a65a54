"""Delivery attempts for one destination: which hosts to try, a connection, the transactions.

A *destination* (:mod:`.routes`) is where a group of recipients goes: the MX hosts of a
domain, a static route, an address literal or the smarthost. For it:

- :meth:`Connector.candidates` lists the (host, address) pairs to try, in RFC 5321 §5.1
  order: MX preference, then each host's addresses; an implicit MX when there is none;
- :meth:`Connector.session` connects to the first that answers, holding a slot of the
  per-address connection limit for as long as the session lives, and closes it after;
- :func:`send_batch` runs one transaction over an open session and turns the replies
  into one :class:`~.outcome.Outcome` per recipient;
- :func:`deliver_locally` is the attempt for a recipient whose domain we host: into the
  store, never over the network.

Which batches go over which connection, and what the outcomes do to the queue, is the
scheduler's business (:mod:`.scheduler`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mailstead.config.schema import DeliverySettings
from mailstead.core.errors import InvalidName, MailsteadError, StoreError
from mailstead.core.types import Address
from mailstead.delivery.deliver import DeliveryStore
from mailstead.delivery.dns import DNSFailure, Resolver
from mailstead.delivery.outcome import Outcome, OutcomeKind
from mailstead.delivery.remote import OutMessage, OutRecipient, RemoteError, RemoteSession
from mailstead.delivery.router import DeliveryError, Router
from mailstead.delivery.routes import Destination, RouteKind, is_ip
from mailstead.store.interfaces import Messages
from mailstead.store.models import QueuedMessage, QueuedRecipient, Recipient
from mailstead.wire.smtp import Reply

log = logging.getLogger("mailstead.delivery")

#: The reply we record for a recipient the remote never answered for (it cannot happen
#: with a well-behaved server: every recipient gets a RCPT reply or the final reply).
_NO_REPLY = Reply(451, "4.3.0", "no reply for this recipient")


@dataclass(slots=True)
class Batch:
    """The recipients of one message that go to one destination in one transaction."""

    message: QueuedMessage
    recipients: list[QueuedRecipient]


@dataclass(slots=True)
class DestinationQueue:
    """Batches waiting for a destination, and how many workers (connections) serve it."""

    destination: Destination
    batches: collections.deque[Batch] = field(default_factory=collections.deque)
    workers: int = 0
    #: Set when a batch is added, or when the scheduler stops: wakes idle connections.
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, batch: Batch) -> None:
        self.batches.append(batch)
        self.arrived.set()

    async def wait_for_work(self, seconds: float) -> bool:
        """Whether a batch is waiting, now or within ``seconds``: an open connection waits
        that long for more mail to its destination before it says QUIT, so mail that
        trickles in does not pay a DNS lookup, a TCP and TLS handshake and EHLO each (as
        Postfix caches connections, ``smtp_connection_cache_time_limit``). Woken early,
        with nothing to send, it gives up: the scheduler is stopping, or another
        connection took the batch."""
        if self.batches:
            return True
        if seconds <= 0:
            return False
        self.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), seconds)
        return bool(self.batches)


class Connector:
    """Opens sessions to destinations within the per-address connection limit."""

    def __init__(self, conf: DeliverySettings, helo: str, resolver: Resolver) -> None:
        self.conf = conf
        self.helo = helo
        self.resolver = resolver
        self._per_host: dict[str, asyncio.Semaphore] = {}

    async def candidates(self, destination: Destination) -> list[tuple[str, str]]:
        """(host name, address) pairs to try, in order. Raises DNSFailure."""
        if destination.kind is not RouteKind.MX:
            host = destination.host
            if is_ip(host):
                return [(host, host)]
            addresses = await self.resolver.addresses(host)
            if not addresses:
                raise DNSFailure(f"host {host} has no address", temporary=True,
                                 status="4.4.4")
            return [(host, a) for a in addresses]
        pairs: list[tuple[str, str]] = []
        last_failure: DNSFailure | None = None
        for mx in await self.resolver.mx(destination.domain):
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

    @contextlib.asynccontextmanager
    async def session(self, destination: Destination) -> AsyncIterator[RemoteSession]:
        """The first host that answers, in order; closed (QUIT) when the block ends.

        Raises RemoteError (the last host's, or one that says no other host will do
        better) or DNSFailure before the block runs.
        """
        last: RemoteError | None = None
        for host, address in await self.candidates(destination):
            semaphore = self._per_host.setdefault(
                address, asyncio.Semaphore(self.conf.max_connections_per_host))
            async with semaphore:
                # An MX host's certificate is checked against the host's own name.
                tls = (dataclasses.replace(destination.tls, server_name=host)
                       if destination.kind is RouteKind.MX else destination.tls)
                try:
                    session = await RemoteSession.connect(
                        host, address, destination.port, helo=self.helo, tls=tls,
                        auth=destination.auth,
                        connect_timeout=float(self.conf.connect_timeout_seconds),
                        command_timeout=float(self.conf.command_timeout_seconds),
                        data_timeout=float(self.conf.data_timeout_seconds),
                    )
                except RemoteError as exc:
                    log.info("outbound: %s", exc.reason)
                    last = exc
                    if not exc.next_host:
                        raise
                    continue
                try:
                    yield session
                finally:
                    await session.close()
                return
        if last is None:  # candidates() returns at least one pair or raises
            raise DNSFailure(f"no host to try for {destination.domain}", temporary=True,
                             status="4.4.4")
        raise last


async def send_batch(session: RemoteSession, batch: Batch, store: Messages
                     ) -> dict[str, Outcome]:
    """One transaction over ``session``; an outcome for every recipient of the batch."""
    message = batch.message
    env = message.envelope
    try:
        data = await store.read_blob(message.blob_id)
    except MailsteadError as exc:
        log.error("queued message #%d: body unreadable: %s", message.id, exc)
        outcome = Outcome.failure(temporary=True, status="4.3.0",
                                  text=f"body unreadable: {exc}")
        return {r.address: outcome for r in batch.recipients}
    out = OutMessage(
        mail_from=env.mail_from,
        recipients=[OutRecipient(r.address, r.notify, r.orcpt) for r in batch.recipients],
        data=data, envid=env.envid, ret=env.ret, body=env.body, smtputf8=env.smtputf8,
    )
    remote = session.description
    try:
        result = await session.send(out)
    except RemoteError as exc:
        text = str(exc.reply) if exc.reply is not None else exc.reason
        outcome = Outcome.failure(temporary=exc.temporary, status=exc.status, text=text,
                                  remote=remote, tls=session.tls_version)
        log.info("queued #%d via %s: %s", message.id, remote, exc.reason)
        return {r.address: outcome for r in batch.recipients}
    outcomes = {}
    for recipient in batch.recipients:
        reply = result.replies.get(recipient.address, _NO_REPLY)
        outcomes[recipient.address] = Outcome.of_reply(
            reply, remote=remote, tls=session.tls_version,
            dsn_passed_on=result.dsn_passed_on)
        log.info("queued #%d to <%s> via %s: %s", message.id, recipient.address, remote,
                 reply)
    return outcomes


async def deliver_locally(store: DeliveryStore, router: Router, batch: Batch
                          ) -> dict[str, Outcome]:
    """Recipients in a domain we host (added after queueing, or a group member that came
    back to us): into the store, never over the network."""
    message = batch.message
    try:
        data = await store.read_blob(message.blob_id)
    except MailsteadError as exc:
        outcome = Outcome.failure(temporary=True, status="4.3.0",
                                  text=f"body unreadable: {exc}")
        return {r.address: outcome for r in batch.recipients}
    outcomes: dict[str, Outcome] = {}
    for recipient in batch.recipients:
        try:
            route = await router.resolve(Address.parse(recipient.address))
            targets = [Recipient(t.user_id, t.mailbox) for t in route.local]
            if targets:
                sender = message.envelope.mail_from
                copy = f"Return-Path: <{sender}>\r\n".encode() + data
                await store.deliver(copy, targets)
            if route.remote:
                await store.enqueue(data, dataclasses.replace(
                    message.envelope,
                    recipients=tuple(QueuedRecipient(a, recipient.notify, recipient.orcpt)
                                     for a in route.remote)))
            outcomes[recipient.address] = Outcome(OutcomeKind.DELIVERED, "2.0.0",
                                                  "250 2.0.0 delivered locally")
        except DeliveryError as exc:
            outcomes[recipient.address] = Outcome.failure(
                temporary=exc.temporary, status=exc.enhanced,
                text=f"{exc.code} {exc.enhanced} {exc.text}")
        except (InvalidName, StoreError) as exc:
            outcomes[recipient.address] = Outcome.failure(temporary=True, status="4.3.0",
                                                          text=str(exc))
    return outcomes
