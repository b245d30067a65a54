"""Records the mailstore hands out. Plain frozen dataclasses: no behaviour, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, NamedTuple

from mailstead.core.message_data import MessageData
from mailstead.core.types import UID, ModSeq, Pop3Policy, SendAs


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    created: datetime


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``address`` is the login name; ``quota_bytes`` 0 means unlimited."""

    id: int
    address: str
    password_hash: str
    quota_bytes: int
    used_bytes: int
    pop3_policy: Pop3Policy
    plus_folders: bool
    disabled: bool
    created: datetime
    send_as: SendAs = SendAs.OWN  # which sender addresses submission accepts from it
    #: SCRAM-SHA-256 StoredKey/ServerKey/salt/count (auth.scram_keys form); None: none yet
    scram_sha256: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Alias:
    """``source`` is ``local@domain`` or ``@domain`` (catch-all); targets are addresses."""

    source: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """A group address delivers to every member; members may be external addresses."""

    address: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    user_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    subscribed: bool
    message_count: int = 0
    unseen_count: int = 0
    deleted_count: int = 0
    size_bytes: int = 0
    deleted_bytes: int = 0  # size of the \Deleted messages: what EXPUNGE would free
    noselect: bool = False  # \Noselect: a name kept for its children (RFC 9051 §6.3.5)


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One grant of a mailbox's access control list (RFC 4314): ``identifier`` is an
    account's address or ``anyone``; ``rights`` canonical letters (core/rights.py)."""

    identifier: str
    rights: str


@dataclass(frozen=True, slots=True)
class SharedMailbox:
    """Another account's mailbox that grants a user rights: what IMAP lists under the
    other users' namespace. ``rights`` is the union of the grants that apply."""

    mailbox: Mailbox
    owner: str
    rights: str


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What FETCH needs without touching the body. ``flags`` holds system flags and keywords."""

    mailbox_id: int
    uid: UID
    modseq: ModSeq
    flags: frozenset[str]
    internaldate: datetime
    size: int
    blob_id: str


class SortKeys(NamedTuple):
    """What SORT and THREAD (RFC 5256) compare of one body, kept beside its structure so
    that they read a narrow row instead of decoding the structure (decision 0031).

    The IMAP layer derives it from the stored structure (the store never interprets it);
    it is per body, so every copy of a message shares it. ``version`` names the way it was
    derived: rows of another version are taken as missing and derived again. A tuple, not
    a dataclass: a SORT builds one per message of a mailbox, and a tuple is the cheapest
    immutable record to build."""

    version: int
    sent: float | None  # the Date: field in seconds since the epoch; None: not usable
    from_key: str  # the sort key of the first From address (as compared)
    to_key: str
    cc_key: str
    subject: str  # the base subject, as compared
    reply: bool  # whether the base subject lost a reply or forward marker
    message_id: str | None
    references: tuple[str, ...]  # the parents, oldest first


class SortKeyField(StrEnum):
    """Groups of :class:`SortKeys` columns a reader may ask for; the others come back
    empty, so a SORT by date reads two columns, not nine."""

    SENT = "sent"
    FROM = "from_key"
    TO = "to_key"
    CC = "cc_key"
    SUBJECT = "subject"  # with ``reply``
    REFERENCES = "references"  # with ``message_id``


@dataclass(frozen=True, slots=True)
class AppendResult:
    """RFC 4315 APPENDUID needs both values."""

    uidvalidity: int
    uid: UID
    modseq: ModSeq


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message of a write that adds several at once (MULTIAPPEND, RFC 3502) or
    replaces one (REPLACE, RFC 8508): its octets, flags and internal date (None: now)."""

    data: bytes | MessageData
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    uid: UID
    modseq: ModSeq
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class StoreFlagsResult:
    """``updated`` changed; ``modified`` failed UNCHANGEDSINCE (RFC 7162 §3.1.3 MODIFIED)."""

    updated: tuple[FlagUpdate, ...]
    modified: tuple[UID, ...]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """RFC 4315 COPYUID: destination uidvalidity and source->destination UID pairs."""

    uidvalidity: int
    mapping: tuple[tuple[UID, UID], ...]


@dataclass(frozen=True, slots=True)
class Recipient:
    """One local destination of a delivery: which user and which of their mailboxes.

    ``optional``: when the message would take the account over its quota, skip this copy
    (the delivery goes on for the others) instead of failing the whole delivery. For the
    members of a group: one full mailbox must not keep the message from everyone else.
    """

    user_id: int
    mailbox_name: str = "INBOX"
    flags: frozenset[str] = field(default_factory=frozenset)
    optional: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    blob_id: str
    results: tuple[tuple[int, AppendResult], ...]  # (user_id, where it landed)
    skipped: tuple[int, ...] = ()  # optional recipients left out: over their quota


class ChangeKind(Enum):
    EXISTS = "exists"
    FLAGS = "flags"
    EXPUNGE = "expunge"
    MAILBOX_CREATED = "mailbox-created"
    MAILBOX_DELETED = "mailbox-deleted"
    MAILBOX_RENAMED = "mailbox-renamed"
    SUBSCRIPTION = "subscription"
    #: RFC 5464 entries of a mailbox changed (``mailbox_id``; ``entries`` names them).
    MAILBOX_METADATA = "mailbox-metadata"
    #: RFC 5464 server entries of the account changed (``mailbox_id`` is 0; ``entries``).
    SERVER_METADATA = "server-metadata"
    ACL = "acl"  # a mailbox's access control list changed (RFC 4314)
    PRIVATE_SEEN = "private-seen"  # one grantee's own \Seen changed (``viewer``)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Published after commit for every write; sessions turn it into untagged responses."""

    user_id: int
    mailbox_id: int
    kind: ChangeKind
    uids: tuple[UID, ...] = ()
    modseq: int = 0
    flags: tuple[frozenset[str], ...] = ()  # FLAGS and EXISTS: flags per uid, same order
    name: str | None = None  # mailbox name (new name for renames)
    entries: tuple[str, ...] = ()  # *_METADATA: the entry names set or removed
    # PRIVATE_SEEN: the account whose \Seen it is; ``flags`` then holds the messages'
    # flags as that account sees them.
    viewer: int | None = None


# -- outbound queue -------------------------------------------------------------------------
# Records of the durable outbound queue. SMTP receive fills it; the outbound delivery
# (delivery/scheduler.py) drains it. DSN parameters (RFC 3461) travel with each recipient.


class QueueStatus(StrEnum):
    """Where one queued recipient stands. The value is what the store keeps."""

    QUEUED = "queued"  # waiting for its first attempt
    INFLIGHT = "inflight"  # claimed by the scheduler; a crash makes it due again
    DEFERRED = "deferred"  # a temporary failure; tried again at ``next_attempt``
    DELIVERED = "delivered"  # final: taken by the remote server, or delivered locally
    FAILED = "failed"  # final: refused for good, or too old

    @property
    def final(self) -> bool:
        return self in (QueueStatus.DELIVERED, QueueStatus.FAILED)


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    """One envelope recipient of a queued message, with its RFC 3461 §4.1-4.2 parameters.

    ``notify`` holds the NOTIFY keywords (``("NEVER",)`` or some of SUCCESS, FAILURE,
    DELAY); empty means not given. ``orcpt`` is the ORCPT value, ``addr-type;xtext``.
    A local recipient that asked for a success DSN is queued already ``delivered``, so
    that the outbound side sends the notification.
    """

    address: str
    notify: tuple[str, ...] = ()
    orcpt: str | None = None
    status: QueueStatus = QueueStatus.QUEUED
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None  # the reply or reason of the last temporary failure
    id: int = 0
    # Where the last attempt went (``remote``/``tls``); ``settled``: the final DSN owed
    # for this recipient, if any, has been sent.
    last_attempt: datetime | None = None
    remote: str | None = None
    tls: str | None = None
    status_code: str | None = None  # RFC 3463 code of the last outcome, for DSNs
    delay_notified: bool = False
    settled: bool = False


@dataclass(frozen=True, slots=True)
class OutboundEnvelope:
    """What the outbound queue keeps beside the body: the SMTP envelope and DSN data.

    ``mail_from`` is ``""`` for the null sender. ``ret`` is FULL/HDRS or None and ``envid``
    the decoded ENVID (RFC 3461 §4.3-4.4); ``body`` is 7BIT/8BITMIME/None (RFC 6152) and
    ``smtputf8`` whether the message needs SMTPUTF8 onward (RFC 6531).
    """

    mail_from: str
    recipients: tuple[QueuedRecipient, ...]
    envid: str | None = None
    ret: str | None = None
    body: str | None = None
    smtputf8: bool = False
    auth_user: str | None = None
    #: The id the message was received with (its Received header, the 250 reply), which
    #: the delivery log lines give; "" for a message queued by an older version.
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    blob_id: str
    size: int
    envelope: OutboundEnvelope
    created: datetime
    held: bool = False  # `mailstead queue hold`: not attempted until released


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup copied (``Maintenance.backup``)."""

    database_bytes: int
    bodies: int  # body files copied
    #: Bodies the copied database references that were gone by the time they were copied
    #: (deleted and collected while the backup ran).
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A credential for the HTTP APIs. Only a hash of its secret is kept (``secret_hash``);
    the secret itself is shown once, when the token is created."""

    id: int
    name: str
    scope: str  # "admin", "domain:example.org" or "send"
    secret_hash: str
    created: datetime
    created_by: str
    last_used: datetime | None
    last_used_from: str | None
    revoked: datetime | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One administrative change: who made it, from where, what and when."""

    id: int
    at: datetime
    actor: str
    source: str
    action: str
    target: str
    detail: str  # JSON object of the operation's arguments, secrets left out


# -- full-text index ------------------------------------------------------------------------
# The trigram index behind IMAP SEARCH text keys (docs/decisions/0027). The store keeps it
# per body and answers substring queries over it; what goes in each column is made outside
# the store (mime/searchtext.py, injected by the composition root).

#: The index's columns: subject, the address lists, every top-level field's value, every
#: header field whole, the body text.
SEARCH_COLUMNS = (
    "subject",
    "addr_from",
    "addr_to",
    "addr_cc",
    "addr_bcc",
    "hvalues",
    "headers",
    "body",
)


@dataclass(frozen=True, slots=True)
class IndexedText:
    """One body's folded text per column (every name in :data:`SEARCH_COLUMNS`);
    ``complete`` is False when some column was cut to the indexed-text limit."""

    values: Mapping[str, str]
    complete: bool


@dataclass(frozen=True, slots=True)
class TextQuery:
    """Messages whose indexed text holds ``needle`` (already folded, at least three
    characters) in one of ``columns``."""

    columns: tuple[str, ...]
    needle: str


@dataclass(frozen=True, slots=True)
class TextMatches:
    """The answer to text queries over one mailbox: per query the UIDs whose index holds
    the needle; the UIDs whose body has no index row yet (``unindexed``) or only a cut one
    (``incomplete``), for which a miss proves nothing."""

    hits: tuple[frozenset[int], ...]
    unindexed: frozenset[int]
    incomplete: frozenset[int]


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What an index rebuild or catch-up did: bodies indexed, and bodies that could not be
    (no structure, unreadable), which searches keep scanning."""

    indexed: int
    skipped: int


@dataclass(frozen=True, slots=True)
class EmailCopy:
    """One message row of an email (decision 0033): where, under which UID, its flags."""

    mailbox_id: int
    uid: UID
    modseq: ModSeq
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class EmailRecord:
    """An email of an account: one body, in one or more of its mailboxes (decision 0033).
    ``received`` is the earliest INTERNALDATE of its copies."""

    blob_id: str
    thread_id: str
    size: int
    received: datetime
    copies: tuple[EmailCopy, ...]

    @property
    def flags(self) -> frozenset[str]:
        """The union of its copies' flags: a keyword any copy carries is the email's."""
        if len(self.copies) == 1:
            return self.copies[0].flags
        return frozenset().union(*(c.flags for c in self.copies))

    @property
    def mailbox_ids(self) -> frozenset[int]:
        return frozenset(c.mailbox_id for c in self.copies)


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    """What JMAP's Mailbox object counts (RFC 8621 §2): emails and threads, all and
    unread (no copy in the mailbox carries \\Seen)."""

    emails: int = 0
    unread_emails: int = 0
    threads: int = 0
    unread_threads: int = 0


@dataclass(frozen=True, slots=True)
class MailboxState:
    """A mailbox with its counts and change marks (decision 0033)."""

    mailbox: Mailbox
    counts: MailboxCounts
    created: int  # the account mod-sequence that created it
    changed: int  # ... that last changed its own properties
    highest: int  # its HIGHESTMODSEQ: its messages' last change


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in an account since a mod-sequence (RFC 8620 §5.2), by store key:
    ``created`` and ``updated`` exist now, ``destroyed`` do not. ``state`` is the
    mod-sequence the answer brings a client to; ``more`` says it stopped short of now
    (``max_changes``)."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    destroyed: tuple[str, ...]
    state: int
    more: bool = False


@dataclass(frozen=True, slots=True)
class EmailAddressValue:
    """A name and an address, as a JMAP EmailAddress (RFC 8621 §4.1.2.3) is kept."""

    email: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityFields:
    """What a client may set of an identity (RFC 8621 §6); ``email`` only at creation."""

    email: str
    name: str = ""
    reply_to: tuple[EmailAddressValue, ...] | None = None
    bcc: tuple[EmailAddressValue, ...] | None = None
    text_signature: str = ""
    html_signature: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """An address the account sends as, with its defaults (RFC 8621 §6). ``is_default``:
    the one made for the account's own address, which cannot be destroyed."""

    id: int
    fields: IdentityFields
    is_default: bool
    created: int  # the account mod-sequence that created it
    changed: int  # ... that last changed it


@dataclass(frozen=True, slots=True)
class PushKeys:
    """RFC 8620 §7.2 ``keys``: the client's P-256 ECDH public key and its authentication
    secret (RFC 8291 §3), both URL-safe base64 as the client sent them."""

    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class NewPushSubscription:
    """What a client registers (RFC 8620 §7.2): where to push, and the code the server
    sends there to prove the client reads it."""

    device_client_id: str
    url: str
    keys: PushKeys | None
    verification_code: str
    expires: datetime
    types: tuple[str, ...] | None  # None: every type


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A registered push URL of an account (RFC 8620 §7.2). Nothing but the
    PushVerification goes to it until ``verified``; nothing at all after ``expires``."""

    id: int
    user_id: int
    device_client_id: str
    url: str
    keys: PushKeys | None
    verification_code: str
    verified: bool
    expires: datetime
    types: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class VacationFields:
    """An account's vacation auto-reply as its owner set it (RFC 8621 §8, the JMAP
    VacationResponse): on or off, the window it applies in (UTC, either end open), and
    what it answers with; a None subject or body is the server's to choose."""

    is_enabled: bool = False
    from_date: datetime | None = None
    to_date: datetime | None = None
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None


@dataclass(frozen=True, slots=True)
class Vacation:
    """The account's one vacation setting and the account mod-sequence of its last change
    (0: never set, the disabled default)."""

    fields: VacationFields
    changed: int = 0


class UndoStatus(StrEnum):
    """RFC 8621 §7: whether a submission can still be cancelled."""

    PENDING = "pending"
    FINAL = "final"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """Where one envelope recipient of a submission stands: the queue's status of it (or
    ``delivered`` for one stored here at once) and the last reply text, if any."""

    status: QueueStatus
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class NewSubmission:
    """A message just committed for delivery, as :meth:`Submissions.add_submission` keeps
    it. ``envelope`` is the JMAP Envelope object as sent; ``trace_id`` the id the commit
    returned (the queue entry carries it); ``local`` the recipients stored here at once."""

    identity_id: int
    blob_id: str
    thread_id: str
    envelope: Mapping[str, Any]  # the JMAP Envelope object (RFC 8621 §7)
    send_at: datetime
    trace_id: str
    local: Mapping[str, RecipientOutcome]


@dataclass(frozen=True, slots=True)
class Submission:
    """An email submission (RFC 8621 §7) with each recipient's outcome: from the queue
    while it holds the message, else from what was recorded when it let it go."""

    id: int
    identity_id: int
    blob_id: str
    thread_id: str
    envelope: Mapping[str, Any]  # the JMAP Envelope object (RFC 8621 §7)
    send_at: datetime
    undo_status: UndoStatus
    queue_id: int | None
    recipients: Mapping[str, RecipientOutcome]
    created: int
    changed: int
