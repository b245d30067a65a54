"""The sendmail command line and the message it reads: pure, no store and no I/O.

``mailstead sendmail`` is called by programs written for Sendmail and Postfix (cron, PHP's
``mail()``, ``mail(1)``, monitoring scripts), so it reads their command line, not click's:
getopt-style options (``-fsender`` and ``-f sender``, grouped flags such as ``-ti``) in any
order before ``--``, recipients as the other arguments. What it cannot honour is refused
by name rather than silently ignored, except the options listed in :data:`IGNORED_FLAGS`
and :data:`IGNORED_O`, which change nothing a caller could observe here (mail is always
stored or queued before the command returns, and errors always go to stderr and the exit
status).

The message is read the way sendmail reads it: LF or CRLF line ends (stored as CRLF), a
line holding a lone ``.`` ends it unless ``-i``/``-oi``, a leading mbox ``From `` line is
dropped, Bcc: is removed, and a missing From:, Date: or Message-ID: is added (RFC 5322
§3.6 requires From and Date; Postfix and Sendmail add all three).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailstead.core.errors import InvalidName
from mailstead.core.types import Address

#: sysexits.h: what callers test (cron and PHP report it, mail(1) retries on 75).
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78


class SendmailError(Exception):
    """A failure with the sysexits status the caller sees and the one line it reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def usage(message: str) -> SendmailError:
    return SendmailError(EX_USAGE, message)


#: Flags without an argument that are accepted and change nothing: -v (verbose; one line
#: with the message's id is printed on stderr), -m (me too: the sender is never left out
#: of an alias here anyway), -n (no aliasing: aliases are resolved by the server's
#: router), -U (initial submission), -G (gateway submission).
IGNORED_FLAGS = frozenset("mnUG")
#: ``-o`` settings accepted and ignored: error modes (-oem, -oep, -oeq, -oew, -oee: errors
#: always go to stderr and the exit status), delivery modes (-odb, -odi, -odq, -odd: mail
#: is always stored or queued before the command returns), -om (me too), -oo (old-style
#: headers), -os/-osFalse (save on error), -oL (log level).
IGNORED_O = ("e", "d", "m", "o", "s", "L")
#: Options that take an argument (attached, ``-fbob``, or the next word, ``-f bob``).
_WITH_VALUE = frozenset("frFBNRVLhobOCXq")
#: Options with an argument that are accepted and ignored: -L tag (syslog tag), -h hops.
_IGNORED_WITH_VALUE = frozenset("Lh")
_DSN_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_ENVID = re.compile(r"^[!-~]{1,100}$")  # RFC 3461 §4.4: printable, at most 100 characters


@dataclass(frozen=True, slots=True)
class Request:
    """What the command line asked for."""

    recipients: tuple[str, ...] = ()
    extract: bool = False  # -t: recipients from To:, Cc: and Bcc:
    ignore_dots: bool = False  # -i / -oi: a lone "." is text, not the end
    sender: str | None = None  # -f / -r: the envelope sender ("" or "<>": the null sender)
    full_name: str | None = None  # -F: the name in an added From:
    verbose: bool = False  # -v
    notify: tuple[str, ...] = ()  # -N: DSN NOTIFY (RFC 3461 §4.1)
    ret: str | None = None  # -R: DSN RET, FULL or HDRS (RFC 3461 §4.3)
    envid: str | None = None  # -V: DSN ENVID (RFC 3461 §4.4)


def parse_command_line(argv: Sequence[str]) -> Request:
    """The sendmail command line (getopt rules, options permuted like glibc's getopt)."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    recipients: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            recipients.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            recipients.append(arg)
            continue
        pos = 1
        while pos < len(arg):
            letter = arg[pos]
            pos += 1
            if letter not in _WITH_VALUE:
                if letter not in "tiv" and letter not in IGNORED_FLAGS:
                    raise usage(f"unsupported option -{letter}")
                flags.add(letter)
                continue
            if pos < len(arg):
                value = arg[pos:]
            elif i < len(args):
                value, i = args[i], i + 1
            else:
                raise usage(f"option -{letter} needs a value")
            _option_with_value(letter, value, values, flags)
            break
    return _request(recipients, flags, values)


def _option_with_value(letter: str, value: str, values: dict[str, str], flags: set[str]) -> None:
    if letter in _IGNORED_WITH_VALUE:
        return
    if letter == "o":
        if value == "i":
            flags.add("i")
        elif not value.startswith(IGNORED_O):
            raise usage(f"unsupported option -o{value}")
        return
    if letter == "b":
        if value != "m":  # -bm: deliver mail, the default; -bs, -bp, -bi... are not offered
            raise usage(f"unsupported mode -b{value} (only -bm, delivering a message)")
        return
    if letter == "B":
        if value.upper() not in ("7BIT", "8BITMIME"):
            raise usage(f"-B takes 7BIT or 8BITMIME, not {value!r}")
        return  # the body type is read from the message itself
    if letter in "OCXq":
        raise usage(f"unsupported option -{letter}")
    if letter == "r":
        letter = "f"  # -r: the old name of -f
    if letter in values:
        raise usage(f"option -{letter} given twice")
    values[letter] = value


def _request(recipients: list[str], flags: set[str], values: dict[str, str]) -> Request:
    sender = values.get("f")
    if sender is not None:
        sender = sender.strip()
        if sender in ("", "<>"):
            sender = ""
        else:
            _address(sender, "-f")
    for recipient in recipients:
        _address(recipient, "recipient")
    notify: tuple[str, ...] = ()
    if "N" in values:
        words = tuple(w.strip().upper() for w in values["N"].split(","))
        if words != ("NEVER",) and not (words and set(words) <= _DSN_NOTIFY):
            raise usage(f"-N takes NEVER or a list of SUCCESS, FAILURE, DELAY, not "
                        f"{values['N']!r}")
        notify = words
    ret = values.get("R")
    if ret is not None:
        ret = ret.upper()
        if ret not in ("FULL", "HDRS"):
            raise usage(f"-R takes FULL or HDRS, not {values['R']!r}")
    envid = values.get("V")
    if envid is not None and not _ENVID.match(envid):
        raise usage("-V takes printable ASCII without spaces, at most 100 characters")
    return Request(
        recipients=tuple(recipients), extract="t" in flags, ignore_dots="i" in flags,
        sender=sender, full_name=values.get("F"), verbose="v" in flags, notify=notify,
        ret=ret, envid=envid,
    )


def _address(text: str, what: str) -> Address:
    try:
        return Address.parse(text)
    except InvalidName as exc:
        raise usage(f"{what}: {exc}") from None


# -- the message -----------------------------------------------------------------------------

_HEADER = re.compile(rb"^[!-9;-~]+:")
_ADDRESS_HEADERS = (b"to", b"cc", b"bcc")


@dataclass(slots=True)
class Header:
    """One header field: its name (lower-cased, for lookups) and its lines as read."""

    name: bytes
    lines: list[bytes] = field(default_factory=list)

    def value(self) -> str:
        """The unfolded value (RFC 5322 §2.2.3), undecodable octets replaced."""
        text = b" ".join(line.strip() for line in self.lines)
        return text.split(b":", 1)[1].strip().decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Prepared:
    """The message to store (CRLF lines) and the envelope recipients it names."""

    data: bytes
    recipients: tuple[str, ...]


def read_lines(raw: bytes, *, ignore_dots: bool) -> list[bytes]:
    """The input's lines without their ends; a lone "." ends it unless ``ignore_dots``."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final line end
    out: list[bytes] = []
    for line in lines:
        line = line.removesuffix(b"\r")
        if not ignore_dots and line == b".":
            break
        out.append(line)
    return out


def split_headers(lines: list[bytes]) -> tuple[list[Header], list[bytes]]:
    """The header fields and the body's lines. The header section ends at the first empty
    line or at the first line that is no header field (sendmail's rule, for scripts that
    pipe text without headers): that line is the body's first."""
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]  # an mbox separator, not a header (Postfix drops it too)
    headers: list[Header] = []
    for index, line in enumerate(lines):
        if line == b"":
            return headers, lines[index + 1:]
        if _HEADER.match(line):
            headers.append(Header(line.split(b":", 1)[0].lower(), [line]))
        elif line[:1] in (b" ", b"\t") and headers:
            headers[-1].lines.append(line)
        else:
            return headers, lines[index:]
    return headers, []


@dataclass(frozen=True, slots=True)
class Originator:
    """Who sends: the envelope sender (None: the null sender) and the From: to add."""

    sender: Address | None
    from_address: Address
    full_name: str | None
    hostname: str


def prepare(raw: bytes, request: Request, originator: Originator, now: datetime) -> Prepared:
    """The message as it is stored, and its recipients (the command line's, and with -t
    those of To:, Cc: and Bcc:, RFC 5322 §3.6.3). Raises SendmailError."""
    if b"\0" in raw:
        raise SendmailError(EX_DATAERR, "the message contains NUL bytes")
    headers, body = split_headers(read_lines(raw, ignore_dots=request.ignore_dots))
    recipients = list(request.recipients)
    if request.extract:
        for header in headers:
            if header.name in _ADDRESS_HEADERS:
                recipients.extend(_header_addresses(header))
    recipients = _unique(recipients)
    if not recipients:
        raise usage("no recipients: name them as arguments, or use -t with To:, Cc: or Bcc:")
    # Bcc: is removed whatever the mode (RFC 5322 §3.6.3: its recipients are not disclosed).
    kept = [h for h in headers if h.name != b"bcc"]
    names = {h.name for h in kept}
    added: list[bytes] = []
    if b"from" not in names:
        name = originator.full_name
        text = (email.utils.formataddr((name, str(originator.from_address)))
                if name else str(originator.from_address))
        added.append(b"From: " + text.encode("utf-8"))
    if b"date" not in names:
        added.append(b"Date: " + email.utils.format_datetime(now).encode())
    if b"message-id" not in names:
        added.append(b"Message-ID: " + email.utils.make_msgid(
            domain=originator.hostname).encode())
    out = [line for h in kept for line in h.lines] + added + [b""] + body
    return Prepared(b"\r\n".join(out) + b"\r\n", tuple(recipients))


def _header_addresses(header: Header) -> list[str]:
    found: list[str] = []
    for _, address in email.utils.getaddresses([header.value()]):
        if not address:
            continue  # a group's name ("undisclosed-recipients:;") or an empty field
        try:
            found.append(str(Address.parse(address)))
        except InvalidName as exc:
            raise SendmailError(
                EX_DATAERR, f"{header.name.decode().title()}: {exc}") from None
    return found


def _unique(addresses: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for address in addresses:
        if address.casefold() not in seen:
            seen.add(address.casefold())
            out.append(address)
    return out
