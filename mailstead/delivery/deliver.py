"""One message's delivery as a transaction: start, add recipients, body, commit or abort.

The contract (after maddy's ``delivery_target``):

- :meth:`Delivery.add_rcpt` resolves and checks one recipient now, so SMTP can answer RCPT
  with the exact outcome (unknown user, relay denied, over quota);
- :meth:`Delivery.commit` stores the message for every local target (one body, one
  transaction) and queues it for every remote recipient *in the same transaction*, and
  returns only when that is durable. On failure nothing is visible and the caller gets a
  :class:`DeliveryError` to answer with (``451 4.3.0``, ``452 4.2.2``);
- :meth:`Delivery.abort` forgets everything; nothing was written before commit.

Trace headers (RFC 5321 §4.4): every copy gets a ``Received:`` line; the copy stored in
local mailboxes also gets ``Return-Path:`` (final delivery) and, when the message has one
local envelope recipient, ``Delivered-To:``. All local recipients share one body, so with
several recipients ``Delivered-To:`` (and the Received ``for`` clause) is left out rather
than telling each Bcc recipient about the others.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from mailstead.core import sanity
from mailstead.core.errors import InvalidName, QuotaExceeded, StorageFull, StoreError
from mailstead.core.message_data import MessageData
from mailstead.core.types import Address
from mailstead.delivery.authorship import read_authors, refused
from mailstead.delivery.dkim import Signer, header_from
from mailstead.delivery.router import DeliveryError, LocalTarget, Router
from mailstead.store.interfaces import Messages, OutboundQueue
from mailstead.store.models import (
    DeliveryResult,
    OutboundEnvelope,
    QueuedRecipient,
    QueueStatus,
    Recipient,
)

log = logging.getLogger("mailstead.delivery")

MAX_HOPS = 100  # RFC 5321 §6.3: a Received count this high is a loop
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):", re.MULTILINE)
# A HELO argument fit to stand as From-domain: a dotted name (UTF-8 labels allowed, RFC
# 6531) or an address literal; anything else is put in a comment.
_HELO_NAME = re.compile(
    r"^(?:\[(?:IPv6:)?[0-9A-Fa-f:.]+\]|(?:[\w](?:[\w-]{0,62}[\w])?)(?:\.[\w](?:[\w-]{0,62}[\w])?)*)$"
)
_SAFE_COMMENT = re.compile(r"[^ !-'*-\[\]-~]")  # printable ASCII minus ( ) \ for comments

RELAY_DENIED = DeliveryError(554, "5.7.1", "Relay access denied")
STORAGE_FAILED = DeliveryError(451, "4.3.0", "Temporary failure, please try again later")
STORAGE_FULL = DeliveryError(452, "4.3.1", "Insufficient system storage, try again later")
OVER_QUOTA = DeliveryError(452, "4.2.2", "Mailbox full")


class DeliveryStore(Messages, OutboundQueue, Protocol):
    """What a commit writes: local copies (:meth:`Messages.deliver`) and, in the same
    transaction, the queue entry for remote recipients (:meth:`OutboundQueue.enqueue`)."""


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What the Received: header says about the session (RFC 5321 §4.4, RFC 3848)."""

    hostname: str
    helo: str
    client_ip: str
    esmtp: bool = True
    tls: str = ""  # describe_tls() text, "" without TLS
    auth_user: str | None = None
    session_id: str = ""
    # Submitted on this machine by ``mailstead sendmail``, not over a connection: the
    # Received line names the Unix user id instead of a HELO name and an address.
    local_uid: int | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """MAIL FROM and its parameters (RFC 5321 §4.1.1.2, RFC 1870, RFC 6152, RFC 3461, 6531)."""

    mail_from: Address | None
    body: str | None = None
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class LocalArrival:
    """A message now durably in one local account, as what follows delivery (the vacation
    responder, :mod:`mailstead.delivery.vacation`) sees it: the envelope sender ("" for
    the null reverse-path), the envelope recipients that led to this account, and the
    message's first octets (its header section)."""

    user_id: int
    address: str  # the account's own address
    mail_from: str
    rcpt_to: tuple[str, ...]
    head: bytes
    spam: bool = False  # a spam filter's verdict, once there is one


class AutoResponder(Protocol):
    """Called once per local account after a commit; never raises (a failed auto-reply
    must not fail or repeat the delivery)."""

    async def after_delivery(self, arrival: LocalArrival) -> None: ...


@dataclass(slots=True)
class _RemoteRcpt:
    address: str
    notify: tuple[str, ...]
    orcpt: str | None


@dataclass(slots=True)
class Delivery:
    """One mail transaction. Build with :meth:`Deliverer.start`."""

    store: DeliveryStore
    router: Router
    envelope: Envelope
    trace: TraceInfo
    relay_allowed: bool
    sender_id: int | None = None  # the authenticated account, if any
    rcpt_addresses: list[str] = field(default_factory=list)
    local: dict[int, LocalTarget] = field(default_factory=dict)  # user id -> target
    # Accounts named directly (a route to them alone): their copy is not optional, unlike
    # a group member's, which is skipped when full (one full mailbox never blocks a group).
    direct: set[int] = field(default_factory=set)
    remote: dict[str, _RemoteRcpt] = field(default_factory=dict)  # casefolded address ->
    success_dsn: list[QueuedRecipient] = field(default_factory=list)
    local_rcpts: list[str] = field(default_factory=list)
    # user id -> the RCPT addresses that reached it (for the responder's address rule)
    rcpts_of: dict[int, list[str]] = field(default_factory=dict)
    # Outbound: DKIM-sign what authenticated users send out, wake the scheduler.
    signer: Signer | None = None
    on_queued: Callable[[], None] | None = None
    # The submitter could read the DKIM keys itself (``mailstead sendmail``, run by the
    # data directory's owner): every hosted domain may be signed for it (decision 0014).
    trusted: bool = False
    responder: AutoResponder | None = None

    @property
    def recipient_count(self) -> int:
        return len(self.rcpt_addresses)

    async def add_rcpt(
        self, address: Address, notify: tuple[str, ...] = (), orcpt: str | None = None
    ) -> None:
        """Accept one recipient or raise DeliveryError saying why not."""
        route = await self.router.resolve(address)
        if not route.is_local_domain and not self.relay_allowed:
            # RFC 5321 §3.6.2, §7.1: never an open relay.
            raise RELAY_DENIED
        targets = list(route.local)
        if targets:
            fitting = [t for t in targets if not t.over_quota(self.envelope.size)]
            if not fitting and not route.remote:
                raise OVER_QUOTA  # RFC 3463 X.2.2, temporary: the user can make room
            for skipped in set(targets) - set(fitting):
                log.info("%s: %s is over quota, not delivering to it via %s",
                         self.trace.session_id, skipped.address, address)
            targets = fitting
        for target in targets:
            self.local.setdefault(target.user_id, target)
            self.rcpts_of.setdefault(target.user_id, []).append(str(address))
        if len(route.local) == 1 and not route.remote:
            self.direct.update(t.user_id for t in targets)
        for remote in route.remote:
            self.remote.setdefault(remote.casefold(), _RemoteRcpt(remote, notify, orcpt))
        if targets and "SUCCESS" in notify:
            # RFC 3461 §5.2.2: a "delivered" DSN is owed; the outbound side sends it.
            self.success_dsn.append(
                QueuedRecipient(str(address), notify, orcpt, status=QueueStatus.DELIVERED)
            )
        if targets:
            self.local_rcpts.append(str(address))
        self.rcpt_addresses.append(str(address))

    async def commit(self, data: bytes | MessageData) -> str:
        """Durably store and queue; DeliveryError (nothing visible) on failure. Returns the
        id the message was received with (its Received header's; the queue's log lines and
        the 250 reply give it).

        ``data`` may be spooled to a file (:mod:`mailstead.core.spool`): the trace headers
        are prepended without copying it, and the store streams it into its body file.
        """
        if not self.local and not self.remote:
            raise DeliveryError(554, "5.5.1", "No valid recipients")
        message = MessageData.of(data)
        check_loops(message.head, self.local_rcpts)
        if self.sender_id is not None:
            await self._check_authors(self.sender_id, message.head)
        trace_id = next_trace_id()
        received = received_header(self.trace, self.envelope,
                                   self.rcpt_addresses if len(self.rcpt_addresses) == 1 else [],
                                   trace_id)
        if self.signer is not None and self.remote and (
                self.sender_id is not None or self.trusted):
            # Signed before it is queued; the Received line above stays outside the
            # signature (it is not in the signed header list).
            domain = await self._signing_domain(self.sender_id, message.head)
            if domain is not None and self.signer.has_key(domain):
                # RSA signing takes milliseconds, and a spooled message must be read: off
                # the event loop (ARCHITECTURE.md).
                signer = self.signer
                signature = await asyncio.to_thread(
                    lambda: signer.sign(message.read(), domain))
                message = message.prefixed(signature)
        outbound = self._outbound_envelope(trace_id)
        # The copies share the received octets (a spool file, or one bytes object) and
        # differ only in the header lines in front.
        queued_copy = message.prefixed(received)
        local_copy: MessageData | None = None
        recipients: list[Recipient] = []
        if self.local:
            sender = "" if self.envelope.mail_from is None else str(self.envelope.mail_from)
            trace = [header_line("Return-Path", f"<{sender}>")]
            if len(self.local_rcpts) == 1:
                trace.append(header_line("Delivered-To", self.local_rcpts[0]))
            local_copy = message.prefixed(b"".join([*trace, received]))
            recipients = [Recipient(t.user_id, t.mailbox, optional=t.user_id not in self.direct)
                          for t in self.local.values()]
        try:
            if outbound is None:
                assert local_copy is not None  # no remote recipient: some local ones
                delivered: DeliveryResult | None = await self.store.deliver(local_copy,
                                                                           recipients)
            else:
                delivered, _ = await self.store.enqueue(
                    queued_copy, outbound, local_copy, recipients
                )
                if self.on_queued is not None:
                    self.on_queued()  # the outbound scheduler looks now, not at its next poll
        except QuotaExceeded:
            raise OVER_QUOTA from None
        except StorageFull:
            log.error("%s: storing the message failed: storage is full", self.trace.session_id)
            raise STORAGE_FULL from None
        except StoreError as exc:
            log.error("%s: storing the message failed: %s", self.trace.session_id, exc)
            raise STORAGE_FAILED from None
        except Exception as exc:  # a bug: 451 in production, a failing test under test
            sanity.degrade(log, exc, "bug (%s) storing a message of session %s",
                           self.trace.session_id, exc_info=True)
            raise STORAGE_FAILED from None
        if delivered is not None and delivered.skipped:
            full = [t.address for t in self.local.values() if t.user_id in delivered.skipped]
            log.warning("%s: not delivered to %s: mailbox full (group member)",
                        self.trace.session_id, ", ".join(full))
        if self.responder is not None and local_copy is not None:
            await self._respond(message.head, delivered)
        return trace_id

    async def _respond(self, head: bytes, delivered: DeliveryResult | None) -> None:
        """Hand each account that got its copy to the auto-responder: only now, after the
        commit, so a reply never goes out for mail that was not kept. A bug in it is
        logged (raised under test) and the delivery stands."""
        assert self.responder is not None
        skipped = set(delivered.skipped) if delivered is not None else set()
        mail_from = "" if self.envelope.mail_from is None else str(self.envelope.mail_from)
        for user_id, target in self.local.items():
            if user_id in skipped:
                continue
            arrival = LocalArrival(user_id, target.address, mail_from,
                                   tuple(self.rcpts_of.get(user_id, ())), head)
            try:
                await self.responder.after_delivery(arrival)
            except Exception as exc:
                sanity.degrade(log, exc, "bug (%s) in the auto-responder, session %s",
                               self.trace.session_id, exc_info=True)

    async def _check_authors(self, sender_id: int, head: bytes) -> None:
        """A logged-in user's message names as its From: and Sender: only addresses the
        account may send as (RFC 5322 §3.6.2; :mod:`mailstead.delivery.authorship`).
        Accounts allowed any sender skip the check, header syntax included."""
        if await self.router.may_send_as_anyone(sender_id):
            return
        authors = read_authors(head)
        for address in authors.addresses():
            if not await self.router.may_send_as(sender_id, address):
                log.info("%s: refused: account %s may not send as %s in the header",
                         self.trace.session_id, self.trace.auth_user, address)
                raise refused(f"Not authorized to send as <{_printable(str(address))}>")

    async def _signing_domain(self, sender_id: int | None, head: bytes) -> str | None:
        """The ``d=`` domain for a message the account ``sender_id`` submits.

        The header From's domain when the account may send as that address, so the
        signature aligns for DMARC (RFC 7489 §3.1.1). Otherwise the envelope sender's
        (checked as the account's own at MAIL FROM), unless the From is in that same
        domain: signing would then align a From the account does not own, so nothing is
        signed. A user of one hosted domain can never get another's signature on a forged
        From, nor a colleague's. A trusted submitter (no account) owns every address.
        """
        authors = header_from(head)
        if len(authors) == 1:
            local, domain = authors[0]
            try:
                author = Address.parse(f"{local}@{domain}")
            except InvalidName:
                author = None
            if author is not None and (
                    self.trusted if sender_id is None
                    else await self.router.owns(sender_id, author)):
                return author.domain
        mail_from = self.envelope.mail_from
        if mail_from is None or mail_from.domain in {d for _, d in authors}:
            return None
        return mail_from.domain

    def _outbound_envelope(self, trace_id: str) -> OutboundEnvelope | None:
        queued = [QueuedRecipient(r.address, r.notify, r.orcpt) for r in self.remote.values()]
        queued += self.success_dsn
        if not queued:
            return None
        env = self.envelope
        return OutboundEnvelope(
            mail_from="" if env.mail_from is None else str(env.mail_from),
            recipients=tuple(queued),
            envid=env.envid,
            ret=env.ret,
            body=env.body,
            smtputf8=env.smtputf8,
            auth_user=self.trace.auth_user,
            trace_id=trace_id,
        )


class Deliverer:
    """Starts delivery transactions; one per process, shared by every SMTP session."""

    def __init__(
        self,
        store: DeliveryStore,
        router: Router,
        *,
        signer: Signer | None = None,
        on_queued: Callable[[], None] | None = None,
        responder: AutoResponder | None = None,
    ) -> None:
        """``signer`` DKIM-signs what authenticated users send out (None: DKIM is off);
        ``on_queued`` is called after a commit that queued mail for remote recipients
        (the outbound scheduler's wake-up; None when outbound delivery is off);
        ``responder`` is told of every local delivery (the vacation auto-reply; None for
        the deliverer that sends the auto-replies themselves)."""
        self.store = store
        self.router = router
        self.signer = signer
        self.on_queued = on_queued
        self.responder = responder

    def start(
        self,
        envelope: Envelope,
        trace: TraceInfo,
        *,
        relay_allowed: bool,
        sender_id: int | None = None,
        trusted: bool = False,
    ) -> Delivery:
        """A transaction; ``sender_id`` is the authenticated account (DKIM signs only for
        the domains it may send as); ``trusted``, a local submitter that may send as any
        hosted domain (``mailstead sendmail``)."""
        return Delivery(self.store, self.router, envelope, trace, relay_allowed, sender_id,
                        signer=self.signer, on_queued=self.on_queued, trusted=trusted,
                        responder=self.responder)


# -- trace headers --------------------------------------------------------------------------


def header_line(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode()


def _with_protocol(trace: TraceInfo, envelope: Envelope) -> str:
    """RFC 3848 / RFC 6531 §3.7.3 protocol names: ESMTP[S][A], UTF8SMTP[S][A], SMTP."""
    if not trace.esmtp:
        return "SMTP"
    name = "UTF8SMTP" if envelope.smtputf8 else "ESMTP"
    if trace.tls:
        name += "S"
    if trace.auth_user:
        name += "A"
    return name


def _ip_literal(ip: str) -> str:
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def _printable(text: str) -> str:
    """An address as it can stand in a reply line: printable ASCII, at most 100 characters."""
    return re.sub(r"[^!-~]", "?", text)[:100]


def _comment(text: str) -> str:
    return _SAFE_COMMENT.sub("?", text)[:200]


def received_header(trace: TraceInfo, envelope: Envelope, recipients: list[str],
                    trace_id: str | None = None) -> bytes:
    """``Received: from helo ([ip]) by host (mailstead) with ESMTPS id X for <r>; date``.

    The ``for`` clause only with exactly one recipient (RFC 5321 §7.2: do not disclose Bcc).
    ``trace_id`` is the message's id (a new one when None). Mail submitted on this machine
    says ``by host (mailstead, from userid N)``, as Postfix and Sendmail write it.
    """
    if trace.local_uid is not None:
        return _local_received(trace, recipients, trace_id or next_trace_id())
    helo = trace.helo
    if _HELO_NAME.match(helo):
        from_part = f"from {helo} ({_ip_literal(trace.client_ip)})"
    else:
        from_part = f"from unknown ({_ip_literal(trace.client_ip)} helo={_comment(helo)})"
    by_part = f"by {trace.hostname} (mailstead) with {_with_protocol(trace, envelope)}"
    if trace.tls:
        by_part += f" ({_comment(trace.tls)})"
    lines = [from_part, by_part]
    if trace.auth_user:
        lines.append(f"(authenticated as {_comment(trace.auth_user)})")
    ident = f"id {trace_id or next_trace_id()}"
    if recipients:
        ident += f" for <{recipients[0]}>"
    lines.append(ident + ";")
    lines.append(email.utils.format_datetime(datetime.now().astimezone()))
    return ("Received: " + "\r\n\t".join(lines) + "\r\n").encode("utf-8")


def _local_received(trace: TraceInfo, recipients: list[str], trace_id: str) -> bytes:
    ident = f"id {trace_id}"
    if recipients:
        ident += f" for <{recipients[0]}>"
    lines = [f"by {trace.hostname} (mailstead, from userid {trace.local_uid})", ident + ";",
             email.utils.format_datetime(datetime.now().astimezone())]
    return ("Received: " + "\r\n\t".join(lines) + "\r\n").encode("utf-8")


# A random prefix per process and a counter: unique without a system call per message.
_TRACE_PREFIX = secrets.token_hex(4)
_trace_counter = itertools.count(1)


def next_trace_id() -> str:
    """The Received ``id`` (RFC 5321 §4.4): unique, so a log line finds its message."""
    return f"{_TRACE_PREFIX}{next(_trace_counter):08x}"


def header_block(data: bytes) -> bytes:
    """The header section (up to the first empty line), for cheap trace checks."""
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


def check_loops(data: bytes, local_rcpts: list[str]) -> None:
    """RFC 5321 §6.3 loop detection: too many Received hops, or our own Delivered-To."""
    headers = header_block(data)
    hops = 0
    delivered_to: set[str] = set()
    for match in _HEADER_NAME.finditer(headers):
        name = match.group(1).lower()
        if name == b"received":
            hops += 1
        elif name == b"delivered-to":
            end = headers.find(b"\n", match.end())
            value = headers[match.end() : end if end >= 0 else None].strip()
            delivered_to.add(value.decode("utf-8", "replace").casefold())
    if hops >= MAX_HOPS:
        raise DeliveryError(554, "5.4.6", "Too many hops, mail loop suspected")
    if any(r.casefold() in delivered_to for r in local_rcpts):
        raise DeliveryError(554, "5.4.6", "Mail loop detected")
