"""The time the outbound queue runs on, injected so tests can move it.

Retries are minutes to days apart; a test that waited for them would never finish. The
scheduler asks a :class:`Clock` for the time instead of the system, and tests give it a
:class:`ManualClock` they move by hand: a day of retries runs in milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


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
