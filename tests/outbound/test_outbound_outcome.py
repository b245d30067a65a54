"""What an outcome does to a recipient's queue record, on its own (no store, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

from mailstead.config.schema import DeliverySettings
from mailstead.delivery.outcome import (
    Notify,
    Outcome,
    OutcomeKind,
    next_state,
    notify_allows,
)
from mailstead.store.models import QueuedRecipient, QueueStatus
from mailstead.wire.smtp import Reply

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CONF = DeliverySettings(retry_intervals_seconds=[60, 300], max_age_seconds=86400)


def test_replies_become_outcomes_by_their_first_digit() -> None:
    """RFC 5321 §4.2.1: 2yz delivered, 4yz deferred, 5yz failed."""
    kinds = [Outcome.of_reply(Reply(code, "", "x"), remote="mx", tls=None,
                              dsn_passed_on=False).kind for code in (250, 451, 550)]
    assert kinds == [OutcomeKind.DELIVERED, OutcomeKind.DEFERRED, OutcomeKind.FAILED]


def test_deferrals_follow_the_intervals_and_the_last_one_repeats() -> None:
    outcome = Outcome.failure(temporary=True, status="4.4.1", text="connect failed")
    waits = []
    recipient = QueuedRecipient("bob@b.test")
    for _ in range(3):
        recipient = next_state(recipient, outcome, now=NOW, age=0, conf=CONF)
        assert recipient.status is QueueStatus.DEFERRED
        assert recipient.next_attempt is not None
        waits.append((recipient.next_attempt - NOW).total_seconds())
    assert waits == [60, 300, 300] and recipient.attempts == 3
    assert recipient.last_error == "connect failed" and recipient.status_code == "4.4.1"


def test_a_deferral_past_the_age_limit_fails_with_4_4_7() -> None:
    """RFC 5321 §4.5.4.1: give up, and say what the last error was."""
    outcome = Outcome.failure(temporary=True, status="4.4.1", text="connect failed")
    failed = next_state(QueuedRecipient("bob@b.test"), outcome, now=NOW, age=86400,
                        conf=CONF)
    assert failed.status is QueueStatus.FAILED and failed.status_code == "4.4.7"
    assert failed.last_error is not None and "last error: connect failed" in failed.last_error
    assert not failed.settled  # the bounce is still owed


def test_a_success_dsn_is_owed_only_when_asked_and_not_passed_on() -> None:
    """RFC 3461 §4.1 and §6.2."""
    def delivered(notify: tuple[str, ...], passed_on: bool) -> QueuedRecipient:
        reply = Reply(250, "2.0.0", "ok")
        outcome = Outcome.of_reply(reply, remote="mx", tls=None, dsn_passed_on=passed_on)
        return next_state(QueuedRecipient("b@b.test", notify), outcome, now=NOW, age=0,
                          conf=CONF)

    assert delivered((), False).settled
    assert not delivered(("SUCCESS",), False).settled
    assert delivered(("SUCCESS",), True).settled
    assert delivered(("SUCCESS",), False).next_attempt == NOW


def test_notify_defaults_and_never() -> None:
    """RFC 3461 §4.1: no NOTIFY means FAILURE and DELAY; NEVER means nothing."""
    plain, never, success = (QueuedRecipient("b@b.test", n)
                             for n in ((), ("NEVER",), ("success",)))
    assert notify_allows(plain, Notify.FAILURE) and notify_allows(plain, Notify.DELAY)
    assert not notify_allows(plain, Notify.SUCCESS)
    assert not any(notify_allows(never, what) for what in Notify)
    assert notify_allows(success, Notify.SUCCESS) and not notify_allows(success, Notify.DELAY)
