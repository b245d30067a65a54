"""Who a submitted message says it is from, and whether the account submitting it may say so.

RFC 5322 §3.6.2: ``From:`` names the author(s), ``Sender:`` the one mailbox that sent the
message; with several authors, or a group (RFC 6854), ``Sender:`` must be there. A user who
logged in to submission may put in them only addresses they may send as
(:meth:`mailstead.delivery.router.Router.may_send_as`, the same question MAIL FROM asks),
unless the admin allowed the account any sender (``mailstead user send-as ADDRESS any``).
Everything else is refused ``550 5.7.1`` before anything is stored (docs/decisions/0015).

The header is read strictly, because what counts is what the recipient's program shows:

- exactly one ``From:`` and at most one ``Sender:`` field;
- each value is read by two independent RFC 5322 address parsers, ours (the one IMAP's
  ENVELOPE and DKIM signing use) and the standard library's; a value either finds a defect
  in, or that they read as different addresses, is refused. A display name is never an
  address (``"boss@ours" <evil@x>`` is from evil@x), encoded words included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import AddressHeader, HeaderRegistry

from mailstead.core.errors import InvalidName
from mailstead.core.types import Address
from mailstead.delivery.router import DeliveryError
from mailstead.mime.rfc822 import parse_addresses

#: Authors one message may name; each is a directory lookup or a few.
MAX_AUTHORS = 20
_MISSING = {"MISSING_MAILBOX", "MISSING_DOMAIN", "SYNTAX_ERROR"}
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_REGISTRY = HeaderRegistry()


def refused(text: str) -> DeliveryError:
    """RFC 3463 X.7.1: delivery not authorized, message refused."""
    return DeliveryError(550, "5.7.1", text)


UNREADABLE = refused("From: or Sender: header field cannot be read")


@dataclass(frozen=True, slots=True)
class Authors:
    """The mailboxes of ``From:`` (none for an empty group) and of ``Sender:``."""

    from_: tuple[Address, ...]
    sender: Address | None

    def addresses(self) -> tuple[Address, ...]:
        return self.from_ if self.sender is None else (*self.from_, self.sender)


def read_authors(head: bytes) -> Authors:
    """The authors a message header names, or DeliveryError saying why it cannot be let
    through (no From, two From fields, a From that two parsers read differently, several
    authors without a Sender)."""
    values = _field_values(head)
    froms, senders = values.get("from", []), values.get("sender", [])
    if len(froms) != 1:
        raise refused("Message must have exactly one From: header field")
    if len(senders) > 1:
        raise refused("Message must have at most one Sender: header field")
    from_, group = _mailboxes(froms[0])
    sender = None
    if senders:
        mailboxes, sender_group = _mailboxes(senders[0])
        if sender_group or len(mailboxes) != 1:
            raise refused("Sender: header field must hold exactly one address")
        sender = mailboxes[0]
    elif group or len(from_) != 1:
        # RFC 5322 §3.6.2, RFC 6854 §2: the agent that sent it must then be named.
        raise refused("A From: with several addresses or a group needs a Sender: field")
    if len(from_) > MAX_AUTHORS:
        raise refused(f"From: header field names more than {MAX_AUTHORS} addresses")
    return Authors(tuple(from_), sender)


def _field_values(head: bytes) -> dict[str, list[str]]:
    """Unfolded values of the From and Sender fields, as text (RFC 6532 allows UTF-8)."""
    end = head.find(b"\r\n\r\n")
    block = head if end < 0 else head[: end + 2]
    found: dict[str, list[str]] = {}
    matches = list(_FIELD_NAME.finditer(block))
    for index, match in enumerate(matches):
        name = match.group(1).decode("ascii").lower()
        if name not in ("from", "sender"):
            continue
        stop = matches[index + 1].start() if index + 1 < len(matches) else len(block)
        raw = block[match.end() : stop]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UNREADABLE from None
        found.setdefault(name, []).append(re.sub(r"\r?\n(?=[ \t])", "", text).strip("\r\n"))
    return found


def _mailboxes(value: str) -> tuple[list[Address], bool]:
    """The addresses in one field value, and whether it holds a group; DeliveryError when
    the two parsers disagree or either finds the value broken."""
    ours: list[tuple[str, str]] = []
    group = False
    for item in parse_addresses(value):
        if item.host is None:  # a group's start (its name) or its end marker
            group = group or item.mailbox is not None
            continue
        if item.mailbox is None or {item.mailbox, item.host} & _MISSING:
            raise UNREADABLE
        ours.append((item.mailbox, item.host.lower()))
    theirs, their_group = _standard_reading(value)
    if ours != theirs or group != their_group or not (ours or group):
        raise UNREADABLE
    addresses: list[Address] = []
    for local, domain in ours:
        try:
            addresses.append(Address.parse(f"{local}@{domain}"))
        except InvalidName:
            raise UNREADABLE from None
    return addresses, group


def _standard_reading(value: str) -> tuple[list[tuple[str, str]], bool]:
    """The same value as the standard library's ``email`` package reads it."""
    try:
        header = _REGISTRY("from", value)
    except Exception:  # its parser raises IndexError on some broken values ("a@")
        raise UNREADABLE from None
    assert isinstance(header, AddressHeader)
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    if defects:
        raise UNREADABLE
    found = [(a.username, a.domain.lower()) for g in header.groups for a in g.addresses]
    return found, any(g.display_name is not None for g in header.groups)
