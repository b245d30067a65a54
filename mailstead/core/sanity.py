"""The sanity flag: degrade in production, fail under test.

Some code must never take a delivery or a connection down: the MIME parser, for one, stores a
message it cannot read as one opaque text part rather than refuse it. Such a catch-all hides
bugs as well as bad input, so each one logs what happened and, when the sanity flag is on,
raises instead of degrading, so that the test which provoked it fails (mox's ``xsanity`` does
the same for its IMAP server).

The flag is an environment variable rather than a setting so that servers started by tests as
subprocesses inherit it; ``tests/conftest.py`` turns it on for the whole suite. It is read on
every check, which only happens on the failure path, so a test can turn it off to see the
production behaviour.
"""

from __future__ import annotations

import logging
import os
import traceback

#: ``MAILSTEAD_SANITY=1`` turns the flag on; anything else (or nothing) leaves it off.
ENV_VAR = "MAILSTEAD_SANITY"


def enabled() -> bool:
    """Whether a catch-all fallback must raise instead of degrading."""
    return os.environ.get(ENV_VAR) == "1"


def degrade(
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    exc: BaseException,
    message: str,
    *args: object,
    exc_info: bool = False,
) -> None:
    """What a catch-all does with the exception it caught: log ``message`` (its first
    ``%s`` is :func:`describe` of ``exc``, then ``args``) at error level, and, with the flag
    on, raise ``exc`` again instead of letting the caller degrade. ``exc_info`` adds the
    traceback, for code whose exceptions cannot quote mail or credentials."""
    logger.error(message, describe(exc), *args, exc_info=exc if exc_info else None)
    if enabled():
        raise exc


def describe(exc: BaseException) -> str:
    """The exception's type and the place it was raised, for the fallback's log line.

    Not its text: the text of an error raised while reading a message or a command can quote
    what was being read (a header value, a password), and that must not reach the log."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename}:{last.lineno} in {last.name}"
