"""Apache James MPT protocol scripts: a pure parser and a socket executor.

Format (James ``mpt/core`` ProtocolSessionBuilder): ``C: line`` is sent as written (plus
CRLF); ``S: regex`` must match the next server line in full (Java regex, ``Pattern.matches``);
``SUB {`` ... ``}`` holds ``S:`` lines that may arrive in any order; ``SESSION: n`` switches
the session later lines apply to (before any, lines apply to every session); ``REINIT``
reconnects the current session; ``WAIT ms`` sleeps; ``LOG``, ``TIMER`` and ``AWAIT`` only
matter to James's own harness; ``#`` and blank lines are comments.

James's expected human-readable texts ("CREATE completed.") are its own. :func:`relax`
replaces only the free text after a status word (``OK``/``NO``/``BAD``/``BYE``/``PREAUTH``
plus an optional ``[RESP-CODE ...]``, and after a ``+`` continuation) with ``.*``; statuses,
response codes and data must still match.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ALL_SESSIONS = -1


@dataclass(frozen=True)
class Client:
    session: int
    line: str
    lineno: int


@dataclass(frozen=True)
class Server:
    session: int
    pattern: str
    lineno: int


@dataclass(frozen=True)
class Unordered:
    session: int
    patterns: tuple[str, ...]
    lineno: int


@dataclass(frozen=True)
class Reinit:
    session: int
    lineno: int


@dataclass(frozen=True)
class Wait:
    millis: int
    lineno: int


Element = Client | Server | Unordered | Reinit | Wait


class ScriptError(ValueError):
    """The script text does not follow the MPT format."""


@dataclass
class Script:
    name: str
    elements: list[Element] = field(default_factory=list)

    @property
    def sessions(self) -> int:
        """How many connections the script needs (James opens max session number + 1)."""
        numbers = [getattr(e, "session", ALL_SESSIONS) for e in self.elements]
        return max([0, *numbers]) + 1


def parse_script(text: str, name: str = "<script>") -> Script:
    """Parse an MPT script; raises :class:`ScriptError` on a line James would reject."""
    script = Script(name)
    session = ALL_SESSIONS
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        i += 1
        if line.startswith("C:"):
            script.elements.append(Client(session, line[3:], lineno))
        elif line.startswith("S:"):
            script.elements.append(Server(session, line[3:], lineno))
        elif line.startswith("SUB {"):
            patterns = []
            while True:
                if i >= len(lines):
                    raise ScriptError(f"{name}:{lineno}: SUB block not closed")
                inner = lines[i]
                i += 1
                if inner.startswith("}"):
                    break
                if not inner.startswith("S:"):
                    raise ScriptError(f"{name}:{i}: only 'S:' lines are allowed in a SUB block")
                patterns.append(inner[3:])
            script.elements.append(Unordered(session, tuple(patterns), lineno))
        elif line.startswith("#") or not line.strip():
            continue
        elif line.startswith("SESSION:"):
            number = line[len("SESSION:") :].strip()
            if not number.isdigit():
                raise ScriptError(f"{name}:{lineno}: bad session number {number!r}")
            session = int(number)
        elif line.startswith("REINIT"):
            script.elements.append(Reinit(max(0, session), lineno))
        elif line.startswith("WAIT"):
            try:
                script.elements.append(Wait(int(line[5:]), lineno))
            except ValueError:
                raise ScriptError(f"{name}:{lineno}: bad WAIT {line!r}") from None
        elif line.startswith(("LOG", "TIMER", "AWAIT")):
            continue  # James harness bookkeeping: logging, timing, index waits
        else:
            raise ScriptError(f"{name}:{lineno}: invalid line prefix {line[:3]!r}")
    return script


# --- relaxing James's free text -------------------------------------------------------------

_STATUS = re.compile(r"^(?P<head>(?:\\\*|[^ ]+) (?:OK|NO|BAD|BYE|PREAUTH))(?P<rest>.*)$")
_CONTINUATION = re.compile(r"^\\\+(?: .*)?$")


def _end_of_code(rest: str) -> int:
    r"""Index just past the ``\]`` closing a leading ``\[`` response code, or -1."""
    i = 2
    depth = 1
    while i < len(rest):
        if rest.startswith("\\\\", i):
            i += 2
        elif rest.startswith("\\[", i):
            depth += 1
            i += 2
        elif rest.startswith("\\]", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return -1


def relax(pattern: str) -> str:
    """Replace the free human-readable text of a status or continuation line with ``.*``.

    ``a1 OK \\[READ-WRITE\\] SELECT completed.`` -> ``a1 OK \\[READ-WRITE\\](?: .*)?``;
    data lines (``\\* 3 EXISTS``, ``\\* FLAGS (...)``) are returned unchanged.
    """
    if _CONTINUATION.match(pattern):
        return r"\+.*"
    m = _STATUS.match(pattern)
    if m is None:
        return pattern
    head, rest = m.group("head"), m.group("rest")
    if rest.startswith(" \\["):
        end = _end_of_code(rest[1:])
        if end > 0:
            return head + rest[: end + 1] + "(?: .*)?"
    return head + "(?: .*)?"


def to_python_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Java regex (the subset the scripts use) for ``fullmatch``."""
    return re.compile(pattern)


# --- execution ---------------------------------------------------------------------------


class ScriptFailure(AssertionError):
    pass


class _Connection:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rwb")

    def write_line(self, line: str) -> None:
        self.file.write(line.encode("utf-8") + b"\r\n")
        self.file.flush()

    def read_line(self) -> str:
        data = self.file.readline()
        if not data:
            raise EOFError("connection closed by the server")
        return data.rstrip(b"\r\n").decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.sock.close()

    def reconnect(self) -> None:
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.file = self.sock.makefile("rwb")
        self.read_line()  # the greeting of a restarted session is not part of the script


@dataclass
class Transcript:
    lines: list[str] = field(default_factory=list)

    def add(self, session: int, direction: str, text: str) -> None:
        self.lines.append(f"[{session}] {direction} {text}")

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])


def run_script(
    elements: Sequence[Element],
    sessions: int,
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    relax_text: Callable[[str], str] = relax,
    post: Sequence[Element] = (),
) -> Transcript:
    """Run elements against ``host:port`` with ``sessions`` connections; raise
    :class:`ScriptFailure` (with the transcript tail) at the first mismatch. ``post``
    elements run afterwards, best effort (James's clean-up scripts)."""
    conns = [_Connection(host, port, timeout) for _ in range(sessions)]
    transcript = Transcript()

    def targets(session: int) -> list[int]:
        return list(range(sessions)) if session == ALL_SESSIONS else [session]

    def fail(element: Element, message: str) -> None:
        raise ScriptFailure(
            f"line {element.lineno}: {message}\n--- transcript tail ---\n{transcript.tail()}"
        )

    def read(n: int, element: Element) -> str:
        try:
            line = conns[n].read_line()
        except (OSError, EOFError) as exc:
            fail(element, f"session {n}: no line from the server ({exc})")
        transcript.add(n, "S:", line)
        return line

    def step(element: Element) -> None:
        if isinstance(element, Client):
            for n in targets(element.session):
                transcript.add(n, "C:", element.line)
                conns[n].write_line(element.line)
        elif isinstance(element, Server):
            expected = relax_text(element.pattern)
            for n in targets(element.session):
                line = read(n, element)
                if not to_python_regex(expected).fullmatch(line):
                    fail(element, f"session {n}: expected /{expected}/\n  got: {line!r}")
        elif isinstance(element, Unordered):
            for n in targets(element.session):
                pending = [relax_text(p) for p in element.patterns]
                while pending:
                    line = read(n, element)
                    hit = next((p for p in pending if to_python_regex(p).fullmatch(line)), None)
                    if hit is None:
                        fail(element, f"session {n}: {line!r} matches none of {pending}")
                    pending.remove(hit)
        elif isinstance(element, Reinit):
            conns[element.session].reconnect()
            transcript.add(element.session, "--", "REINIT")
        elif isinstance(element, Wait):
            time.sleep(element.millis / 1000)

    try:
        for element in elements:
            step(element)
        for element in post:
            try:
                step(element)
            except (ScriptFailure, OSError):
                break
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
    return transcript


def load(path: Path) -> Script:
    return parse_script(path.read_text(encoding="utf-8"), path.name)
