"""Waiting for a condition in tests, instead of sleeping and hoping.

A test that waits for something the code under test does asynchronously asks for the
condition itself, with a deadline: it goes on the moment the condition holds, and fails
with a clear message when it never does. A fixed ``sleep(0.05)`` is either too short on a
loaded machine (a flaky failure) or longer than needed (a slow suite).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T | None], *, timeout: float, failure: Callable[[], str]
) -> T:
    """Call ``check`` until it returns something other than None, then return that; fail
    with ``failure()`` after ``timeout`` seconds. For what a test can only observe from the
    outside (another process, another server's thread)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(failure())
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


async def eventually(
    condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "the condition"
) -> None:
    """Let the event loop run until ``condition()`` holds (a read has started, bytes have
    arrived in a buffer, a session has ended); fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout}s") from None
