"""Failed-login throttling per account and per client address, in memory.

Guessing passwords must get slow fast, for one account tried from many addresses and for one
address trying many accounts:

- once ``delay_after`` failures happened within ``window`` seconds, each further failure is answered
  only after a tarpit delay (:meth:`Throttle.delay_for`) doubling from ``base_delay`` up to
  ``max_delay``, and an attempt arriving before that delay has passed is refused
  (:meth:`Throttle.check` raises AuthThrottled) - this catches clients using parallel
  connections to dodge the tarpit;
- after ``lock_after`` failures the key is refused until the window that began with its first
  failure ends.

A success resets the account's counter but not the address's, so an attacker holding one
valid account cannot launder an address that is guessing others. IPv6 clients are counted
per /64, the unit one subscriber usually gets. Memory is bounded: expired entries are pruned
and the table is capped at ``max_entries`` (least recently failed dropped first).

An attacker can lock an account by failing on purpose from many addresses. So that this
does not lock out its owner, an address that has logged in to the account successfully
(within ``trusted_for``, 30 days) keeps being let through for that account: from there only
the address's own counter applies. The trust is in memory (a restart forgets it) and
bounded like the failures; an attacker would need the owner's address (the same /64 for
IPv6) to benefit, and even then the address counter tarpits and locks them.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mailstead.core import metrics
from mailstead.core.errors import AuthThrottled


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    delay_after: int = 5  # failures before the tarpit starts
    lock_after: int = 20  # failures before refusing outright
    window: float = 15 * 60.0  # seconds, counted from the first failure
    base_delay: float = 1.0  # first tarpit delay, doubled per further failure
    max_delay: float = 60.0
    max_entries: int = 100_000  # account + address entries kept in memory
    trusted_for: float = 30 * 24 * 3600.0  # a successful address stays trusted this long


@dataclass(slots=True)
class _Entry:
    first: float  # time of the first failure in this window
    last: float  # time of the latest failure
    count: int


def account_key(account: str) -> str:
    """Case-folded so that ``Bob@X`` and ``bob@x`` share one counter."""
    return "a:" + account.strip().casefold()


def address_key(ip: str) -> str:
    """IPv4 as is (mapped IPv6 folded to IPv4), IPv6 by its /64."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "i:" + ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"i:{addr.ipv4_mapped}"
        return f"i:{ipaddress.IPv6Network((addr, 64), strict=False)}"
    return f"i:{addr}"


class Throttle:
    """In-memory failure counters; one per process, shared by every protocol."""

    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        #: (account key, address key) -> until when that address is trusted for the account
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    @property
    def entry_count(self) -> int:
        """Entries held (not __len__: an empty Throttle must not be falsy)."""
        return len(self._entries)

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.first >= self.policy.window:
            del self._entries[key]
            return None
        return entry

    def _backoff(self, count: int) -> float:
        p = self.policy
        if count <= p.delay_after:
            return 0.0
        return float(min(p.base_delay * 2 ** min(count - p.delay_after - 1, 32), p.max_delay))

    def _keys(self, account: str, ip: str, now: float) -> tuple[str, ...]:
        """The counters that apply to an attempt: the address's, and the account's unless
        this address has logged in to it before (so a lock others caused spares its owner)."""
        address = address_key(ip)
        pair = (account_key(account), address)
        until = self._trusted.get(pair)
        if until is not None:
            if until > now:
                return (address,)
            del self._trusted[pair]
        return (pair[0], address)

    def check(self, account: str, ip: str) -> None:
        """Raise AuthThrottled(retry_after) if this attempt must be refused without checking."""
        now = self._clock()
        wait = 0.0
        for key in self._keys(account, ip, now):
            entry = self._live(key, now)
            if entry is None:
                continue
            if entry.count >= self.policy.lock_after:
                wait = max(wait, entry.first + self.policy.window - now)
            else:
                wait = max(wait, entry.last + self._backoff(entry.count) - now)
        if wait > 0:
            metrics.AUTH_THROTTLED.inc()
            raise AuthThrottled(wait)

    def record_failure(self, account: str, ip: str) -> None:
        metrics.AUTH_FAILURES.inc()
        now = self._clock()
        for key in (account_key(account), address_key(ip)):
            entry = self._live(key, now)
            if entry is None:
                self._entries[key] = _Entry(first=now, last=now, count=1)
            else:
                entry.count += 1
                entry.last = now
                self._entries.move_to_end(key)
        self._prune(now)

    def record_success(self, account: str, ip: str) -> None:
        """Forget the account's failures (the address's stay: see module docstring), and
        trust this address for this account from now on."""
        self._entries.pop(account_key(account), None)
        pair = (account_key(account), address_key(ip))
        self._trusted[pair] = self._clock() + self.policy.trusted_for
        self._trusted.move_to_end(pair)
        while len(self._trusted) > self.policy.max_entries:
            self._trusted.popitem(last=False)

    def delay_for(self, account: str, ip: str) -> float:
        """Seconds a protocol should wait before answering the failure just recorded."""
        now = self._clock()
        counts = [
            entry.count
            for key in self._keys(account, ip, now)
            if (entry := self._live(key, now)) is not None
        ]
        return self._backoff(max(counts, default=0))

    def _prune(self, now: float) -> None:
        """Drop expired entries from the old end, then the oldest ones beyond the cap."""
        window = self.policy.window
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.first < window and len(self._entries) <= self.policy.max_entries:
                break
            del self._entries[key]
