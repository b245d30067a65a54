"""The event loop every mailstead process runs on: uvloop where it is installed.

Under ten busy IMAP clients the event-loop thread is the server's bottleneck, and about a
fifth of its time went to asyncio's own machinery (socket reads and writes, callbacks,
futures for the store's worker threads). uvloop does the same work on libuv in C and cut
the server's CPU per command by about a quarter (decision 0030). It is a dependency on
every platform it supports; where it is missing (Windows) the standard loop serves, with
the same behaviour, only slower. ``serve`` and the test server thread both call
:func:`new_event_loop`, so the test suite runs on the loop production runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_factory: Callable[[], asyncio.AbstractEventLoop]
try:
    import uvloop

    _factory = uvloop.new_event_loop
    _NAME = "uvloop"
except ImportError:  # pragma: no cover - every supported platform has uvloop
    _factory = asyncio.new_event_loop
    _NAME = "asyncio"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind the server runs on."""
    return _factory()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on :func:`new_event_loop` (Python 3.11 has no ``loop_factory``)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def name() -> str:
    """Which loop runs, for the startup log line."""
    return _NAME
