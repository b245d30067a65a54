"""Command framing: bytes in, whole commands (with their literals) out. No I/O.

An IMAP command is one or more lines; a line ending in ``{n}``, ``{n+}`` or ``~{n}`` is
followed by ``n`` octets of literal and then the rest of the command (RFC 9051 §4.3,
RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8). :meth:`Receiver.next` answers:

- :class:`Frame` — a complete command; ``data`` is everything the client sent for it, literal
  headers normalised to ``{n}\\r\\n`` and the final line ending removed, ready for the parser;
- :class:`NeedLiteral` — a literal announcement. For a synchronising literal the session must
  decide (``+`` continuation, or a tagged refusal and :meth:`Receiver.reject_literal`) before the
  client sends a byte of it; non-synchronising octets follow without waiting;
- :class:`NeedMore` — feed more bytes. :attr:`Receiver.literal_remaining` says how many
  literal octets are due, so a session can read exactly those.

A large APPEND literal does not go through here: the session reads it into a spool file
and :meth:`Receiver.set_aside` puts an :class:`AsideLiteral` where its octets would be;
the parser finds it there by its offset (which no client input can forge).

Limits live here because they are about framing: line length (literals excluded) and the
total size of one command. Breaking one raises :class:`FrameError` after discarding the
offending input, so the session can answer BAD and carry on with the next line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailstead.core.message_data import MessageData

# ``{123}``, ``{123+}`` and literal8 ``~{123}`` at the very end of a line.
_LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\r?\n\Z")
_TAG = re.compile(rb"^([^\x00-\x20\x7f(){%*\"\\+]+)(?: ([A-Za-z]+))?(?: ([A-Za-z]+))?")


@dataclass(frozen=True, slots=True)
class AsideLiteral:
    """A literal the session spooled instead of feeding it here: its octets (None when
    the budgets refused them, and the command will be answered ``NO [UNAVAILABLE]``), and
    whether a NUL was among them (allowed only in a literal8)."""

    data: MessageData | None
    nul: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete command as the client sent it (final CRLF removed); ``aside`` maps the
    offset right after a literal's ``{n}\\r\\n`` to the literal set aside there."""

    data: bytes
    aside: dict[int, AsideLiteral] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NeedMore:
    """Feed more bytes."""


@dataclass(frozen=True, slots=True)
class NeedLiteral:
    """A literal of ``size`` octets was announced; ``tag``/``command`` say for what (so the
    session can apply APPENDLIMIT). ``synchronizing`` literals wait for ``+``."""

    size: int
    synchronizing: bool
    binary: bool
    tag: str
    command: str
    #: The literal follows ``TEXT``: a CATENATE part (RFC 4469), not a whole message, so
    #: an empty one does not cancel the command.
    text_part: bool = False


class FrameError(Exception):
    """A framing limit was broken; the offending input has been discarded."""

    def __init__(
        self, reason: str, tag: str | None, *, fatal: bool = False, code: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag
        self.fatal = fatal  # True when the rest of the stream cannot be trusted
        self.code = code  # "TOOBIG" for literals over the limit (RFC 7889 §4)


_NEED_MORE = NeedMore()


class Receiver:
    """Incremental framer; feed it bytes in any split and call :meth:`next` until NeedMore."""

    def __init__(self, max_line: int = 65536, max_command: int = 64 * 1024 * 1024) -> None:
        self.max_line = max_line
        self.max_command = max_command
        self._input = bytearray()
        self._frame = bytearray()
        self._literal_remaining = 0
        self._line_start = 0  # where the current line begins in _frame
        self._announced: NeedLiteral | None = None
        self._discarding = False  # dropping an over-long line up to its LF
        self._aside: dict[int, AsideLiteral] = {}

    @property
    def literal_remaining(self) -> int:
        return self._literal_remaining

    @property
    def in_command(self) -> bool:
        """True while part of a command has been received (for the idle timer's message)."""
        return bool(self._frame) or bool(self._input)

    def feed(self, data: bytes) -> None:
        self._input += data

    def reset(self) -> None:
        """Forget the partial command (after an error the session answered)."""
        self._frame.clear()
        self._literal_remaining = 0
        self._line_start = 0
        self._announced = None
        self._aside = {}

    def set_aside(self, literal: AsideLiteral) -> None:
        """The session read the announced literal's octets itself (into a spool file):
        the frame gets none of them, ``literal`` stands in their place, and the command
        goes on after them."""
        if self._input:
            raise ValueError("literal octets were already fed")
        self._aside[len(self._frame)] = literal
        self._literal_remaining = 0
        self._line_start = len(self._frame)

    def reject_literal(self) -> None:
        """The session refused a synchronising literal: the client will not send it, and
        the command is over (RFC 9051 §4.3: the client aborts on a tagged reply)."""
        self.reset()

    def _head(self) -> tuple[str, str]:
        m = _TAG.match(bytes(self._frame[:200]))
        if m is None:
            return "", ""
        tag = m.group(1).decode("ascii", "replace")
        name = (m.group(2) or b"").decode("ascii").upper()
        if name == "UID" and m.group(3):
            name = "UID " + m.group(3).decode("ascii").upper()
        return tag, name

    def next(self) -> Frame | NeedLiteral | NeedMore:
        while True:
            if self._discarding:
                lf = self._input.find(b"\n")
                if lf < 0:
                    self._input.clear()
                    return _NEED_MORE
                del self._input[: lf + 1]
                self._discarding = False
                tag = self._head()[0] or None
                self.reset()
                raise FrameError("command line too long", tag)
            if self._literal_remaining:
                if not self._input:
                    return _NEED_MORE
                take = min(self._literal_remaining, len(self._input))
                self._frame += self._input[:take]
                del self._input[:take]
                self._literal_remaining -= take
                if self._literal_remaining:
                    return _NEED_MORE
                self._line_start = len(self._frame)
                continue
            lf = self._input.find(b"\n")
            line_len = (lf + 1) if lf >= 0 else len(self._input)
            if len(self._frame) - self._line_start + line_len > self.max_line:
                # Keep the head of the command so the BAD can carry its tag.
                if not self._frame:
                    self._frame += self._input[:200]
                if lf >= 0:
                    del self._input[: lf + 1]
                    tag = self._head()[0] or None
                    self.reset()
                    raise FrameError("command line too long", tag)
                self._input.clear()
                self._discarding = True
                return _NEED_MORE
            if lf < 0:
                return _NEED_MORE
            line = bytes(self._input[: lf + 1])
            del self._input[: lf + 1]
            m = _LITERAL_AT_END.search(line)
            if m is None:
                body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                self._frame += body
                frame = Frame(bytes(self._frame), self._aside)
                self.reset()
                return frame
            size = int(m.group(2))
            # Normalise the announcement so the parser sees one form: {n}\r\n or ~{n}\r\n.
            self._frame += line[: m.start()] + m.group(1) + b"{" + m.group(2) + b"}\r\n"
            tag, name = self._head()
            if len(self._frame) + size > self.max_command:
                nonsync = bool(m.group(3))
                self.reset()
                # A non-synchronising literal is already on its way: the stream is lost.
                raise FrameError("command too large", tag or None, fatal=nonsync, code="TOOBIG")
            self._literal_remaining = size
            text_part = line[: m.start()].rstrip(b" ")[-5:].upper() in (b" TEXT", b"(TEXT")
            announced = NeedLiteral(size, not m.group(3), bool(m.group(1)), tag, name, text_part)
            if size == 0:
                self._line_start = len(self._frame)
            return announced
