"""Each command's argument grammar, without a session: bytes in, a typed record or the exact
reply out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.core.types import Address
from mailstead.smtp import grammar
from mailstead.smtp.codes import SMTPError
from mailstead.smtp.grammar import (
    AuthArgs,
    BdatArgs,
    BodyType,
    HeloArgs,
    MailArgs,
    Notify,
    RcptArgs,
    Ret,
    VrfyArgs,
)
from mailstead.smtp.protocol import ProtocolError


@dataclass(frozen=True)
class Context:
    hostname: str = "mx.example"
    max_message_size: int = 1000
    smtputf8: bool = False


PLAIN = Context()
UTF8 = Context(smtputf8=True)
TOO_BIG = (552, "5.3.4", "Message size exceeds fixed maximum message size")


def refused(parse: Callable[[bytes, Any], object], argument: bytes,
            context: Context = PLAIN) -> tuple[int, str, str]:
    """The reply a grammar refuses ``argument`` with."""
    with pytest.raises(SMTPError) as failure:
        parse(argument, context)
    reply = failure.value.reply
    return reply.code, reply.enhanced, reply.lines[0]


# -- MAIL ------------------------------------------------------------------------------------


def test_mail_record() -> None:
    args = grammar.parse_mail(
        b"from: <a@Remote.Example> size=500 BODY=8bitmime RET=hdrs ENVID=QQ+2B314 AUTH=<>",
        PLAIN,
    )
    assert args == MailArgs(Address("a", "remote.example"), 500, BodyType.EIGHT_BIT_MIME,
                            False, Ret.HDRS, "QQ+314", "<>")
    assert grammar.parse_mail(b"FROM:<>", PLAIN) == MailArgs(None)  # RFC 5321 §4.5.5


def test_envid_escapes_are_utf8_octets() -> None:
    """RFC 3461 §4: ``+XX`` is an octet. The outbound client encodes ENVID again with the
    same codec (mailstead.wire.smtp), so what arrives as ``+C3+A9`` leaves as ``+C3+A9``."""
    args = grammar.parse_mail(b"FROM:<a@b.example> ENVID=caf+C3+A9", PLAIN)
    assert args.envid == "café"
    for bad in (b"ENVID=a+zz", b"ENVID=a=b"):  # the session answers these 501 5.5.2
        with pytest.raises(ProtocolError):
            grammar.parse_mail(b"FROM:<a@b.example> " + bad, PLAIN)


def test_mail_smtputf8() -> None:
    args = grammar.parse_mail("FROM:<jörg@bücher.example> SMTPUTF8".encode(), PLAIN)
    assert args.smtputf8 and args.sender == Address("jörg", "bücher.example")
    assert refused(grammar.parse_mail, "FROM:<jörg@bücher.example>".encode()) == (
        553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
    assert refused(grammar.parse_mail, "FROM:<a@b.example> ENVID=é".encode()) == (
        553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
    assert refused(grammar.parse_mail, b"FROM:<a@b.example> SMTPUTF8=yes") == (
        501, "5.5.4", "SMTPUTF8 takes no value")


@pytest.mark.parametrize(
    ("argument", "reply"),
    [
        (b"TO:<a@b.example>", (501, "5.5.4", "Syntax: MAIL FROM:<address>")),
        (b"FROM:a@b.example", (501, "5.1.7", "Bad sender address syntax")),
        (b"FROM:<@route:a@b.example>", (501, "5.1.7", "Bad sender address syntax")),
        (b"FROM:<a@b.example> SIZE=ten", (501, "5.5.4", "Syntax: SIZE=<number>")),
        (b"FROM:<a@b.example> SIZE", (501, "5.5.4", "Syntax: SIZE=<number>")),
        (b"FROM:<a@b.example> SIZE=1001", TOO_BIG),
        (b"FROM:<a@b.example> BODY=BINARYMIME", (501, "5.5.4", "BODY must be 7BIT or 8BITMIME")),
        (b"FROM:<a@b.example> BODY", (501, "5.5.4", "BODY must be 7BIT or 8BITMIME")),
        (b"FROM:<a@b.example> RET=ALL", (501, "5.5.4", "RET must be FULL or HDRS")),
        (b"FROM:<a@b.example> ENVID=" + b"x" * 101, (501, "5.5.4", "Bad ENVID")),
        (b"FROM:<a@b.example> AUTH", (501, "5.5.4", "AUTH needs a value")),
        (b"FROM:<a@b.example> FOO=BAR", (555, "5.5.4", "Unsupported MAIL parameter")),
        # The first fault found is the one answered: the limit before BODY's syntax.
        (b"FROM:<a@b.example> SIZE=5000 BODY=X", TOO_BIG),
    ],
)
def test_mail_refusals(argument: bytes, reply: tuple[int, str, str]) -> None:
    assert refused(grammar.parse_mail, argument) == reply


def test_mail_size_limit_is_the_sessions() -> None:
    assert grammar.parse_mail(b"FROM:<a@b.example> SIZE=1000", PLAIN).size == 1000
    unlimited = Context(max_message_size=0)
    assert grammar.parse_mail(b"FROM:<a@b.example> SIZE=99999999", unlimited).size == 99999999


def test_mail_wire_primitive_errors_are_protocol_errors() -> None:
    # The session answers these with its generic 501 5.5.4.
    for argument in (b"FROM:<a@b.example> SIZE=1 SIZE=2", b"FROM:\xff<a@b.example>",
                     b"FROM:<a@b.example> ENVID=a+zz", b"FROM:<bad> X==1"):
        with pytest.raises(ProtocolError):
            grammar.parse_mail(argument, PLAIN)


# -- RCPT ------------------------------------------------------------------------------------


def test_rcpt_record() -> None:
    args = grammar.parse_rcpt(
        b"TO: <Bob@Example.ORG> notify=success,delay ORCPT=rfc822;bob@example.org", PLAIN)
    assert args == RcptArgs(Address("Bob", "example.org"), (Notify.SUCCESS, Notify.DELAY),
                            "rfc822;bob@example.org")
    assert grammar.parse_rcpt(b"TO:<a@b.example> NOTIFY=never", PLAIN).notify == (Notify.NEVER,)


def test_rcpt_postmaster_is_the_sessions_hostname() -> None:
    # RFC 5321 §4.1.1.3: <Postmaster> without a domain.
    args = grammar.parse_rcpt(b"TO:<Postmaster>", Context(hostname="MX.Example"))
    assert args.recipient == Address("postmaster", "mx.example")


def test_rcpt_utf8_only_in_an_smtputf8_transaction() -> None:
    utf8_param = "TO:<a@b.example> ORCPT=rfc822;ü@x".encode()
    with pytest.raises(ProtocolError):
        grammar.parse_rcpt(utf8_param, PLAIN)
    assert grammar.parse_rcpt(utf8_param, UTF8).orcpt == "rfc822;ü@x"
    utf8_path = "TO:<jörg@example.org>".encode()
    assert refused(grammar.parse_rcpt, utf8_path) == (553, "5.6.7",
                                                      "Non-ASCII address needs SMTPUTF8")
    assert grammar.parse_rcpt(utf8_path, UTF8).recipient == Address("jörg", "example.org")


@pytest.mark.parametrize(
    ("argument", "reply"),
    [
        (b"<a@b.example>", (501, "5.5.4", "Syntax: RCPT TO:<address>")),
        (b"TO:<>", (501, "5.1.3", "Bad recipient address syntax")),
        (b"TO:<a@b.example>x", (501, "5.1.3", "Bad recipient address syntax")),
        (b"TO:<a@b.example> NOTIFY", (501, "5.5.4", "NOTIFY needs a value")),
        (b"TO:<a@b.example> NOTIFY=NEVER,SUCCESS",
         (501, "5.5.4", "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")),
        (b"TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS",
         (501, "5.5.4", "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")),
        (b"TO:<a@b.example> ORCPT=" + b"x" * 501, (501, "5.5.4", "Bad ORCPT")),
        (b"TO:<a@b.example> ORCPT=nosemicolon", (501, "5.5.4", "ORCPT must be addr-type;address")),
        (b"TO:<a@b.example> X=1", (555, "5.5.4", "Unsupported RCPT parameter")),
    ],
)
def test_rcpt_refusals(argument: bytes, reply: tuple[int, str, str]) -> None:
    assert refused(grammar.parse_rcpt, argument) == reply


# -- BDAT ------------------------------------------------------------------------------------


def test_bdat_record() -> None:
    assert grammar.parse_bdat(b"100", PLAIN) == BdatArgs(100, last=False)
    assert grammar.parse_bdat(b"0 last", PLAIN) == BdatArgs(0, last=True)


@pytest.mark.parametrize("argument", [b"", b"x", b"10 MORE", b"1 LAST x", b"-1", b"1" * 20,
                                      "١٢".encode(), b"\xff"])
def test_bad_bdat_ends_the_session(argument: bytes) -> None:
    # RFC 3030 §2: without a size the next command cannot be found in the byte stream.
    with pytest.raises(SMTPError) as failure:
        grammar.parse_bdat(argument, PLAIN)
    assert failure.value.close
    assert failure.value.reply.encode() == b"501 5.5.4 Syntax: BDAT size [LAST]\r\n"


# -- the others ------------------------------------------------------------------------------


def test_helo_name() -> None:
    assert grammar.parse_helo(b"client.example extra words", PLAIN) == HeloArgs("client.example")
    assert grammar.parse_helo(b"x" * 300, PLAIN) == HeloArgs("x" * 255)
    assert grammar.parse_helo(b"\xffjunk", PLAIN) == HeloArgs("\ufffdjunk")  # recorded, not judged
    assert refused(grammar.parse_helo, b"") == (501, "5.5.4", "Syntax: EHLO hostname")


def test_auth() -> None:
    assert grammar.parse_auth(b"PLAIN", PLAIN) == AuthArgs("PLAIN")
    assert grammar.parse_auth(b"PLAIN AGEAYg==", PLAIN) == AuthArgs("PLAIN", b"AGEAYg==")
    for bad in (b"", b"PLAIN a b", b"PLAIN  a"):
        assert refused(grammar.parse_auth, bad) == (
            501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")


def test_vrfy() -> None:
    assert grammar.parse_vrfy(b"alice", PLAIN) == VrfyArgs("alice")
    assert refused(grammar.parse_vrfy, b"") == (501, "5.5.4", "Syntax: VRFY address")


@pytest.mark.parametrize(("parse", "verb"), [(grammar.parse_rset, "RSET"),
                                             (grammar.parse_data, "DATA"),
                                             (grammar.parse_starttls, "STARTTLS")])
def test_commands_without_an_argument(parse: Callable[[bytes, Any], None], verb: str) -> None:
    assert parse(b"", PLAIN) is None
    assert refused(parse, b"now") == (501, "5.5.4", f"{verb} takes no arguments")


def test_ignored_arguments() -> None:
    assert grammar.ignore_argument(b"anything at all \xff", PLAIN) is None


def test_records_are_immutable() -> None:
    args = grammar.parse_mail(b"FROM:<a@b.example>", PLAIN)
    with pytest.raises(AttributeError):
        args.size = 5  # type: ignore[misc]


GRAMMARS: list[tuple[Callable[[bytes, Any], object], type]] = [
    (grammar.parse_helo, HeloArgs), (grammar.parse_mail, MailArgs),
    (grammar.parse_rcpt, RcptArgs), (grammar.parse_bdat, BdatArgs),
    (grammar.parse_auth, AuthArgs), (grammar.parse_vrfy, VrfyArgs),
    (grammar.parse_rset, type(None)), (grammar.parse_data, type(None)),
    (grammar.parse_starttls, type(None)), (grammar.ignore_argument, type(None)),
]


@given(st.binary(max_size=80) | st.text(max_size=60).map(str.encode), st.booleans(),
       st.integers(min_value=0, max_value=2000))
def test_grammars_only_ever_refuse_with_a_reply(argument: bytes, utf8: bool, limit: int) -> None:
    """Whatever a client sends, a grammar gives its record or an error the session turns
    into a reply; nothing else escapes."""
    context = Context(max_message_size=limit, smtputf8=utf8)
    for parse, record in GRAMMARS:
        try:
            result = parse(argument, context)
        except (SMTPError, ProtocolError):
            continue
        assert type(result) is record
