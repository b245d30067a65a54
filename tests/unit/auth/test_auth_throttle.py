"""Throttle with a fake clock."""

from __future__ import annotations

import pytest

from mailstead.auth.throttle import Throttle, ThrottlePolicy, address_key
from mailstead.core.errors import AuthThrottled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: Throttle, times: int, account: str = "bob@x.org", ip: str = "192.0.2.1") -> None:
    for _ in range(times):
        throttle.check(account, ip)
        throttle.record_failure(account, ip)
        clock = throttle._clock
        assert isinstance(clock, Clock)
        clock.now += throttle.delay_for(account, ip)  # a client that waits for the answer


def test_no_delay_before_threshold() -> None:
    throttle = Throttle(clock=Clock())
    fail(throttle, 5)
    assert throttle.delay_for("bob@x.org", "192.0.2.1") == 0.0


def test_exponential_backoff_capped() -> None:
    clock = Clock()
    throttle = Throttle(ThrottlePolicy(lock_after=100), clock=clock)
    delays = []
    for _ in range(14):
        throttle.record_failure("bob@x.org", "192.0.2.1")
        delays.append(throttle.delay_for("bob@x.org", "192.0.2.1"))
    assert delays[:5] == [0, 0, 0, 0, 0]
    assert delays[5:12] == [1, 2, 4, 8, 16, 32, 60]
    assert max(delays) == 60


def test_attempt_before_delay_passed_is_refused() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    fail(throttle, 6)  # sixth failure carries a 1 s delay, already waited by `fail`
    throttle.record_failure("bob@x.org", "192.0.2.1")  # 7th: 2 s
    with pytest.raises(AuthThrottled) as info:
        throttle.check("bob@x.org", "198.51.100.7")  # parallel attempt from elsewhere
    assert 0 < info.value.retry_after <= 2
    clock.now += 2
    throttle.check("bob@x.org", "198.51.100.7")


def test_lock_until_window_ends() -> None:
    clock = Clock()
    policy = ThrottlePolicy()
    throttle = Throttle(policy, clock=clock)
    start = clock.now
    fail(throttle, 20)
    with pytest.raises(AuthThrottled) as info:
        throttle.check("bob@x.org", "203.0.113.9")
    assert info.value.retry_after == pytest.approx(start + policy.window - clock.now)
    clock.now = start + policy.window
    throttle.check("bob@x.org", "203.0.113.9")


def test_per_ip_across_accounts() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    for i in range(20):
        throttle.record_failure(f"user{i}@x.org", "192.0.2.1")
    with pytest.raises(AuthThrottled):
        throttle.check("new@x.org", "192.0.2.1")
    throttle.check("new@x.org", "192.0.2.2")


def test_success_resets_account_not_address() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    fail(throttle, 7)
    throttle.record_success("bob@x.org", "192.0.2.1")
    assert throttle.delay_for("bob@x.org", "198.51.100.1") == 0.0
    assert throttle.delay_for("bob@x.org", "192.0.2.1") > 0  # the address keeps its count


def test_account_case_folded() -> None:
    throttle = Throttle(clock=Clock())
    for _ in range(20):
        throttle.record_failure("Bob@X.org", "192.0.2.1")
    with pytest.raises(AuthThrottled):
        throttle.check("bob@x.ORG", "198.51.100.1")


def test_ipv6_counted_per_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1")


def test_memory_bounded() -> None:
    clock = Clock()
    throttle = Throttle(ThrottlePolicy(max_entries=100), clock=clock)
    for i in range(1000):
        throttle.record_failure(f"u{i}@x.org", f"10.0.{i // 250}.{i % 250}")
    assert throttle.entry_count <= 100
    clock.now += 10_000  # everything expired
    throttle.record_failure("last@x.org", "10.9.9.9")
    assert throttle.entry_count == 2


def test_the_owner_is_not_locked_out_by_attackers_from_elsewhere() -> None:
    """With 40 attacking addresses the real user was locked out 12 of 12 times. An
    address that logged in to the account before keeps getting through for it."""
    clock = Clock()
    throttle = Throttle(clock=clock)
    throttle.check("bob@x.org", "198.51.100.7")
    throttle.record_success("bob@x.org", "198.51.100.7")  # bob, from home, last week
    clock.now += 7 * 24 * 3600
    for n in range(40):  # each attacker stays under its own address's limits
        throttle.record_failure("bob@x.org", f"203.0.113.{n}")
    with pytest.raises(AuthThrottled):
        throttle.check("bob@x.org", "192.0.2.99")  # a new address: locked as before
    throttle.check("bob@x.org", "198.51.100.7")  # bob at home: let through
    assert throttle.delay_for("bob@x.org", "198.51.100.7") == 0.0
    throttle.check("carol@x.org", "198.51.100.7")  # the trust is for bob's account only
    with pytest.raises(AuthThrottled):
        throttle.check("bob@x.org", "198.51.100.8")  # and for that address (or /64) only


def test_trust_expires_and_its_address_is_still_counted() -> None:
    clock = Clock()
    policy = ThrottlePolicy()
    throttle = Throttle(policy, clock=clock)
    throttle.record_success("bob@x.org", "198.51.100.7")
    fail(throttle, 20, ip="198.51.100.7")  # guessing from the trusted address itself
    with pytest.raises(AuthThrottled):
        throttle.check("bob@x.org", "198.51.100.7")  # its address counter locks it
    clock.now += policy.trusted_for + policy.window
    for n in range(20):
        throttle.record_failure("bob@x.org", f"203.0.113.{n}")
    with pytest.raises(AuthThrottled):
        throttle.check("bob@x.org", "198.51.100.7")  # trust over: locked like anyone
