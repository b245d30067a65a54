"""Logging with a connection id, peer and user on every line, and secrets redacted.

One line per connection event. Protocol code logs through :class:`ConnectionLog`, which
prefixes the session id, peer and user so an operator can follow one connection with grep.

Every message is written through :class:`SafeFormatter`, which escapes control characters:
values a client chose (an IMAP ID, a HELO name, a user name) reach log lines, and a CR or LF
among them would otherwise start a forged line ("auth failed … from 203.0.113.9") that
fail2ban acts on. Escaping happens here, once, so no call site has to remember it.

``log.format = "json"`` writes the same records as one JSON object a line
(:class:`JSONFormatter`) for log shippers (Loki, Elasticsearch, journald's JSON readers):
the connection's id, peer and user as fields of their own, a traceback as one escaped
string, never lines of its own.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal

_session_counter = itertools.count(1)
_SECRET_COMMANDS = re.compile(
    rb"^(?P<head>(?:\S+\s+)?(?:AUTH(?:ENTICATE)?\s+\S+|LOGIN\s+\S+|PASS|APOP|USER_PASS))(?P<rest>.*)$",
    re.IGNORECASE,
)


def _control_escapes() -> dict[int, str]:
    """C0 controls, DEL, C1 controls and the Unicode line and paragraph separators: each
    could end a line for some reader of the log. Tab stays (it ends no line)."""
    codes = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
    table = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in codes if c != 0x09}
    # Lone surrogates: bytes that were not UTF-8, kept by "surrogateescape". Written as the
    # byte they stand for; left alone, they make the log handler fail on the whole line.
    table.update({c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})
    table.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000) if c not in table})
    return table


_ESCAPES = _control_escapes()


def escape_controls(text: str) -> str:
    """``text`` with every character that could break a log line written as ``\\xNN``."""
    return text.translate(_ESCAPES)


class SafeFormatter(logging.Formatter):
    """A formatter that writes each message on one line whatever the client sent.

    Only the message is escaped: a traceback appended by ``exc_info`` keeps its own lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


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
        # The same three as fields of the record, for the JSON format.
        kwargs["extra"] = {**kwargs.get("extra", {}),
                           CONNECTION_FIELDS[0]: self.session_id,
                           CONNECTION_FIELDS[1]: self.peer, CONNECTION_FIELDS[2]: user}
        return f"[{self.session_id} {self.peer} {user}] {msg}", kwargs


#: Record attributes :class:`ConnectionLog` sets; JSON keys ``session``, ``peer``, ``user``.
CONNECTION_FIELDS = ("session", "peer", "user")

LogFormat = Literal["text", "json"]


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (RFC 3339, UTC, milliseconds),
    ``level``, ``logger``, ``message``; ``session``, ``peer`` and ``user`` on a
    connection's lines (the message then without the ``[...]`` prefix the text format
    shows); ``exc`` and ``stack`` as single strings. JSON escapes every control
    character, so a client's CR LF cannot forge a line here either."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        fields = [getattr(record, name, None) for name in CONNECTION_FIELDS]
        if all(isinstance(value, str) for value in fields):
            prefix = "[" + " ".join(str(value) for value in fields) + "] "
            entry["message"] = message.removeprefix(prefix)
            entry.update(zip(CONNECTION_FIELDS, (str(value) for value in fields), strict=True))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", stream: object = None, fmt: LogFormat = "text") -> None:
    """Configure the root logger once for the server process, in the chosen format.
    Python's warnings go through it too, so nothing reaches stderr in another shape."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
