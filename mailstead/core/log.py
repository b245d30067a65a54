"""Logging with a connection id, peer and user on every line, and secrets redacted.

One line per connection event. Protocol code logs through :class:`ConnectionLog`, which
prefixes the session id, peer and user so an operator can follow one connection with grep.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys

_session_counter = itertools.count(1)
_SECRET_COMMANDS = re.compile(
    rb"^(?P<head>(?:\S+\s+)?(?:AUTH(?:ENTICATE)?\s+\S+|LOGIN\s+\S+|PASS|APOP|USER_PASS))(?P<rest>.*)$",
    re.IGNORECASE,
)


def new_session_id(prefix: str) -> str:
    """Short, process-unique id such as ``smtp-12`` for correlating log lines."""
    return f"{prefix}-{next(_session_counter)}"


def redact_command(line: bytes) -> bytes:
    """Hide credentials in a protocol command line before it is logged."""
    match = _SECRET_COMMANDS.match(line.rstrip(b"\r\n"))
    if match and match.group("rest").strip():
        return match.group("head") + b" ***"
    return line.rstrip(b"\r\n")


class ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Logger adapter that prefixes ``[session peer user]`` to every message."""

    def __init__(self, logger: logging.Logger, session_id: str, peer: str) -> None:
        super().__init__(logger, {})
        self.session_id = session_id
        self.peer = peer
        self.user: str | None = None

    def process(self, msg: object, kwargs: dict) -> tuple[str, dict]:  # type: ignore[type-arg, override]
        user = self.user or "-"
        return f"[{self.session_id} {self.peer} {user}] {msg}", kwargs


def setup_logging(level: str = "info", stream: object = None) -> None:
    """Configure the root logger once for the server process."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
