"""MAIL FROM (RFC 5321 §4.1.1.2) with SIZE, BODY, SMTPUTF8, RET, ENVID and AUTH parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.delivery.deliver import Envelope
from mailstead.smtp import codes
from mailstead.smtp.address import AddressError, parse_reverse_path, split_path
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.protocol import Command, decode_xtext, parse_params
from mailstead.smtp.session import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

MAX_ENVID = 100  # RFC 3461 §4.4


def strip_keyword(command: Command, keyword: str) -> str:
    """``FROM:<a@b> X=Y`` -> ``<a@b> X=Y``; the keyword is case-insensitive."""
    text = command.text()
    if text[: len(keyword)].upper() != keyword:
        raise error(501, "5.5.4", f"Syntax: {command.verb} {keyword}<address>")
    return text[len(keyword) :]


async def handle(session: Session, command: Command) -> None:
    if session.config.submission and session.user is None:
        # RFC 4954 §6 / RFC 3207 §4: submission needs a login, and a login needs TLS.
        if session.offers_starttls and not session.offers_auth:
            raise SMTPError(codes.TLS_REQUIRED)
        raise SMTPError(codes.AUTH_REQUIRED)
    try:
        path_text, param_text = split_path(strip_keyword(command, "FROM:"))
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
        if not value.isdigit() or not value.isascii() or len(value) > 20:
            raise error(501, "5.5.4", "Syntax: SIZE=<number>")
        size = int(value)
        limit = session.config.max_message_size
        if limit and size > limit:
            raise SMTPError(codes.SIZE_EXCEEDED)

    body = params.get("BODY")  # RFC 6152 §2; BINARYMIME is not offered
    if "BODY" in params:
        if body is None or body.upper() not in ("7BIT", "8BITMIME"):
            raise error(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
        body = body.upper()

    ret = params.get("RET")  # RFC 3461 §4.3
    if "RET" in params:
        if ret is None or ret.upper() not in ("FULL", "HDRS"):
            raise error(501, "5.5.4", "RET must be FULL or HDRS")
        ret = ret.upper()

    envid = None
    if "ENVID" in params:  # RFC 3461 §4.4
        raw = params["ENVID"]
        if raw is None or len(raw) > MAX_ENVID:
            raise error(501, "5.5.4", "Bad ENVID")
        envid = decode_xtext(raw)

    if "AUTH" in params and params["AUTH"] is None:
        raise error(501, "5.5.4", "AUTH needs a value")  # RFC 4954 §5: accepted, not trusted

    unknown = set(params) - {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}
    if unknown:
        # RFC 5321 §4.1.1.11: unrecognised parameters get 555.
        raise SMTPError(Reply(555, "5.5.4", "Unsupported MAIL parameter"),
                        log=f"parameters {sorted(unknown)}")

    if session.user is not None:
        # Authenticated senders may only use their own addresses (no spoofing by users).
        owned = path.address is not None and await session.deliverer.router.owns(
            session.user.id, path.address
        )
        if not owned:
            raise SMTPError(
                Reply(553, "5.7.1", "Sender address not owned by the authenticated user"),
                log=f"{session.user.address} tried MAIL FROM:<{path}>",
            )

    envelope = Envelope(path.address, body, smtputf8, ret, envid, size)
    session.envelope = envelope
    session.delivery = session.deliverer.start(
        envelope, session.trace(), relay_allowed=session.user is not None
    )
    session.state = State.MAIL
    session.reply(codes.SENDER_OK)

