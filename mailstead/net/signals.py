"""SIGTERM, SIGINT and SIGHUP received by a thread of their own, so a stop always stops.

``loop.add_signal_handler`` runs its callback on the event loop: if a bug or a hostile
input keeps the loop busy, SIGTERM waits as long as the loop does (once, until SIGKILL).
Here the signals are blocked in every thread from the start of the process and one thread
takes them with ``sigwait``. It hands the request to the loop, then watches: if the loop
does not even run a no-op within ``liveness`` seconds, or the graceful stop has not finished
within ``deadline`` seconds, it ends the process at once. A second SIGTERM/SIGINT does the
same. Ending hard loses nothing acknowledged: every ``250``/``OK`` was on disk before it
was sent (the same guarantee the ``kill -9`` tests prove).

Use it around the whole life of the process, before any thread starts (threads inherit
the blocked mask; one that did not would take a SIGTERM with the default action and end
the process without draining)::

    with ProcessSignals() as signals:
        asyncio.run(main(signals))      # main calls signals.attach(loop, on_stop=...)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import TracebackType

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
_ALL = STOP_SIGNALS | {signal.SIGHUP}
_log = logging.getLogger("mailstead.net")

StopHook = Callable[[str], None]
ReloadHook = Callable[[], None]


def _hard_exit(code: int) -> None:
    """End the process now, without unwinding the stuck thread (there is no other way)."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


class ProcessSignals:
    """Owns the process's stop and reload signals for as long as the ``with`` block runs."""

    def __init__(
        self,
        *,
        liveness: float = 3.0,
        deadline: float = 20.0,
        exit_now: Callable[[int], None] = _hard_exit,
    ) -> None:
        self.liveness = liveness
        self.deadline = deadline
        self._exit_now = exit_now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_stop: StopHook | None = None
        self._on_reload: ReloadHook | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._finished = threading.Event()
        self._previous_mask: set[int | signal.Signals] = set()

    # -- the with block ------------------------------------------------------------------
    def __enter__(self) -> ProcessSignals:
        self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL)
        threading.Thread(target=self._receive, name="signals", daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The process is about to end by itself: the watchdog must not end it first. The
        # receiving thread is a daemon blocked in sigwait and goes with the process.
        self._finished.set()
        self.detach()
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)

    # -- the running loop ----------------------------------------------------------------
    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        on_stop: StopHook,
        on_reload: ReloadHook | None = None,
    ) -> None:
        """From now on, SIGTERM/SIGINT call ``on_stop(name)`` and SIGHUP ``on_reload()``,
        each on ``loop``."""
        with self._lock:
            self._loop, self._on_stop, self._on_reload = loop, on_stop, on_reload

    def detach(self) -> None:
        """Signals from now on only count for the watchdog (the loop is shutting down)."""
        with self._lock:
            self._loop = self._on_stop = self._on_reload = None

    # -- the signal thread ---------------------------------------------------------------
    def _receive(self) -> None:
        while True:
            received = signal.sigwait(_ALL)
            if received == signal.SIGHUP:
                self._reload()
            else:
                self._stop(signal.Signals(received).name)

    def _call_on_loop(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop closed in between
            return False
        return True

    def _reload(self) -> None:
        with self._lock:
            hook = self._on_reload
        if hook is not None:
            self._call_on_loop(hook)

    def _stop(self, name: str) -> None:
        with self._lock:
            again, self._stopping = self._stopping, True
            hook = self._on_stop
        if again:
            _log.error("%s received again while stopping: exiting now", name)
            self._exit_now(1)
            return
        if hook is None:  # not serving yet (start-up) or already past the loop
            _log.warning("%s received while not serving: exiting now", name)
            self._exit_now(1)
            return
        alive = threading.Event()

        def begin_stop() -> None:
            alive.set()  # the loop runs callbacks: it is not stuck
            hook(name)

        # One callback for both: the loop may finish stopping (and detach) between two.
        if not self._call_on_loop(begin_stop):
            return  # the loop is gone already: the process is ending by itself
        threading.Thread(target=self._watch, args=(name, alive), name="stop-watchdog",
                         daemon=True).start()

    def _watch(self, name: str, alive: threading.Event) -> None:
        if not alive.wait(self.liveness):
            _log.error("%s: the event loop has not answered for %.0fs: exiting now", name,
                       self.liveness)
            self._exit_now(1)
        elif not self._finished.wait(self.deadline):
            _log.error("%s: shutdown still running after %.0fs: exiting now", name,
                       self.deadline)
            self._exit_now(1)
