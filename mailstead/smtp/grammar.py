"""Each command's argument grammar: the bytes after the verb -> one immutable, typed record.

The session runs a command's grammar once, after the state check and before the handler,
so a handler receives a record (:class:`MailArgs`, :class:`RcptArgs`, ...) and never picks
its argument apart. Commands without an argument have a grammar that returns ``None``,
either refusing an argument (RSET, DATA, STARTTLS: ``501``) or ignoring it (NOOP, QUIT,
HELP, EXPN), as they always have.

A grammar error is an :class:`SMTPError` carrying the exact reply (``501``, ``553``,
``555`` ...), or a :class:`ProtocolError` from the shared wire primitives, which the
session answers with the generic ``501 5.5.4``. The order of the checks is the order of
the replies a client sees when its command has several faults, so it is kept as is.

The records are named tuples rather than frozen dataclasses: one is made for every MAIL,
RCPT and BDAT on the receive path, and a frozen dataclass costs several times as much to
build.

Three checks depend on the session, which the grammar reads through :class:`Context`: SIZE
against the configured limit (RFC 1870 §6: refused at MAIL, ``552``), UTF-8 in RCPT
parameters only in an SMTPUTF8 transaction (RFC 6531 §3.3), and the domain that a bare
``<Postmaster>`` means (RFC 5321 §4.1.1.3). Pure functions otherwise: no I/O, no asyncio.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple, Protocol

from mailstead.core.types import Address
from mailstead.smtp import codes
from mailstead.smtp.address import (
    AddressError,
    parse_forward_path,
    parse_reverse_path,
    split_path,
)
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.protocol import ProtocolError, decode_argument, parse_params
from mailstead.wire.smtp import WireError, xtext_decode

MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2
MAX_SIZE_DIGITS = 20  # a SIZE= value longer than this is not a size
MAX_CHUNK_DIGITS = 15  # nor a BDAT chunk size


class Context(Protocol):
    """What the grammars need to know of the session (the session is one)."""

    @property
    def hostname(self) -> str:
        """The domain a bare ``<Postmaster>`` belongs to."""
        ...

    @property
    def max_message_size(self) -> int:
        """The SIZE limit; 0 for none."""
        ...

    @property
    def smtputf8(self) -> bool:
        """The current transaction's MAIL carried SMTPUTF8."""
        ...


# -- variants ---------------------------------------------------------------------------------


class BodyType(StrEnum):
    """MAIL's BODY= parameter (RFC 6152 §2); BINARYMIME (RFC 3030 §3) is not offered."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"


class Ret(StrEnum):
    """MAIL's RET= parameter (RFC 3461 §4.3): what a bounce returns of the message."""

    FULL = "FULL"
    HDRS = "HDRS"


class Notify(StrEnum):
    """RCPT's NOTIFY= parameter (RFC 3461 §4.1): when a DSN is wanted."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


# The values a client may send, upper-cased, to their members (a dict lookup, not an Enum
# call, for parameters most messages carry).
_BODY_TYPES = {member.value: member for member in BodyType}
_RETS = {member.value: member for member in Ret}
_NOTIFY_WHEN = {member.value: member for member in (Notify.SUCCESS, Notify.FAILURE, Notify.DELAY)}


# -- records ----------------------------------------------------------------------------------


class HeloArgs(NamedTuple):
    """HELO/EHLO (RFC 5321 §4.1.1.1): the name the client gave, as given (first word,
    at most 255 characters). It is not judged (many clients send junk); it is only
    recorded in the Received: header."""

    domain: str


class MailArgs(NamedTuple):
    """MAIL FROM (RFC 5321 §4.1.1.2) and its parameters."""

    sender: Address | None  # None: the null reverse-path <> (RFC 5321 §4.5.5)
    size: int = 0  # SIZE= (RFC 1870); 0 when not declared
    body: BodyType | None = None  # BODY= (RFC 6152)
    smtputf8: bool = False  # SMTPUTF8 (RFC 6531 §3.4)
    ret: Ret | None = None  # RET= (RFC 3461 §4.3)
    envid: str | None = None  # ENVID= (RFC 3461 §4.4), xtext decoded
    auth: str | None = None  # AUTH= (RFC 4954 §5), as sent: accepted, never trusted


class RcptArgs(NamedTuple):
    """RCPT TO (RFC 5321 §4.1.1.3) and the DSN parameters (RFC 3461 §4)."""

    recipient: Address  # <Postmaster> already made postmaster@<our hostname>
    notify: tuple[Notify, ...] = ()  # NOTIFY=; empty when not given
    orcpt: str | None = None  # ORCPT=, kept as sent for relaying onward


class BdatArgs(NamedTuple):
    """BDAT (RFC 3030 §2): the chunk size and whether this is the LAST chunk."""

    size: int
    last: bool


class AuthArgs(NamedTuple):
    """AUTH (RFC 4954 §4): the SASL mechanism name and the initial response, if sent."""

    mechanism: str
    initial_response: bytes | None = None


class VrfyArgs(NamedTuple):
    """VRFY (RFC 5321 §4.1.1.6): the string to verify (never looked up, see vrfy)."""

    target: str


# -- grammars ---------------------------------------------------------------------------------


def _strip_keyword(argument: bytes, verb: str, keyword: str) -> str:
    """``FROM:<a@b> X=Y`` -> ``<a@b> X=Y``; the keyword is case-insensitive."""
    text = decode_argument(argument)
    if text[: len(keyword)].upper() != keyword:
        raise error(501, "5.5.4", f"Syntax: {verb} {keyword}<address>")
    return text[len(keyword) :]


def parse_helo(argument: bytes, context: Context) -> HeloArgs:
    """HELO and EHLO share it, and the reply to a missing name says EHLO for both."""
    name = argument.decode("utf-8", "replace").strip()
    if not name:
        raise error(501, "5.5.4", "Syntax: EHLO hostname")
    return HeloArgs(name.split(" ", 1)[0][:255])


def parse_mail(argument: bytes, context: Context) -> MailArgs:
    """``FROM:<reverse-path> [SP mail-parameters]`` (RFC 5321 §4.1.2)."""
    try:
        path_text, param_text = split_path(_strip_keyword(argument, "MAIL", "FROM:"))
        params = parse_params(param_text, utf8=True)
        path = parse_reverse_path(path_text)
    except AddressError as exc:
        raise SMTPError(Reply(501, "5.1.7", "Bad sender address syntax"), log=str(exc)) from None

    smtputf8 = "SMTPUTF8" in params
    if smtputf8 and params["SMTPUTF8"] is not None:
        raise error(501, "5.5.4", "SMTPUTF8 takes no value")
    if not smtputf8 and (not path.is_ascii or not param_text.isascii()):
        # RFC 6531 §3.4: UTF-8 envelopes need the SMTPUTF8 parameter.
        raise error(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")

    size = 0
    if "SIZE" in params:  # RFC 1870 §6
        value = params["SIZE"] or ""
        if not value.isdigit() or not value.isascii() or len(value) > MAX_SIZE_DIGITS:
            raise error(501, "5.5.4", "Syntax: SIZE=<number>")
        size = int(value)
        limit = context.max_message_size
        if limit and size > limit:
            raise SMTPError(codes.SIZE_EXCEEDED)

    body = None
    if "BODY" in params:  # RFC 6152 §2
        body = _BODY_TYPES.get((params["BODY"] or "").upper())
        if body is None:
            raise error(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")

    ret = None
    if "RET" in params:  # RFC 3461 §4.3
        ret = _RETS.get((params["RET"] or "").upper())
        if ret is None:
            raise error(501, "5.5.4", "RET must be FULL or HDRS")

    envid = None
    if "ENVID" in params:  # RFC 3461 §4.4
        raw = params["ENVID"]
        if raw is None or len(raw) > MAX_ENVID:
            raise error(501, "5.5.4", "Bad ENVID")
        try:
            envid = xtext_decode(raw)  # the same codec encodes it again to the next hop
        except WireError as exc:
            raise ProtocolError(str(exc)) from None

    auth = params.get("AUTH")
    if "AUTH" in params and auth is None:
        raise error(501, "5.5.4", "AUTH needs a value")

    unknown = set(params) - {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}
    if unknown:
        # RFC 5321 §4.1.1.11: unrecognised parameters get 555.
        raise SMTPError(Reply(555, "5.5.4", "Unsupported MAIL parameter"),
                        log=f"parameters {sorted(unknown)}")
    return MailArgs(path.address, size, body, smtputf8, ret, envid, auth)


def parse_notify(value: str | None) -> tuple[Notify, ...]:
    """RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY."""
    if value is None:
        raise error(501, "5.5.4", "NOTIFY needs a value")
    items = tuple(v.upper() for v in value.split(","))
    if items == ("NEVER",):
        return (Notify.NEVER,)
    if len(set(items)) != len(items) or not set(items) <= _NOTIFY_WHEN.keys():
        raise error(501, "5.5.4", "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")
    return tuple(_NOTIFY_WHEN[item] for item in items)


def parse_orcpt(value: str | None) -> str:
    """RFC 3461 §4.2: ``addr-type ";" xtext``, kept as sent for relaying onward."""
    if value is None or len(value) > MAX_ORCPT:
        raise error(501, "5.5.4", "Bad ORCPT")
    kind, sep, address = value.partition(";")
    if not sep or not kind or not address or not kind.replace("-", "").isalnum():
        raise error(501, "5.5.4", "ORCPT must be addr-type;address")
    return value


def parse_rcpt(argument: bytes, context: Context) -> RcptArgs:
    """``TO:<forward-path> [SP rcpt-parameters]`` (RFC 5321 §4.1.2)."""
    try:
        path_text, param_text = split_path(_strip_keyword(argument, "RCPT", "TO:"))
        params = parse_params(param_text, utf8=context.smtputf8)
        path = parse_forward_path(path_text, context.hostname)
    except AddressError as exc:
        raise SMTPError(Reply(501, "5.1.3", "Bad recipient address syntax"),
                        log=str(exc)) from None
    if not path.is_ascii and not context.smtputf8:
        raise error(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")  # RFC 6531 §3.4
    notify = parse_notify(params["NOTIFY"]) if "NOTIFY" in params else ()
    orcpt = parse_orcpt(params["ORCPT"]) if "ORCPT" in params else None
    unknown = set(params) - {"NOTIFY", "ORCPT"}
    if unknown:
        raise SMTPError(Reply(555, "5.5.4", "Unsupported RCPT parameter"),
                        log=f"parameters {sorted(unknown)}")
    assert path.address is not None  # a forward-path is never the null path
    return RcptArgs(path.address, notify, orcpt)


BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT size [LAST]")


def parse_bdat(argument: bytes, context: Context) -> BdatArgs:
    """``BDAT chunk-size [SP end-marker]``, chunk-size is 1*DIGIT (RFC 3030 §2).

    Without a size the next command cannot be found in the byte stream, so a bad BDAT
    ends the session (``close``)."""
    try:
        parts = decode_argument(argument).split()
    except ProtocolError:
        raise SMTPError(BDAT_SYNTAX, close=True, log="BDAT argument is not UTF-8") from None
    if (not parts or len(parts) > 2 or not parts[0].isdigit() or not parts[0].isascii()
            or len(parts[0]) > MAX_CHUNK_DIGITS):
        raise SMTPError(BDAT_SYNTAX, close=True, log="BDAT needs a chunk size")
    last = False
    if len(parts) == 2:
        if parts[1].upper() != "LAST":
            raise SMTPError(BDAT_SYNTAX, close=True, log="BDAT end marker must be LAST")
        last = True
    return BdatArgs(int(parts[0]), last)


def parse_auth(argument: bytes, context: Context) -> AuthArgs:
    """``AUTH mechanism [initial-response]`` (RFC 4954 §4); the mechanism is looked up by
    the handler (an unknown one is ``504``, not a syntax error)."""
    parts = decode_argument(argument).split(" ")
    if not parts[0] or len(parts) > 2:
        raise error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
    return AuthArgs(parts[0], parts[1].encode() if len(parts) == 2 else None)


def parse_vrfy(argument: bytes, context: Context) -> VrfyArgs:
    if not argument:
        raise error(501, "5.5.4", "Syntax: VRFY address")
    return VrfyArgs(argument.decode("utf-8", "replace"))


def parse_rset(argument: bytes, context: Context) -> None:
    """RFC 5321 §4.1.1.5: ``RSET CRLF``."""
    if argument:
        raise error(501, "5.5.4", "RSET takes no arguments")


def parse_data(argument: bytes, context: Context) -> None:
    """RFC 5321 §4.1.1.4: ``DATA CRLF``."""
    if argument:
        raise error(501, "5.5.4", "DATA takes no arguments")


def parse_starttls(argument: bytes, context: Context) -> None:
    """RFC 3207 §4: ``STARTTLS CRLF``."""
    if argument:
        raise error(501, "5.5.4", "STARTTLS takes no arguments")


def ignore_argument(argument: bytes, context: Context) -> None:
    """NOOP (RFC 5321 §4.1.1.9: any argument is ignored), HELP, QUIT and EXPN, whose
    arguments change nothing of what we answer."""
    return None


__all__ = [
    "AuthArgs",
    "BdatArgs",
    "BodyType",
    "Context",
    "HeloArgs",
    "MailArgs",
    "Notify",
    "RcptArgs",
    "Ret",
    "VrfyArgs",
    "ignore_argument",
    "parse_auth",
    "parse_bdat",
    "parse_data",
    "parse_helo",
    "parse_mail",
    "parse_notify",
    "parse_orcpt",
    "parse_rcpt",
    "parse_rset",
    "parse_starttls",
    "parse_vrfy",
]
