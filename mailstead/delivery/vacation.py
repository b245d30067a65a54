"""The vacation auto-reply engine: when to answer a delivered message, and the answer.

One engine for every auto-responder: the JMAP VacationResponse (RFC 8621 §8) calls it
through :meth:`Responder.after_delivery` for each local delivery, and the Sieve
``vacation`` action (RFC 5230) will call :meth:`Responder.respond` with the
:class:`AutoReply` its arguments give (reason, :subject, :from, :addresses, :mime,
:handle, :days / :seconds).

The rules (RFC 3834 §2, RFC 5230 §4 and §5), decided by the pure :func:`decide`:

- never answer the null sender, a system sender (``MAILER-DAEMON``, ``LISTSERV``,
  ``majordomo``, ``owner-*``, ``*-request``) or one of the account's own addresses;
- never answer a message that is itself automatic (``Auto-Submitted`` other than ``no``),
  bulk (``Precedence: bulk / list / junk``) or from a list (``List-Id`` or any ``List-*``);
- never answer spam (:attr:`LocalArrival.spam`, set by a filter once there is one);
- answer only mail addressed to the account: a To/Cc/Bcc/Resent-To/-Cc/-Bcc address must
  be one of its own (its address, tagged forms and aliases that deliver to it), the
  envelope recipient it arrived through, or one of the :addresses;
- answer a sender once per period and response handle (:days, default 7; :seconds), the
  memory claimed in the store in one write so two messages at once get one reply.

The reply (RFC 3834 §3, RFC 5230 §5) goes to the envelope sender from the account's
address (or an allowed :from), with ``Subject: Auto: <original>`` unless one is set,
``In-Reply-To`` / ``References`` to the original, ``Auto-Submitted: auto-replied``, and
the null reverse-path (``MAIL FROM:<>``, RFC 3834 §3.3) so nothing answers it back. It is
sent through a :class:`Deliverer` built without a responder: into a local account's
mailbox or the outbound queue exactly as SMTP mail is, DKIM-signed for the account's
domain when signing is on. A failure is logged and never touches the delivery that
prompted it.
"""

from __future__ import annotations

import email.header
import email.policy
import email.utils
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from html.parser import HTMLParser
from typing import Protocol

from mailstead.core.errors import InvalidName, MailsteadError
from mailstead.core.types import Address
from mailstead.delivery.clock import Clock, SystemClock
from mailstead.delivery.deliver import Deliverer, Envelope, LocalArrival, TraceInfo
from mailstead.store.models import Vacation, VacationFields

log = logging.getLogger("mailstead.delivery")

#: RFC 5230 §4.1: the period when neither :days nor :seconds is given (and the JMAP
#: VacationResponse's, which has no such property).
DEFAULT_PERIOD = timedelta(days=7)
#: RFC 5230 §4.1: a site may cap :days; a year is plenty for "I am away".
MAX_PERIOD = timedelta(days=365)
#: At most this many header recipients are checked against the account's addresses: a
#: message to thousands of addresses is not personal mail.
MAX_CHECKED_ADDRESSES = 50
#: References kept in the reply: the thread's most recent ones.
MAX_REFERENCES = 20
#: RFC 8621 §8: with neither body set, the server writes one.
DEFAULT_TEXT = "This is an automatic reply: I am away and will read your message later.\r\n"

_RECIPIENT_HEADERS = frozenset({"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"})
_SYSTEM_SENDERS = frozenset({"mailer-daemon", "listserv", "majordomo"})
_BULK = frozenset({"bulk", "list", "junk"})
_FOLD = re.compile(r"\r?\n[ \t]")
_SPACE = re.compile(r"\s+")


class Skip(StrEnum):
    """Why no reply was sent: the rule that said no (logged)."""

    NULL_SENDER = "null sender"  # RFC 3834 §2, RFC 5230 §5.1
    SYSTEM_SENDER = "system sender"  # RFC 5230: owner-, -request, MAILER-DAEMON, ...
    OWN_SENDER = "own address"  # never answer oneself
    AUTO_SUBMITTED = "auto-submitted"  # RFC 3834 §2, §5
    BULK = "bulk precedence"  # RFC 3834 §2
    LIST = "list message"  # RFC 3834 §2, RFC 2369 / RFC 2919 headers
    SPAM = "spam"
    NOT_ADDRESSED = "not addressed to the account"  # RFC 5230 :addresses
    INACTIVE = "outside the vacation dates"  # RFC 8621 §8 fromDate / toDate
    ANSWERED = "already answered in this period"  # RFC 5230 §4.2
    FAILED = "could not be sent"


@dataclass(frozen=True, slots=True)
class Sent:
    """The reply was committed: stored locally or queued; its Received id."""

    trace_id: str


Outcome = Sent | Skip


@dataclass(frozen=True, slots=True)
class TextReason:
    """The reply's body as text and/or HTML (multipart/alternative when both); neither is
    the server's default text (RFC 8621 §8)."""

    text: str | None = None
    html: str | None = None


@dataclass(frozen=True, slots=True)
class MimeReason:
    """RFC 5230 :mime: the reason is a whole MIME entity, its Content-* header fields
    first; other header fields in it are dropped."""

    entity: bytes


@dataclass(frozen=True, slots=True)
class AutoReply:
    """One vacation action (RFC 5230 §4): the answer and how often a sender gets it.

    ``period`` is :days or :seconds as a timedelta (:func:`days_period`,
    :func:`seconds_period`); zero answers every message. ``from_address`` (:from) is used
    only when the account may send as it, else its own address is. ``addresses``
    (:addresses) are more addresses that count as the account's. ``handle`` (:handle)
    names the response whose memory is kept; None derives one from the content, so a
    changed text is sent again (RFC 5230 §4.2).
    """

    reason: TextReason | MimeReason
    period: timedelta = DEFAULT_PERIOD
    subject: str | None = None
    from_address: str | None = None
    addresses: tuple[str, ...] = ()
    handle: str | None = None

    def __post_init__(self) -> None:
        if self.period < timedelta(0):
            raise ValueError("a vacation period cannot be negative")

    @property
    def memory_handle(self) -> str:
        """:handle, or one made from what the reply says (RFC 5230 §4.2)."""
        if self.handle is not None:
            return self.handle
        digest = hashlib.sha256()
        match self.reason:
            case TextReason(text=text, html=html):
                parts = ["text", text or "", html or ""]
            case MimeReason(entity=entity):
                parts = ["mime", entity.decode("utf-8", "replace")]
        for piece in (*parts, self.subject or "", self.from_address or ""):
            digest.update(piece.encode("utf-8", "surrogatepass") + b"\0")
        return "auto:" + digest.hexdigest()[:32]


def days_period(days: int) -> timedelta:
    """RFC 5230 §4.1: :days, at least 1, capped by the site."""
    return min(timedelta(days=max(1, days)), MAX_PERIOD)


def seconds_period(seconds: int) -> timedelta:
    """RFC 6131 §2: :seconds, 0 meaning every message, capped like :days."""
    return min(timedelta(seconds=max(0, seconds)), MAX_PERIOD)


def vacation_reply(fields: VacationFields) -> AutoReply:
    """The JMAP VacationResponse (RFC 8621 §8) as a vacation action: its subject and
    bodies, the default period, a handle from its content."""
    return AutoReply(reason=TextReason(fields.text_body, fields.html_body), subject=fields.subject)


def is_active(fields: VacationFields, now: datetime) -> bool:
    """RFC 8621 §8: enabled, and ``fromDate <= now < toDate`` (either end may be open)."""
    if not fields.is_enabled:
        return False
    if fields.from_date is not None and now < fields.from_date:
        return False
    return fields.to_date is None or now < fields.to_date


class _PlainText(HTMLParser):
    """An HTML body as plain text, for the text part RFC 8621 §8 asks the server to make
    when only ``htmlBody`` is set: character data outside hidden elements, a line break
    at each block element, a blank line between paragraphs."""

    _HIDDEN = frozenset({"head", "script", "style", "template", "title", "noscript"})
    _BREAK = frozenset({"br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
    _PARAGRAPH = frozenset({"p", "ul", "ol", "table", "blockquote", "pre", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._PARAGRAPH:
            self.out.append("\n\n")
        elif tag in self._BREAK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._PARAGRAPH:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(_SPACE.sub(" ", data))


def html_text(html: str) -> str:
    """Plain text of an HTML body (the reply's text part when only HTML was given)."""
    parser = _PlainText()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser's way to reject a malformed declaration
        pass
    lines = [line.strip() for line in "".join(parser.out).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text + "\n" if text else DEFAULT_TEXT


# -- reading the original ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Original:
    """What the rules and the reply read of the message answered."""

    subject: str = ""
    message_id: str | None = None
    references: tuple[str, ...] = ()
    auto_submitted: str | None = None
    precedence: str | None = None
    list_headers: bool = False
    recipients: tuple[str, ...] = ()


def _fields(head: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of the header section, in order."""
    end = re.search(rb"\r?\n\r?\n", head)
    block = head[: end.start()] if end else head
    text = _FOLD.sub(" ", block.decode("utf-8", "replace"))
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name and name == name.strip() and name.isprintable():
            out.append((name.lower(), value.strip()))
    return out


def _decoded(value: str) -> str:
    """An unstructured header's text with RFC 2047 encoded-words decoded."""
    try:
        text = str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        text = value
    return _SPACE.sub(" ", text).strip()


def _message_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value)


def read_original(head: bytes) -> Original:
    """The header fields the decision and the reply need, from the message's head."""
    subject = ""
    message_id: str | None = None
    references: list[str] = []
    in_reply_to: list[str] = []
    auto_submitted = precedence = None
    list_headers = False
    recipients: list[str] = []
    for name, value in _fields(head):
        if name == "subject" and not subject:
            subject = _decoded(value)
        elif name == "message-id" and message_id is None:
            found = _message_ids(value)
            message_id = found[0] if found else None
        elif name == "references" and not references:
            references = _message_ids(value)
        elif name == "in-reply-to" and not in_reply_to:
            in_reply_to = _message_ids(value)
        elif name == "auto-submitted" and auto_submitted is None:
            auto_submitted = value.split(";")[0].strip().lower()  # RFC 3834 §5
        elif name == "precedence" and precedence is None:
            precedence = value.strip().lower()
        elif name.startswith("list-"):
            list_headers = True  # RFC 2369 List-*, RFC 2919 List-Id
        elif name in _RECIPIENT_HEADERS:
            recipients += [a for _, a in email.utils.getaddresses([value]) if "@" in a]
    return Original(
        subject=subject,
        message_id=message_id,
        # RFC 5322 §3.6.4: the parent's References, else its In-Reply-To (one id).
        references=tuple(references or in_reply_to[:1]),
        auto_submitted=auto_submitted,
        precedence=precedence,
        list_headers=list_headers,
        recipients=tuple(recipients),
    )


# -- the decision ------------------------------------------------------------------------------


def is_system_sender(sender: str) -> bool:
    """RFC 5230 (after RFC 3834 §2): addresses of list software and mailer daemons."""
    local = sender.rpartition("@")[0].casefold()
    return local in _SYSTEM_SENDERS or local.startswith("owner-") or local.endswith("-request")


def decide(
    original: Original, sender: str, own: frozenset[str], *, spam: bool = False
) -> Skip | None:
    """Why not to answer ``original`` from envelope sender ``sender`` (None: answer).

    ``own`` holds the account's addresses among the sender and the header recipients
    (the caller asks the directory), lower-cased with :meth:`str.casefold`.
    """
    if not sender:
        return Skip.NULL_SENDER  # RFC 3834 §2: never answer a bounce
    if is_system_sender(sender):
        return Skip.SYSTEM_SENDER
    if sender.casefold() in own:
        return Skip.OWN_SENDER
    if original.auto_submitted is not None and original.auto_submitted != "no":
        return Skip.AUTO_SUBMITTED  # RFC 3834 §2, §5.1: only "no" is personal mail
    if original.precedence in _BULK:
        return Skip.BULK
    if original.list_headers:
        return Skip.LIST
    if spam:
        return Skip.SPAM
    if not any(r.casefold() in own for r in original.recipients):
        return Skip.NOT_ADDRESSED  # RFC 5230: the account must be named in the header
    return None


# -- the reply ---------------------------------------------------------------------------------


def reply_subject(reply: AutoReply, original: Original) -> str:
    """RFC 3834 §3.1.5 / RFC 5230 §5: "Auto: " and the original's subject, unless set."""
    if reply.subject is not None:
        return _SPACE.sub(" ", reply.subject).strip()
    return f"Auto: {original.subject}" if original.subject else "Auto: (no subject)"


def build_reply(
    reply: AutoReply,
    original: Original,
    *,
    from_address: str,
    to: str,
    hostname: str,
    now: datetime,
) -> bytes:
    """The reply message, CRLF line ends, ready to commit."""
    policy = email.policy.SMTP if (from_address + to).isascii() else email.policy.SMTPUTF8
    match reply.reason:
        case MimeReason(entity=entity):
            message = email.message_from_bytes(entity, _class=EmailMessage, policy=policy)
            for name in {k.lower() for k in message}:
                if not name.startswith("content-"):
                    del message[name]
        case TextReason(text=text, html=html):
            message = EmailMessage(policy=policy)
            if text is None:
                # RFC 8621 §8: text made from the HTML, or a default when there is neither.
                text = DEFAULT_TEXT if html is None else html_text(html)
            message.set_content(text)
            if html is not None:
                message.add_alternative(html, subtype="html")
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = reply_subject(reply, original)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = email.utils.make_msgid(domain=hostname)
    if original.message_id is not None:
        # RFC 3834 §3.1.4, RFC 5322 §3.6.4: thread the reply to the message answered.
        message["In-Reply-To"] = original.message_id
        refs = [*original.references[-(MAX_REFERENCES - 1) :], original.message_id]
        message["References"] = " ".join(refs)
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    if "MIME-Version" not in message:
        message["MIME-Version"] = "1.0"
    return message.as_bytes(policy=policy)


# -- the responder -----------------------------------------------------------------------------


class AddressBook(Protocol):
    """Which addresses are an account's (``Router.owns``) and which it may send as."""

    async def owns(self, user_id: int, address: Address) -> bool: ...

    async def may_send_as(self, user_id: int, address: Address | None) -> bool: ...


class ResponderStore(Protocol):
    """The vacation setting and the answered-senders memory (store/interfaces.py's
    ``Vacations``)."""

    async def vacation(self, user_id: int) -> Vacation: ...

    async def claim_auto_reply(
        self, user_id: int, handle: str, sender: str, now: datetime, until: datetime
    ) -> bool: ...


class Responder:
    """Answers delivered mail for accounts on vacation; one per process.

    ``sender`` is a :class:`Deliverer` built *without* a responder, so an auto-reply to a
    local account is stored like any mail but is never itself answered (the
    ``Auto-Submitted`` rule would refuse that anyway).
    """

    def __init__(
        self,
        store: ResponderStore,
        directory: AddressBook,
        sender: Deliverer,
        *,
        hostname: str,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.sender = sender
        self.hostname = hostname
        self.clock = clock or SystemClock()

    async def after_delivery(self, arrival: LocalArrival) -> None:
        """The JMAP VacationResponse: answer when the account's is on and in its dates.
        Never raises (a failed reply must not fail the delivery that prompted it)."""
        try:
            vacation = await self.store.vacation(arrival.user_id)
            if not is_active(vacation.fields, self.clock.now()):
                return
            await self.respond(arrival, vacation_reply(vacation.fields))
        except MailsteadError as exc:
            log.warning("auto-reply for account #%d failed: %s", arrival.user_id, exc)

    async def respond(self, arrival: LocalArrival, reply: AutoReply) -> Outcome:
        """One vacation action for a message delivered to ``arrival.user_id``: decide,
        claim the sender's memory, build and commit the reply."""
        original = read_original(arrival.head)
        sender = arrival.mail_from
        own = await self._own_addresses(arrival, reply, [sender, *original.recipients])
        skip = decide(original, sender, own, spam=arrival.spam)
        if skip is not None:
            log.debug("no auto-reply for account #%d: %s", arrival.user_id, skip.value)
            return skip
        try:
            to = Address.parse(sender)
        except InvalidName:
            return Skip.NULL_SENDER
        now = self.clock.now()
        if reply.period > timedelta(0) and not await self.store.claim_auto_reply(
            arrival.user_id, reply.memory_handle, str(to), now, now + reply.period
        ):
            log.debug("no auto-reply for account #%d: %s", arrival.user_id, Skip.ANSWERED.value)
            return Skip.ANSWERED
        from_address = await self._from_address(arrival, reply)
        try:
            message = build_reply(
                reply,
                original,
                from_address=from_address,
                to=str(to),
                hostname=self.hostname,
                now=now,
            )
        except (ValueError, TypeError) as exc:  # an address the header writer refuses
            log.warning("auto-reply for account #%d not built: %s", arrival.user_id, exc)
            return Skip.FAILED
        delivery = self.sender.start(
            Envelope(mail_from=None, smtputf8=not message.isascii()),  # RFC 3834 §3.3
            TraceInfo(
                hostname=self.hostname,
                helo=self.hostname,
                client_ip="127.0.0.1",
                session_id="auto-reply",
            ),
            relay_allowed=True,
            sender_id=arrival.user_id,
        )
        try:
            await delivery.add_rcpt(to)
            trace_id = await delivery.commit(message)
        except MailsteadError as exc:
            log.warning("auto-reply for account #%d to <%s> failed: %s", arrival.user_id, to, exc)
            return Skip.FAILED
        log.info("%s: auto-reply for account #%d to <%s>", trace_id, arrival.user_id, to)
        return Sent(trace_id)

    async def _own_addresses(
        self, arrival: LocalArrival, reply: AutoReply, candidates: Iterable[str]
    ) -> frozenset[str]:
        """The candidates that are the account's: its address, the envelope recipients
        the message came through, the :addresses, and what the directory says it owns."""
        known = {a.casefold() for a in (arrival.address, *arrival.rcpt_to, *reply.addresses)}
        own: set[str] = set()
        for count, text in enumerate(dict.fromkeys(c for c in candidates if c)):
            if count >= MAX_CHECKED_ADDRESSES:
                break
            if text.casefold() in known:
                own.add(text.casefold())
                continue
            try:
                address = Address.parse(text)
            except InvalidName:
                continue
            if await self.directory.owns(arrival.user_id, address):
                own.add(text.casefold())
        return frozenset(own)

    async def _from_address(self, arrival: LocalArrival, reply: AutoReply) -> str:
        """RFC 5230 :from when the account may send as it, else its own address."""
        if reply.from_address is not None:
            try:
                address = Address.parse(email.utils.parseaddr(reply.from_address)[1])
            except InvalidName:
                return arrival.address
            if await self.directory.may_send_as(arrival.user_id, address):
                return str(address)
        return arrival.address
