"""Delivery status notifications (RFC 3464), pure: data in, message bytes out.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 6522) with three
parts:

1. a human-readable explanation naming each recipient and the reason, quoting the
   remote server's reply where there was one;
2. the machine-readable ``message/delivery-status`` part (RFC 3464 §2): per-message
   fields, then one block per recipient with Action, Status and, for remote replies,
   Remote-MTA and ``Diagnostic-Code: smtp; ...``;
3. the original message's headers (``text/rfc822-headers``), or the whole message
   (``message/rfc822``) when the sender asked for ``RET=FULL`` (RFC 3461 §4.3) and the
   report is a failure. Delay and success reports never carry the body (RFC 3461 §4.3).

Messages whose headers are not ASCII (SMTPUTF8 mail) use the RFC 6533 types
``message/global-headers``, ``message/global`` and ``message/global-delivery-status``.

The report comes from ``MAILER-DAEMON@<hostname>`` and is sent with the null reverse-path;
it carries ``Auto-Submitted: auto-replied`` (RFC 3834 §5) so no auto-responder answers it.
Whether a DSN is owed at all (NOTIFY, null sender) is the scheduler's decision.
"""

from __future__ import annotations

import email.utils
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mailstead.wire.smtp import WireError, xtext_decode

#: RFC 3461 §4.3 leaves RET=FULL's size to the MTA; beyond this only headers go back.
MAX_RETURNED_BODY = 10 * 1024 * 1024


class DSNAction(StrEnum):
    """RFC 3464 §2.3.3: what happened to a recipient, as the report's Action field says."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"  # passed to a server that does not send DSNs itself
    EXPANDED = "expanded"  # delivered to a list, which sends on


@dataclass(frozen=True, slots=True)
class DSNRecipient:
    """What the report says about one recipient.

    ``reply`` is the remote server's reply (``550 5.1.1 No such user``) when one caused
    this outcome; ``reason`` is our own explanation, shown to the human either way.
    """

    recipient: str
    action: DSNAction
    status: str
    reason: str
    reply: str | None = None
    remote_mta: str | None = None
    original_recipient: str | None = None  # the ORCPT parameter: "rfc822;xtext"
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", DSNAction(self.action))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _address_field(address: str) -> str:
    """``rfc822;addr``, or ``utf-8;addr`` for a non-ASCII address (RFC 6533 §3)."""
    return f"rfc822;{address}" if address.isascii() else f"utf-8;{address}"


def _orcpt_field(orcpt: str) -> str:
    """RFC 3464 §2.3.1: ``addr-type;address`` with the xtext of RFC 3461 §4.2 decoded.

    Decoded only when the result is fit for a header field: xtext can encode any octet,
    and ``+0D+0A`` decoded into the DSN would let the sender of the original write fields
    (or a whole forged part) into a report that goes to an unverified address. Anything
    else stays in the xtext the sender wrote, which is printable ASCII.
    """
    addr_type, sep, value = orcpt.partition(";")
    if not sep:
        addr_type, value = "rfc822", orcpt
    addr_type, value = _printable(addr_type), _printable(value)
    try:
        decoded = xtext_decode(value)
    except WireError:
        return f"{addr_type};{value}"  # not valid xtext: shown as the sender wrote it
    if any(_is_control(c) for c in decoded):
        return f"{addr_type};{value}"
    return f"{addr_type};{decoded}"


def _is_control(char: str) -> bool:
    """C0 (tab included), DEL and C1: nothing a DSN field may carry raw."""
    return ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0


def _printable(text: str) -> str:
    """``text`` without control characters (a stored ORCPT should hold none; defence in
    depth for a row written by an older version or by hand)."""
    return "".join(c for c in text if not _is_control(c))


def header_section(message: bytes) -> bytes:
    """The original's header section, CRLF-terminated, without the blank line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = message.find(sep)
        if end >= 0:
            return message[: end + len(sep) // 2]
    return message if message.endswith(b"\n") else message + b"\r\n"


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _subject(recipients: Sequence[DSNRecipient]) -> str:
    actions = {r.action for r in recipients}
    if DSNAction.FAILED in actions:
        return "Undelivered Mail Returned to Sender"
    if DSNAction.DELAYED in actions:
        return "Delayed Mail (still being retried)"
    if DSNAction.RELAYED in actions and DSNAction.DELIVERED not in actions:
        return "Relayed Mail Report"
    return "Successful Mail Delivery Report"


def _human_text(hostname: str, recipients: Sequence[DSNRecipient]) -> str:
    lines = [f"This is the mail system at host {hostname}.", ""]
    groups = [
        (DSNAction.FAILED,
         "Your message could not be delivered to the following recipients. "
         "This is a permanent error; the mail system gave up:"),
        (DSNAction.DELAYED,
         "Your message could not be delivered yet to the following recipients. "
         "The mail system will keep trying; you do not need to resend it:"),
        (DSNAction.DELIVERED, "Your message was delivered to the following recipients:"),
        (DSNAction.RELAYED,
         "Your message was relayed to the following recipients' servers, which "
         "do not send delivery notifications:"),
        (DSNAction.EXPANDED, "Your message was delivered to the following list addresses:"),
    ]
    for action, intro in groups:
        chosen = [r for r in recipients if r.action is action]
        if not chosen:
            continue
        lines += [intro, ""]
        for r in chosen:
            lines.append(f"<{r.recipient}>: {_one_line(r.reason)}")
            if r.will_retry_until is not None:
                until = email.utils.format_datetime(r.will_retry_until)
                lines.append(f"    (will retry until {until})")
        lines.append("")
    lines.append("The original message's headers are attached below.")
    return "\r\n".join(lines) + "\r\n"


def _status_part(
    hostname: str,
    recipients: Sequence[DSNRecipient],
    envid: str | None,
    arrival: datetime | None,
) -> str:
    """The message/delivery-status body (RFC 3464 §2.1-2.3)."""
    blocks = [[f"Reporting-MTA: dns; {hostname}"]]
    if envid:
        blocks[0].append(f"Original-Envelope-Id: {_one_line(envid)}")
    if arrival is not None:
        blocks[0].append(f"Arrival-Date: {email.utils.format_datetime(arrival)}")
    for r in recipients:
        block = []
        if r.original_recipient:
            block.append(f"Original-Recipient: {_orcpt_field(r.original_recipient)}")
        block += [
            f"Final-Recipient: {_address_field(r.recipient)}",
            f"Action: {r.action}",
            f"Status: {r.status}",
        ]
        if r.remote_mta:
            block.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.reply:
            block.append(f"Diagnostic-Code: smtp; {_one_line(r.reply)}")
        if r.last_attempt is not None:
            block.append(f"Last-Attempt-Date: {email.utils.format_datetime(r.last_attempt)}")
        if r.will_retry_until is not None:
            block.append(f"Will-Retry-Until: {email.utils.format_datetime(r.will_retry_until)}")
        blocks.append(block)
    return "\r\n\r\n".join("\r\n".join(block) for block in blocks) + "\r\n"


def build_dsn(
    *,
    hostname: str,
    sender: str,
    recipients: Sequence[DSNRecipient],
    original: bytes,
    envid: str | None = None,
    ret: str | None = None,
    arrival: datetime | None = None,
    now: datetime | None = None,
) -> bytes:
    """The complete DSN message for ``sender`` about ``recipients`` of ``original``."""
    if not recipients:
        raise ValueError("a DSN needs at least one recipient")
    if not sender:
        raise ValueError("never send a DSN to the null sender (RFC 3461 §6.2, RFC 5321 §6.1)")
    now = now or datetime.now().astimezone()
    boundary = f"=_mailstead_{secrets.token_hex(12)}"
    failure = any(r.action is DSNAction.FAILED for r in recipients)
    full = (failure and (ret or "").upper() == "FULL" and len(original) <= MAX_RETURNED_BODY)
    returned = _crlf(original) if full else _crlf(header_section(original))
    utf8 = (not header_section(original).isascii()
            or not all(r.recipient.isascii() for r in recipients))
    if full:
        returned_type = "message/global" if utf8 else "message/rfc822"
    else:
        returned_type = "message/global-headers" if utf8 else "text/rfc822-headers"
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    human = _human_text(hostname, recipients)
    charset = "us-ascii" if human.isascii() else "utf-8"
    human_cte = "7bit" if human.isascii() else "8bit"

    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{sender}>",
        f"Subject: {_subject(recipients)}",
        f"Date: {email.utils.format_datetime(now)}",
        f"Message-ID: <{secrets.token_hex(16)}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "Content-Transfer-Encoding: "
        + ("8bit" if utf8 or not returned.isascii() or not human.isascii() else "7bit"),
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        f"Content-Type: text/plain; charset={charset}",
        f"Content-Transfer-Encoding: {human_cte}",
        "",
    ]
    out = "\r\n".join(head).encode() + b"\r\n" + human.encode()
    out += "\r\n".join([
        f"--{boundary}",
        "Content-Description: Delivery report",
        f"Content-Type: {status_type}",
        "",
        "",
    ]).encode() + _status_part(hostname, recipients, envid, arrival).encode()
    description = "Undelivered message" if full else "Original message headers"
    out += "\r\n".join([
        f"--{boundary}",
        f"Content-Description: {description}",
        f"Content-Type: {returned_type}",
        "",
        "",
    ]).encode() + returned
    if not returned.endswith(b"\r\n"):
        out += b"\r\n"
    out += f"\r\n--{boundary}--\r\n".encode()
    return out
