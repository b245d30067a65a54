"""The push sender of JMAP PushSubscriptions (RFC 8620 §7.2): POSTs the PushVerification
to a new subscription's URL and, once the client echoed its code, a StateChange on every
change of the account, encrypted for the device when it gave keys (RFC 8291, the
``aes128gcm`` content coding of RFC 8188).

Invariants:

- an account is watched (one subscription to the store's change bus, one task) only while
  it has a verified subscription that has not expired; the methods tell the sender when
  that may have changed (:meth:`WebPushSender.subscriptions_changed`), and the watcher
  re-reads the subscriptions at each change, so one destroyed or expired is never pushed to;
- a burst of changes is one StateChange, as on the event source (push.py): the first
  change of a quiet period at once, later ones at most every ``coalesce`` seconds, with
  the account's state read after the burst; a type goes to a subscription only if it asked
  for it (``types``) and its state differs from the last one sent there;
- one POST at a time per subscription: changes that come while one is on its way are
  merged into the next;
- a 5xx, a 429 or a network failure is tried again after growing delays (a 429's or 503's
  ``Retry-After`` is honoured up to the longest delay), then the StateChange is dropped
  (the client learns the state at its next /changes); a 404 or 410 means the push
  service forgot the subscription (RFC 8030 §7.3), so it is destroyed; any other answer,
  or a URL the SSRF guard refuses, drops the message;
- nothing goes to a subscription after its ``expires``; expired ones are destroyed when
  seen and at start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from mailstead.config.schema import JMAPSettings
from mailstead.core.errors import NotFound
from mailstead.http.jmap.mail.ids import state_text
from mailstead.http.jmap.mail.services import MailStore
from mailstead.http.jmap.push import COALESCE_SECONDS, DATA_TYPES, changed_types, state_change
from mailstead.http.jmap.push_subscriptions import subscription_id
from mailstead.http.jmap.vapid import VapidKey
from mailstead.net.client import client_context
from mailstead.net.outbound_http import (
    Answer,
    DestinationRefused,
    OutboundPolicy,
    PostFailed,
    post,
)
from mailstead.store.models import PushKeys, PushSubscription

log = logging.getLogger("mailstead.http.jmap.webpush")

#: RFC 8030 §5.2: how long a push service keeps a message for a device that is away. A
#: state change older than a day is better learnt from /changes when the device is back.
TTL_SECONDS = 24 * 3600
#: Waits before the second, third, ... attempt of one POST.
RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
#: Seconds a POST may take, connection and answer included.
POST_TIMEOUT = 30.0
#: How often subscriptions past their ``expires`` are destroyed (those of accounts that
#: are not watched, unverified ones among them, are otherwise never looked at).
EXPIRE_EVERY = 3600.0

#: url, body, headers -> the push service's answer (net/outbound_http.post with a policy).
Poster = Callable[[str, bytes, Sequence[tuple[str, str]]], Awaitable[Answer]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def outbound_policy(jmap: JMAPSettings) -> OutboundPolicy:
    return OutboundPolicy(
        allow_http=jmap.push_allow_http,
        allow_private=jmap.push_allow_private_destinations,
        timeout=POST_TIMEOUT,
        tls=client_context(verify=True),  # loaded once: the system's CAs, names checked
    )


def poster(policy: OutboundPolicy) -> Poster:
    async def send(url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> Answer:
        return await post(url, body, headers, policy)

    return send


def _unbase64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def encrypt(plaintext: bytes, keys: PushKeys) -> bytes:
    """RFC 8291 §3.4: the body of one push message for the device holding ``keys``, in
    the ``aes128gcm`` content coding (RFC 8188 §2): a new ECDH key pair and a new salt for
    every message (§3.1), the sender's public key as the key id (§4), one record."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    return bytes(
        http_ece.encrypt(
            plaintext,
            salt=os.urandom(16),
            private_key=ephemeral,
            dh=_unbase64url(keys.p256dh),
            auth_secret=_unbase64url(keys.auth),
            version="aes128gcm",
        )
    )


def message(body: dict[str, Any], keys: PushKeys | None) -> tuple[bytes, list[tuple[str, str]]]:
    """The octets and headers of one push: RFC 8620 §7.2 "the server MUST encrypt all data
    sent to the push URL" when the client gave keys; plain JSON otherwise."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [("TTL", str(TTL_SECONDS))]
    if keys is None:
        return payload, [("Content-Type", "application/json; charset=utf-8"), *headers]
    return encrypt(payload, keys), [
        ("Content-Type", "application/octet-stream"),
        ("Content-Encoding", "aes128gcm"),
        *headers,
    ]


def _retry_after(answer: Answer, ceiling: float) -> float:
    value = answer.header("retry-after")
    if value is None or not value.strip().isdigit():
        return 0.0
    return min(float(int(value.strip()[:9])), ceiling)


class WebPushSender:
    """Started with the server and stopped with it (cli/serve.py)."""

    def __init__(
        self,
        store: MailStore,
        *,
        account_id: Callable[[int], str],
        post: Poster,
        now: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        coalesce: float = COALESCE_SECONDS,
        expire_every: float | None = EXPIRE_EVERY,
        vapid: VapidKey | None = None,
    ) -> None:
        self.store = store
        self.vapid = vapid  # signs every push (RFC 8292); None: pushes go unsigned
        self.account_id = account_id
        self.post = post
        self.now = now
        self.sleep = sleep
        self.retry_delays = retry_delays
        self.coalesce = coalesce
        self.expire_every = expire_every
        self._expiry: asyncio.Task[None] | None = None
        self._running = False
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._recheck: set[int] = set()  # accounts whose watcher must read again
        self._tasks: set[asyncio.Task[None]] = set()
        #: subscription id -> the types and states still to send (present while a POST
        #: to it is on its way or waiting).
        self._pending: dict[int, dict[str, str]] = {}

    async def start(self) -> None:
        self._running = True
        await self._expire()
        for user_id in {s.user_id for s in await self.store.active_push_subscriptions(self.now())}:
            self._watch(user_id)
        if self.expire_every is not None:
            self._expiry = asyncio.ensure_future(self._expire_forever(self.expire_every))
            self._expiry.add_done_callback(self._done)

    async def _expire(self) -> None:
        gone = await self.store.expire_push_subscriptions(self.now())
        if gone:
            log.info("destroyed %d expired push subscriptions", gone)

    async def _expire_forever(self, interval: float) -> None:
        while True:
            await self.sleep(interval)
            try:
                await self._expire()
            except Exception:  # an outage of the store: try again at the next round
                log.exception("expiring push subscriptions failed")

    async def stop(self) -> None:
        self._running = False
        tasks = [*self._watchers.values(), *self._tasks]
        if self._expiry is not None:
            tasks.append(self._expiry)
            self._expiry = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watchers.clear()
        self._tasks.clear()
        self._pending.clear()

    # -- what the methods call (push_subscriptions.PushNotifier) ---------------------------
    def verification_needed(self, subscription: PushSubscription) -> None:
        """RFC 8620 §7.2.2: "the server MUST immediately push a PushVerification object"."""
        body = {
            "@type": "PushVerification",
            "pushSubscriptionId": subscription_id(subscription.id),
            "verificationCode": subscription.verification_code,
        }
        self._spawn(self._send(subscription, body))

    def subscriptions_changed(self, user_id: int) -> None:
        if user_id in self._watchers:
            self._recheck.add(user_id)
        else:
            self._watch(user_id)

    # -- watching an account -------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        if not self._running:
            work.close()
            return
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("web push task failed", exc_info=task.exception())

    def _watch(self, user_id: int) -> None:
        if not self._running:
            return
        task = asyncio.ensure_future(self._watch_account(user_id))
        self._watchers[user_id] = task
        task.add_done_callback(self._done)

    async def _active(self, user_id: int) -> list[PushSubscription]:
        """The account's verified subscriptions still in time; expired ones destroyed
        (RFC 8620 §7.2: the server MAY destroy them at or after ``expires``)."""
        now = self.now()
        found = []
        for subscription in await self.store.push_subscriptions(user_id):
            if subscription.expires <= now:
                await self._forget(subscription, "expired")
            elif subscription.verified:
                found.append(subscription)
        return found

    async def _watch_account(self, user_id: int) -> None:
        loop = asyncio.get_running_loop()
        sent: dict[int, dict[str, str]] = {}
        last = float("-inf")
        try:
            with self.store.changes.subscribe(user_id) as feed:
                while True:
                    self._recheck.discard(user_id)
                    if not await self._active(user_id):
                        if user_id in self._recheck:
                            continue  # a subscription changed while it was read
                        return
                    first = await feed.get()
                    wait = last + self.coalesce - loop.time()
                    if wait > 0:
                        await self.sleep(wait)
                    types = set(changed_types(first))
                    for event in feed.drain():
                        types |= changed_types(event)
                    subscriptions = await self._active(user_id)
                    if not types or not subscriptions:
                        continue
                    state = state_text(await self.store.account_state(user_id))
                    last = loop.time()
                    for subscription in subscriptions:
                        wanted = frozenset(subscription.types or DATA_TYPES) & types
                        before = sent.setdefault(subscription.id, {})
                        changed = {t: state for t in sorted(wanted) if before.get(t) != state}
                        if changed:
                            before.update(changed)
                            self._queue(subscription, changed)
        finally:
            if self._watchers.get(user_id) is asyncio.current_task():
                del self._watchers[user_id]

    def _queue(self, subscription: PushSubscription, changed: dict[str, str]) -> None:
        pending = self._pending.get(subscription.id)
        if pending is not None:  # a POST is on its way: the next one carries these too
            pending.update(changed)
            return
        self._pending[subscription.id] = dict(changed)
        self._spawn(self._deliver_states(subscription))

    async def _deliver_states(self, subscription: PushSubscription) -> None:
        try:
            while changed := self._pending.get(subscription.id):
                self._pending[subscription.id] = {}
                body = state_change(self.account_id(subscription.user_id), changed)
                if not await self._send(subscription, body):
                    return
        finally:
            self._pending.pop(subscription.id, None)

    # -- one message ---------------------------------------------------------------------
    async def _send(self, subscription: PushSubscription, body: dict[str, Any]) -> bool:
        """POST one message, with retries; whether it was accepted."""
        data, headers = message(body, subscription.keys)
        delays = iter(self.retry_delays)
        ceiling = max(self.retry_delays, default=0.0)
        name = subscription_id(subscription.id)
        while True:
            if subscription.expires <= self.now():
                return False
            wait: float | None
            try:
                signed = headers
                if self.vapid is not None:
                    signed = [*headers, ("Authorization",
                                         self.vapid.authorization(subscription.url, self.now()))]
                answer = await self.post(subscription.url, data, signed)
            except DestinationRefused as exc:
                log.warning("push subscription %s: destination refused: %s", name, exc)
                return False
            except PostFailed as exc:
                log.info("push subscription %s: %s", name, exc)
                wait = next(delays, None)
            else:
                if 200 <= answer.status < 300:
                    return True
                if answer.status in (404, 410):
                    # RFC 8030 §7.3: the push service no longer has this subscription.
                    await self._forget(subscription, f"the push service answered {answer.status}")
                    return False
                if answer.status != 429 and answer.status < 500:
                    log.warning("push subscription %s: answer %d", name, answer.status)
                    return False
                wait = next(delays, None)
                if wait is not None:
                    wait = max(wait, _retry_after(answer, ceiling))
            if wait is None:
                log.warning(
                    "push subscription %s: gave up after %d attempts",
                    name,
                    len(self.retry_delays) + 1,
                )
                return False
            await self.sleep(wait)

    async def _forget(self, subscription: PushSubscription, why: str) -> None:
        log.info("push subscription %s destroyed: %s", subscription_id(subscription.id), why)
        with contextlib.suppress(NotFound):  # the client destroyed it meanwhile
            await self.store.remove_push_subscription(subscription.user_id, subscription.id)
