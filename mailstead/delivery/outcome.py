"""What one delivery attempt did to one recipient, and the queue state that follows.

An attempt ends, for each recipient, in an :class:`Outcome`: delivered, deferred or
failed, with the RFC 3463 status and the text that explains it (the remote server's reply,
or our own reason). :func:`next_state` turns it into the recipient's next queue record:
retry intervals, the age limit (RFC 5321 §4.5.4.1), and whether a DSN is still owed
(RFC 3461 §4.1). Pure: no store, no network, no clock but the ``now`` it is given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from mailstead.config.schema import DeliverySettings
from mailstead.store.models import QueuedRecipient, QueueStatus
from mailstead.wire.smtp import Reply


class OutcomeKind(Enum):
    DELIVERED = "delivered"  # the remote said 2yz, or it went into a local mailbox
    DEFERRED = "deferred"  # a temporary failure: try again later
    FAILED = "failed"  # a permanent failure: the sender gets a bounce


class Notify(StrEnum):
    """The RFC 3461 §4.1 NOTIFY keywords a recipient may carry."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"
    NEVER = "NEVER"


def notify_allows(recipient: QueuedRecipient, what: Notify) -> bool:
    """RFC 3461 §4.1: without NOTIFY, FAILURE and DELAY are the default; NEVER is none."""
    asked = {n.upper() for n in recipient.notify}
    if not asked:
        return what in (Notify.FAILURE, Notify.DELAY)
    return Notify.NEVER.value not in asked and what.value in asked


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt did to one recipient.

    ``text`` is the remote reply (``550 5.1.1 ...``) or our reason; ``remote`` where the
    attempt went (``mx.example.org[192.0.2.1]:25 TLSv1.3``) and ``tls`` the TLS version,
    when it got that far. ``dsn_passed_on``: the remote took our NOTIFY over (RFC 3461
    §6.2), so a success report is its job, not ours.
    """

    kind: OutcomeKind
    status: str
    text: str
    remote: str | None = None
    tls: str | None = None
    dsn_passed_on: bool = False

    @classmethod
    def of_reply(cls, reply: Reply, *, remote: str, tls: str | None,
                 dsn_passed_on: bool) -> Outcome:
        """The remote's final word for a recipient (RFC 5321 §4.2.1: the first digit)."""
        if reply.is_positive:
            kind = OutcomeKind.DELIVERED
        elif reply.is_temporary:
            kind = OutcomeKind.DEFERRED
        else:
            kind = OutcomeKind.FAILED
        return cls(kind, reply.status, str(reply), remote, tls, dsn_passed_on)

    @classmethod
    def failure(cls, *, temporary: bool, status: str, text: str, remote: str | None = None,
                tls: str | None = None) -> Outcome:
        """A failure that was not a reply to this recipient (DNS, connection, our check)."""
        kind = OutcomeKind.DEFERRED if temporary else OutcomeKind.FAILED
        return cls(kind, status, text, remote, tls)


def next_state(recipient: QueuedRecipient, outcome: Outcome, *, now: datetime, age: float,
               conf: DeliverySettings) -> QueuedRecipient:
    """The recipient's queue record after ``outcome``; ``age`` is the message's, in seconds."""
    if outcome.kind is OutcomeKind.DEFERRED and age >= conf.max_age_seconds:
        # RFC 5321 §4.5.4.1: give up after the configured time, with the last reason.
        outcome = Outcome(OutcomeKind.FAILED, "4.4.7",
                          f"gave up after {age / 86400:.1f} days in the queue; last "
                          f"error: {outcome.text}", outcome.remote, outcome.tls)
    attempted = dataclasses.replace(
        recipient, attempts=recipient.attempts + 1, last_attempt=now,
        last_error=outcome.text, remote=outcome.remote, tls=outcome.tls,
        status_code=outcome.status)
    match outcome.kind:
        case OutcomeKind.DELIVERED:
            # Nothing owed unless SUCCESS was asked and the remote did not take it over.
            owed = notify_allows(recipient, Notify.SUCCESS) and not outcome.dsn_passed_on
            return dataclasses.replace(attempted, status=QueueStatus.DELIVERED,
                                       next_attempt=now, settled=not owed)
        case OutcomeKind.FAILED:
            return dataclasses.replace(attempted, status=QueueStatus.FAILED,
                                       next_attempt=now, settled=False)
        case OutcomeKind.DEFERRED:
            intervals = conf.retry_intervals_seconds or [3600]
            wait = intervals[min(attempted.attempts - 1, len(intervals) - 1)]
            wait = max(1, wait)  # a zero interval must never become a busy loop
            return dataclasses.replace(attempted, status=QueueStatus.DEFERRED,
                                       next_attempt=now + timedelta(seconds=wait))
