"""RCPT TO (RFC 5321 §4.1.1.3) with the DSN parameters NOTIFY and ORCPT (RFC 3461 §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.delivery.router import DeliveryError
from mailstead.smtp import codes
from mailstead.smtp.address import AddressError, parse_forward_path, split_path
from mailstead.smtp.codes import Reply, SMTPError, error
from mailstead.smtp.commands.mail import strip_keyword
from mailstead.smtp.protocol import Command, parse_params
from mailstead.smtp.session import State

if TYPE_CHECKING:
    from mailstead.smtp.session import Session

MAX_ORCPT = 500  # RFC 3461 §4.2
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def parse_notify(value: str | None) -> tuple[str, ...]:
    """RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY."""
    if value is None:
        raise error(501, "5.5.4", "NOTIFY needs a value")
    items = tuple(v.upper() for v in value.split(","))
    if items == ("NEVER",):
        return items
    if not items or len(set(items)) != len(items) or not set(items) <= _NOTIFY:
        raise error(501, "5.5.4", "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")
    return items


def parse_orcpt(value: str | None) -> str:
    """RFC 3461 §4.2: ``addr-type ";" xtext``, kept as sent for relaying onward."""
    if value is None or len(value) > MAX_ORCPT:
        raise error(501, "5.5.4", "Bad ORCPT")
    kind, sep, address = value.partition(";")
    if not sep or not kind or not address or not kind.replace("-", "").isalnum():
        raise error(501, "5.5.4", "ORCPT must be addr-type;address")
    return value


async def handle(session: Session, command: Command) -> None:
    delivery = session.delivery
    assert delivery is not None and session.envelope is not None  # state MAIL or RCPT
    try:
        path_text, param_text = split_path(strip_keyword(command, "TO:"))
        params = parse_params(param_text, utf8=session.envelope.smtputf8)
        path = parse_forward_path(path_text, session.config.hostname)
    except AddressError as exc:
        raise SMTPError(Reply(501, "5.1.3", "Bad recipient address syntax"),
                        log=str(exc)) from None
    if not path.is_ascii and not session.envelope.smtputf8:
        raise error(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")  # RFC 6531 §3.4
    notify = parse_notify(params["NOTIFY"]) if "NOTIFY" in params else ()
    orcpt = parse_orcpt(params["ORCPT"]) if "ORCPT" in params else None
    unknown = set(params) - {"NOTIFY", "ORCPT"}
    if unknown:
        raise SMTPError(Reply(555, "5.5.4", "Unsupported RCPT parameter"),
                        log=f"parameters {sorted(unknown)}")
    if delivery.recipient_count >= session.config.max_recipients:
        # RFC 5321 §4.5.3.1.8: 452 lets the client send the rest in another transaction.
        raise error(452, "4.5.3", "Too many recipients")
    assert path.address is not None
    try:
        await delivery.add_rcpt(path.address, notify, orcpt)
    except DeliveryError as exc:
        raise SMTPError(Reply(exc.code, exc.enhanced, exc.text),
                        log=f"RCPT <{path}> refused: {exc}") from None
    session.state = State.RCPT
    session.reply(codes.RECIPIENT_OK)
