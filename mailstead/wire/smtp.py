"""The SMTP wire format, sans-I/O: replies, EHLO keywords, xtext and message data.

The receiving server (:mod:`mailstead.smtp`) and the outbound client
(:mod:`mailstead.delivery.remote`) speak the same protocol from opposite ends; what both
need to agree on lives here, once:

- :class:`Reply`: one SMTP reply (RFC 5321 §4.2) with its RFC 3463 enhanced status code.
  The server builds and :meth:`Reply.encode`\\ s them; the client gets them from
  :class:`ReplyParser` and asks whether they are positive, temporary or permanent.
- :class:`ReplyParser`: bytes in, whole replies out. It assembles multi-line replies
  (``250-...`` lines, then ``250 ...``, RFC 5321 §4.2.1), and holds the client's limits
  (line length, lines per reply), so a malformed or endless reply is a :class:`WireError`,
  never a crash and never unbounded memory.
- :class:`Extensions`: the EHLO keywords and their parameters (RFC 5321 §4.1.1.1).
- :func:`xtext_encode` / :func:`xtext_decode` (RFC 3461 §4) for ENVID and ORCPT.
- :func:`canonical_lines`, :func:`dot_stuff`: message data as DATA (RFC 5321 §4.5.2) and
  BDAT (RFC 3030 §2) send it.

Nothing here reads a socket: the caller feeds bytes and writes what it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailstead.core.errors import MailsteadError

#: Longest reply line accepted, line ending included. RFC 5321 §4.5.3.1.5 promises 512
#: octets, but servers do send longer text; this is what our own server takes for a command
#: line (``limits.smtp_max_line_length``), so both ends hold the same bound.
MAX_REPLY_LINE = 4096
#: Most lines in one reply. An EHLO reply has one line per extension (a dozen or two), a
#: long banner a few more; a server that never ends its reply is cut off here.
MAX_REPLY_LINES = 100

# RFC 3463 §2: class "." subject "." detail; the class must agree with the reply code.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?= |$)")
# RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39
_CODE = re.compile(rb"[2-5][0-5][0-9]")
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r")
_XTEXT_ESCAPE = re.compile(r"\+([0-9A-Fa-f]{2})")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class WireError(MailsteadError):
    """The peer sent something that is not SMTP: a malformed or over-long reply, bad xtext.

    The connection cannot be trusted to be in step any more; the client drops it.
    """


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply (RFC 5321 §4.2): the basic code, the RFC 3463 enhanced code, the text.

    ``enhanced`` is ``""`` where RFC 2034 §4 exempts it (greeting, HELO/EHLO) and where a
    remote server sent none. ``text`` is one line or a tuple of lines, without the code and
    the enhanced code.
    """

    code: int
    enhanced: str
    text: str | tuple[str, ...]

    @property
    def lines(self) -> tuple[str, ...]:
        return (self.text,) if isinstance(self.text, str) else self.text

    # RFC 5321 §4.2.1: the first digit says how the command went.
    @property
    def is_positive(self) -> bool:
        """2yz (done) or 3yz (go on: 354 after DATA, 334 in AUTH)."""
        return 200 <= self.code < 400

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @property
    def is_temporary(self) -> bool:
        """4yz, transient negative completion: the same command may work later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5yz, permanent negative completion: do not repeat it as it is."""
        return self.code >= 500

    @property
    def status(self) -> str:
        """The RFC 3463 status for DSNs and logs: the enhanced code, else ``class.0.0``."""
        return self.enhanced or f"{self.code // 100}.0.0"

    def encode(self) -> bytes:
        """Wire form: ``250-...`` for all lines but the last (RFC 5321 §4.2.1)."""
        lines = self.lines or ("",)
        prefix = f"{self.enhanced} " if self.enhanced else ""
        out = []
        last = len(lines) - 1
        for index, line in enumerate(lines):
            sep = " " if index == last else "-"
            # Reply text is ours, but never let a CR/LF from an argument split the reply.
            clean = line.replace("\r", " ").replace("\n", " ")
            out.append(f"{self.code}{sep}{prefix}{clean}\r\n")
        return "".join(out).encode("utf-8")

    def __str__(self) -> str:
        """One line for logs, queue records and DSNs: ``550 5.1.1 No such user``."""
        words = [str(self.code)]
        if self.enhanced:
            words.append(self.enhanced)
        text = " ".join(" ".join(self.lines).split())
        if text:
            words.append(text)
        return " ".join(words)


def _split_enhanced(code: int, text: str) -> tuple[str, str]:
    """(enhanced code, rest of the text); no enhanced code when its class disagrees with
    the reply code (RFC 3463 §2: "550 4.1.1" is inconsistent, so it is only text)."""
    match = _ENHANCED.match(text)
    if match is None or int(match.group(1)) != code // 100:
        return "", text
    return ".".join(match.groups()), text[match.end() + 1 :]


class ReplyParser:
    """Bytes from the server in, whole :class:`Reply` values out, in order.

    Feed whatever arrived (a fragment of a line, or several pipelined replies at once);
    :meth:`feed` returns the replies it completed. A line longer than ``max_line_length``
    (counting its line ending), a reply of more than ``max_lines`` lines, a line that does
    not start with a reply code, or a continuation with another code raises
    :class:`WireError`; the parser is then reset, though the caller should drop the
    connection. Memory is bounded by the two limits.

    Replies completed before the bad bytes are returned first and the error is raised by
    the next :meth:`feed`: they are real answers (a ``250`` to the final dot stays a
    delivery), and the bytes after a ``220`` to STARTTLS are the caller's to discard
    (:attr:`pending`), whatever they are.
    """

    def __init__(self, *, max_line_length: int = MAX_REPLY_LINE,
                 max_lines: int = MAX_REPLY_LINES) -> None:
        self.max_line_length = max_line_length
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._code = b""
        self._lines: list[str] = []
        self._error: WireError | None = None

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished reply (or bad bytes) are held: the server said more than
        was answered.

        After the reply to STARTTLS nothing may be pending (RFC 3207 §4.2; a man in the
        middle could inject replies that would be taken as coming over TLS).
        """
        return bool(self._buffer or self._lines or self._error)

    def reset(self) -> None:
        self._buffer.clear()
        self._code = b""
        self._lines = []
        self._error = None

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next bytes (``b""`` to only raise an error held back); return the
        replies they complete, often none."""
        if self._error is not None:
            error = self._error
            self.reset()
            raise error
        self._buffer += data
        replies: list[Reply] = []
        start = 0
        try:
            while (end := self._buffer.find(b"\n", start)) >= 0:
                line = bytes(self._buffer[start : end + 1])
                start = end + 1
                reply = self._line(line)
                if reply is not None:
                    replies.append(reply)
            if len(self._buffer) - start >= self.max_line_length:
                raise WireError(f"reply line longer than {self.max_line_length} bytes")
        except WireError as exc:
            self.reset()
            if not replies:
                raise
            self._error = exc
            return replies
        del self._buffer[:start]
        return replies

    def _line(self, line: bytes) -> Reply | None:
        if len(line) > self.max_line_length:
            raise WireError(f"reply line longer than {self.max_line_length} bytes")
        line = line.rstrip(b"\r\n")
        code = line[:3]
        if not _CODE.fullmatch(code):
            raise WireError(f"not an SMTP reply line: {_shown(line)}")
        separator = line[3:4]
        if separator not in (b"", b" ", b"-"):
            raise WireError(f"no space or hyphen after the reply code: {_shown(line)}")
        if self._lines and code != self._code:
            raise WireError(f"reply code changed within a reply: {_shown(line)}")
        if len(self._lines) >= self.max_lines:
            raise WireError(f"reply of more than {self.max_lines} lines")
        self._code = code
        # RFC 6531 §3.7.4.1 lets an SMTPUTF8 server send UTF-8 text; anything else undecodable
        # is shown, not fatal.
        self._lines.append(line[4:].decode("utf-8", "replace"))
        if separator == b"-":
            return None
        return self._finish()

    def _finish(self) -> Reply:
        code = int(self._code)
        lines, self._lines, self._code = self._lines, [], b""
        enhanced, first = _split_enhanced(code, lines[0])
        if enhanced:
            # RFC 2034 §4: every line of the reply repeats the enhanced code.
            rest = [_split_enhanced(code, line) for line in lines[1:]]
            lines = [first, *(text if got == enhanced else line
                              for (got, text), line in zip(rest, lines[1:], strict=True))]
        text: str | tuple[str, ...] = lines[0] if len(lines) == 1 else tuple(lines)
        return Reply(code, enhanced, text)


def _shown(line: bytes) -> str:
    return repr(line[:80])


@dataclass(frozen=True, slots=True)
class Extensions:
    """What the server said it supports in its EHLO reply (RFC 5321 §4.1.1.1, §2.2.2).

    ``keywords`` maps the upper-cased keyword to its parameters (``"SIZE"`` ->
    ``"35882577"``, ``"AUTH"`` -> ``"PLAIN LOGIN"``). After HELO there are none.
    """

    keywords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Extensions:
        """The first line is the server's name and greeting; each further line one keyword."""
        keywords: dict[str, str] = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.strip().partition(" ")
            if "=" in keyword:
                # "AUTH=PLAIN LOGIN": the form of a pre-standard draft some servers still send.
                keyword, _, first = keyword.partition("=")
                params = f"{first} {params}".strip()
                if keyword.upper() in keywords:
                    continue
            if _KEYWORD.fullmatch(keyword):
                keywords[keyword.upper()] = params.strip()
        return cls(keywords)

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self.keywords

    def params(self, keyword: str) -> str:
        return self.keywords.get(keyword.upper(), "")

    @property
    def size_limit(self) -> int:
        """RFC 1870 §4: the largest message the server takes; 0 when it states no limit."""
        text = self.params("SIZE")
        return int(text) if text.isascii() and text.isdigit() else 0

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """RFC 4954 §3: the SASL mechanisms after the AUTH keyword."""
        return frozenset(m.upper() for m in self.params("AUTH").split())


def xtext_encode(text: str) -> str:
    """RFC 3461 §4: octets outside ``!``..``~``, and ``+`` and ``=``, as ``+XX``.

    Text is encoded as UTF-8 first, so any string survives a round trip.
    """
    out = []
    for byte in text.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):  # "+" and "="
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def xtext_decode(text: str) -> str:
    """RFC 3461 §4: ``+XX`` is the octet XX; the octets are UTF-8 text.

    Raises :class:`WireError` for a ``+`` without two hex digits, an unescaped ``=`` or a
    character outside ``!``..``~``. Lower-case hex digits are accepted (the RFC asks for
    upper case; being liberal here costs nothing).
    """
    if "=" in text or _XTEXT_ESCAPE.sub("", text).count("+"):
        raise WireError(f"bad xtext: {text[:80]!r}")
    if any(not 33 <= ord(ch) <= 126 for ch in text):
        raise WireError(f"bad character in xtext: {text[:80]!r}")
    out = bytearray()
    position = 0
    for match in _XTEXT_ESCAPE.finditer(text):
        out += text[position : match.start()].encode("ascii")
        out.append(int(match.group(1), 16))
        position = match.end()
    out += text[position:].encode("ascii")
    return out.decode("utf-8", "replace")


def canonical_lines(data: bytes) -> bytes:
    """The message with CRLF line endings throughout and a final CRLF (RFC 5321 §2.3.8).

    DATA and BDAT both send this form: a bare CR or LF is no line ending on the wire, and
    the receiver must not have to guess. The store keeps messages in this form already,
    so the common case only counts.
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _LINE_ENDINGS.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def dot_stuff(data: bytes) -> bytes:
    """Message data as DATA sends it: canonical lines, each line starting with a period
    given a second one, and the final ``.`` line (RFC 5321 §4.5.2)."""
    data = canonical_lines(data)
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


__all__ = [
    "MAX_REPLY_LINE",
    "MAX_REPLY_LINES",
    "Extensions",
    "Reply",
    "ReplyParser",
    "WireError",
    "canonical_lines",
    "dot_stuff",
    "xtext_decode",
    "xtext_encode",
]
