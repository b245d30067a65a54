"""The mailstore contract, in small pieces, one per kind of consumer.

A backend implements every piece; :class:`Store` is all of them together, for the
composition root, which builds the backend and hands each consumer the piece it uses. The
SQLite backend is the only one today; a PostgreSQL backend will implement the same pieces
(docs/decisions/0005). Both pass the one contract suite in ``tests/store_contract``.

Each piece's docstring states what its implementer must keep. One rule holds for all of
them: a write returns only after it is durable (committed and fsynced), and a crash at any
moment leaves either all of a write or none of it visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from mailstead.core.message_data import MessageData
from mailstead.core.types import UID, FlagMode, Pop3Policy, SendAs
from mailstead.store.audit import AuditEntry
from mailstead.store.changes import ChangeBus
from mailstead.store.models import (
    AclEntry,
    Alias,
    ApiToken,
    AppendResult,
    AuditRecord,
    BackupReport,
    Changes,
    CopyResult,
    DeliveryResult,
    Domain,
    EmailRecord,
    Group,
    Identity,
    IdentityFields,
    IndexedText,
    IndexReport,
    Mailbox,
    MailboxState,
    MessageMeta,
    NewMessage,
    NewPushSubscription,
    NewSubmission,
    OutboundEnvelope,
    PushSubscription,
    QueuedMessage,
    QueuedRecipient,
    Recipient,
    SharedMailbox,
    SortKeyField,
    SortKeys,
    StoreFlagsResult,
    Submission,
    TextMatches,
    TextQuery,
    User,
    Vacation,
    VacationFields,
)

#: Turns raw message bytes into the parsed structure, serialised (``mime.stored.encode``).
#: Injected by the composition root so the store stays ignorant of MIME.
StructureParser = Callable[[bytes], bytes]

#: Makes a body's full-text index row from its bytes and its stored structure (``mime/
#: searchtext.py``, injected by the composition root like the parser); None when the body
#: has nothing to index.
TextIndexer = Callable[[bytes, bytes], IndexedText | None]

#: Derives the sort keys of a body from its stored structure (the bytes a
#: :data:`StructureParser` made), or None when it cannot; injected by the composition root
#: like the parser, so the store writes them at delivery without knowing what they mean.
SortKeysMaker = Callable[[bytes], SortKeys | None]

#: Inclusive UID ranges, e.g. ``[(1, 5), (9, 9)]``; ``None`` as an upper bound means "to the end".
UIDRanges = Sequence[tuple[int, int | None]]


class Accounts(Protocol):
    """Finding an account: what every protocol front end needs of the directory once a
    user has logged in (and the authenticator to log them in)."""

    async def find_user(self, address: str) -> User | None:
        """Look up by address: domain case-insensitive, local part matched without regard to
        case (it is stored as given), and ``user+tag@`` resolving to ``user@``."""

    async def get_user(self, user_id: int) -> User:
        """The account as it is now (usage and limits change while sessions run)."""


def account_change_key(user_id: int) -> str:
    """The key :meth:`Directory.directory_changes_since` gives for a change to an
    account's folders (which plus-addressing into a folder depends on)."""
    return f"#{user_id}"


class Directory(Accounts, Protocol):
    """Domains, accounts, aliases and groups: who receives mail where. The router and the
    admin commands use it.

    An implementer keeps:

    - An address is one thing only: a user, an alias or a group; adding it as another kind
      raises AlreadyExists. Users, aliases and groups live in a domain that exists
      (NotFound otherwise), and a domain is removed only when nothing is left in it
      (NotEmpty).
    - Addresses match with the domain case-insensitive and the local part without regard
      to case, and are stored and shown as given (the domain lower-cased).
    - A new account has INBOX, Sent, Drafts, Trash, Junk and Archive, all subscribed, and
      each but INBOX with its special-use attribute (RFC 6154).
    - A user's ``used_bytes`` is always the exact sum of the sizes of their messages; the
      writes of :class:`Messages` and :class:`Mailboxes` keep it so.
    - :attr:`directory_generation` rises with every change this process makes here or to
      an account's folders, whether the change succeeded or not, and
      :meth:`directory_changes_since` names what each change touched: the lookup key of
      the address (``local@domain``, the local part case-folded; ``@domain`` for a
      catch-all or the domain itself) or :func:`account_change_key` for an account's
      folders.
    """

    @property
    def directory_generation(self) -> int:
        """Bumped by every change this process makes to domains, accounts, aliases, groups
        or folders, so routing caches can tell when to forget."""
        ...

    def directory_changes_since(self, generation: int) -> frozenset[str] | None:
        """The keys the changes after ``generation`` touched (empty if none were made);
        None when that is no longer known, and a cache must forget everything."""
        ...

    # -- domains -----------------------------------------------------------------------
    async def add_domain(self, name: str) -> Domain: ...

    async def remove_domain(self, name: str) -> None:
        """Raises NotEmpty while users, aliases or groups remain in the domain."""

    async def list_domains(self) -> list[Domain]: ...

    async def has_domain(self, name: str) -> bool: ...

    # -- users -------------------------------------------------------------------------
    async def add_user(
        self, address: str, password_hash: str, *, quota_bytes: int = 0, scram: str | None = None
    ) -> User:
        """Create an account with INBOX, Sent, Drafts, Trash, Junk and Archive. ``scram``:
        the SCRAM-SHA-256 keys of the same password, if SCRAM is on (decision 0026)."""

    async def list_users(self, domain: str | None = None) -> list[User]: ...

    async def set_password(
        self, address: str, password_hash: str, *, scram: str | None = None
    ) -> None:
        """Replace the password: its hash and its SCRAM keys at once (None: no keys), so
        the keys of the old password stop working with it."""

    async def add_scram_keys(self, address: str, password_hash: str, scram: str) -> bool:
        """Store SCRAM keys derived at a password login, only if the account's password
        hash is still ``password_hash`` (it may have changed since); whether they were.
        Stored keys are replaced (a new iteration count)."""

    async def set_quota(self, address: str, quota_bytes: int) -> None: ...

    async def set_pop3_policy(self, address: str, policy: Pop3Policy) -> None: ...

    async def set_plus_folders(self, address: str, enabled: bool) -> None: ...

    async def set_disabled(self, address: str, disabled: bool) -> None:
        """A disabled account keeps its mail but receives none and cannot log in."""

    async def set_send_as(self, address: str, send_as: SendAs) -> None:
        """Which sender addresses submission accepts from the account (own, or any)."""

    async def remove_user(self, address: str) -> None: ...

    # -- aliases and groups --------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        """``source`` is ``local@domain`` or ``@domain`` (catch-all). Adds to existing targets."""

    async def remove_alias(self, source: str, target: str | None = None) -> None: ...

    async def list_aliases(self, domain: str | None = None) -> list[Alias]: ...

    async def find_alias(self, source: str) -> Alias | None:
        """Exact lookup (domain case-insensitive); callers try ``@domain`` for catch-all."""

    async def add_group(self, address: str, members: Sequence[str] = ()) -> Group: ...

    async def remove_group(self, address: str) -> None: ...

    async def list_groups(self, domain: str | None = None) -> list[Group]: ...

    async def add_group_member(self, address: str, member: str) -> Group: ...

    async def remove_group_member(self, address: str, member: str) -> Group: ...

    async def find_group(self, address: str) -> Group | None: ...


class Mailboxes(Protocol):
    """One account's mailboxes and subscriptions. IMAP's LIST, CREATE, RENAME, DELETE,
    STATUS and (UN)SUBSCRIBE, and delivery into folders, use it.

    An implementer keeps:

    - Names are Unicode with ``/`` as the hierarchy separator; ``INBOX`` is
      case-insensitive. Names never map to file paths, so they cannot escape an account,
      and :func:`mailstead.store.names.validate_mailbox_name` rejects the ones IMAP cannot
      carry (InvalidName).
    - Every mailbox gets a UIDVALIDITY that no mailbox of the store had before, so a name
      created again never shows a client its old UIDs (RFC 9051 §2.3.1.1).
    - A name's parents exist: creating ``a/b/c`` creates ``a`` and ``a/b``; deleting a name
      that has children keeps it as \\Noselect.
    - The counters a :class:`Mailbox` reports (messages, unseen, deleted, sizes) are those
      of its messages at that moment.
    - Creating, renaming and deleting publish MAILBOX_* events, and subscription changes a
      SUBSCRIPTION event, on :attr:`Messages.changes` after commit.
    """

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]: ...

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox: ...

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox: ...

    async def create_mailbox(
        self, user_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        """Create ``name`` and any missing parents (RFC 9051 §6.3.4).

        Creating a name that exists as \\Noselect makes it selectable again; any other
        existing name raises AlreadyExists."""

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> Mailbox:
        """Rename with all children; renaming INBOX moves its messages (RFC 9051 §6.3.6)."""

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        """Delete a mailbox and its messages (RFC 9051 §6.3.5).

        A mailbox with children is not removed: its messages are expunged (recorded for
        VANISHED, bytes given back to the quota) and it becomes \\Noselect. Deleting a
        \\Noselect mailbox that still has children raises NotEmpty; once its children are
        gone it is deleted like any other. Nothing can be appended, copied or moved into
        a \\Noselect mailbox (NotFound); deliveries to it fall back to INBOX."""

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        """Subscriptions are names: one that does not exist may be subscribed."""

    async def list_subscriptions(self, user_id: int) -> list[str]: ...


class MailboxAcls(Protocol):
    """Who besides its owner may do what with a mailbox (RFC 4314 access control lists;
    decision 0028). IMAP's ACL commands and shared-mailbox access, and the ``mailstead
    share`` admin commands, use it.

    An implementer keeps:

    - A grant names an account by its address (matched as :class:`Accounts` matches) or
      ``anyone``; anything else raises NotFound. The owner is never a grantee
      (InvalidName): it always has every right, :data:`mailstead.core.rights.RIGHTS`.
    - Rights are canonical letters (:func:`mailstead.core.rights.canonical`); setting
      none removes the grant.
    - Grants belong to the mailbox (by id): they follow it through RENAME and go when it
      or the grantee's account is deleted.
    - Per-user \\Seen rows exist only for messages that exist.
    - A change publishes an ACL event for the mailbox on :attr:`Messages.changes` after
      commit, so sessions that have it open see it.
    """

    async def get_acl(self, mailbox_id: int) -> list[AclEntry]:
        """The grants, ``anyone`` first, then by address; the owner is not listed."""

    async def set_acl(self, mailbox_id: int, identifier: str, rights: str) -> None:
        """Replace ``identifier``'s grant with ``rights`` ("" removes it)."""

    async def rights_for(self, mailbox_id: int, user_id: int) -> str:
        """What the account may do: every right for the owner, else the union of its own
        grant and ``anyone``'s."""

    async def shared_with(self, user_id: int) -> list[SharedMailbox]:
        """The other accounts' mailboxes that grant this account (or anyone) a right, by
        owner and name."""

    async def private_seen(self, mailbox_id: int, user_id: int) -> set[UID]:
        """The messages of another account's mailbox that ``user_id`` has seen: its own
        \\Seen, apart from the owner's flag (decision 0028)."""

    async def set_private_seen(
        self, mailbox_id: int, user_id: int, uids: Sequence[UID], seen: bool
    ) -> list[UID]:
        """Set or clear ``user_id``'s own \\Seen on existing messages; returns those that
        changed and publishes one PRIVATE_SEEN event for them (``viewer`` = the user,
        ``flags`` as it sees them). Expunged messages lose their rows. Mod-sequences do not
        move: the change is one user's, not the mailbox's."""


class Messages(Protocol):
    """Messages, their bodies and their flags, and the change events every write
    publishes. IMAP sessions, POP3 maildrops, local delivery and the importer use it.

    An implementer keeps:

    - UIDs in a mailbox strictly increase and are never reused within one UIDVALIDITY
      (RFC 9051 §2.3.1.1); every change to a message or mailbox bumps the mailbox's
      HIGHESTMODSEQ and stamps the change with it (RFC 7162 §3.1).
    - Expunges are remembered with their modseq so QRESYNC can answer VANISHED
      (RFC 7162 §3.2.5).
    - A message body is stored once however many mailboxes hold it, with the structure
      the parser made of it; FETCH never parses a stored message again.
    - A write that would take an account over its quota raises QuotaExceeded and changes
      nothing; ``used_bytes`` moves by exactly the sizes added or removed.
    - Every write publishes :class:`~mailstead.store.models.ChangeEvent` s on
      :attr:`changes` after it committed, in commit order, never before.
    - A whole-mailbox :meth:`list_messages` shows every committed change, whichever
      process made it.
    """

    @property
    def changes(self) -> ChangeBus: ...

    async def append(
        self,
        mailbox_id: int,
        data: bytes | MessageData,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        """Store one message durably. Raises QuotaExceeded when it would not fit."""

    async def append_many(
        self, mailbox_id: int, batch: Sequence[NewMessage]
    ) -> list[AppendResult]:
        """Store several messages in one transaction, all or none (MULTIAPPEND, RFC 3502
        §6.3.11): a QuotaExceeded for their total, or any other failure, stores nothing.
        Their UIDs are consecutive, in the order given."""

    async def replace(
        self, mailbox_id: int, message: NewMessage, old_mailbox_id: int, old_uid: UID
    ) -> AppendResult:
        """Store ``message`` and remove message ``old_uid`` of ``old_mailbox_id`` (the same
        account's; it may be ``mailbox_id``) in one transaction (REPLACE, RFC 8508 §3):
        the new message first, then the expunge. The quota is checked with the old
        message's size already given back. Raises NotFound and stores nothing when the old
        message is no longer there."""

    async def deliver(
        self,
        data: bytes | MessageData,
        recipients: Sequence[Recipient],
        internaldate: datetime | None = None,
    ) -> DeliveryResult:
        """Store one body for many local recipients, all or nothing, in one transaction."""

    async def list_messages(
        self,
        mailbox_id: int,
        uid_ranges: UIDRanges | None = None,
        *,
        changed_since: int | None = None,
    ) -> list[MessageMeta]:
        """Metadata in UID order, for all messages or the given UID ranges."""

    async def get_structure(self, blob_id: str) -> bytes:
        """The parsed structure stored at append time (the bytes the parser returned)."""

    async def get_structures(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        """Many structures in one round trip (FETCH 1:* ENVELOPE); missing ids are absent."""

    async def read_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        """The message bytes, or the byte range [start, end)."""

    async def read_blobs(
        self, requests: Sequence[tuple[str, int, int | None]]
    ) -> list[bytes | None]:
        """Many ``(blob_id, start, end)`` reads in one round trip (FETCH of headers for a
        range of messages); None for a body that no longer exists."""

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[UID],
        mode: FlagMode,
        flags: Iterable[str],
        *,
        unchanged_since: int | None = None,
    ) -> StoreFlagsResult:
        """Change flags; messages whose modseq exceeds ``unchanged_since`` are left alone and
        reported in ``modified`` (RFC 7162 §3.1.3). Unchanged messages get no new modseq."""

    async def expunge(self, mailbox_id: int, uids: Sequence[UID] | None = None) -> list[UID]:
        """Remove messages flagged \\Deleted (only among ``uids`` when given: UID EXPUNGE)."""

    async def delete_messages(self, mailbox_id: int, uids: Sequence[UID]) -> list[UID]:
        """Remove the given messages whatever their flags (POP3 QUIT, MOVE source)."""

    async def copy(
        self, src_mailbox_id: int, uids: Sequence[UID], dst_mailbox_id: int,
        *, rights: str | None = None,
    ) -> CopyResult:
        """New UIDs in the destination, which may be another account's (a shared mailbox):
        the destination's owner is charged, and QuotaExceeded copies nothing. With
        ``rights`` (the copier's on the destination, RFC 4314 §4) the copies lose the
        flags those rights do not allow setting (:func:`mailstead.core.rights.settable`)."""

    async def move(
        self, src_mailbox_id: int, uids: Sequence[UID], dst_mailbox_id: int,
        *, rights: str | None = None,
    ) -> CopyResult:
        """Copy and expunge atomically (RFC 6851). Source and destination may be the same
        mailbox: the messages then get new UIDs there, as with Dovecot (decision 0018).
        ``rights`` as for :meth:`copy`."""

    async def save_dates(
        self, mailbox_id: int, uid_ranges: UIDRanges | None = None
    ) -> dict[UID, datetime]:
        """When each message was saved to this mailbox (RFC 8514 SAVEDATE: APPEND,
        delivery, COPY, MOVE); read apart from ``list_messages`` because few commands
        ask. Messages stored before save dates were kept report their internal date."""

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[UID]:
        """UIDs expunged with a modseq above ``modseq`` (RFC 7162 §3.2.5.1)."""

    async def search_text(self, mailbox_id: int, queries: Sequence[TextQuery]) -> TextMatches:
        """Per query, the mailbox's messages whose full-text index row holds the needle in
        one of the query's columns, and the messages a miss proves nothing for (no row
        yet, or a row cut to the indexed-text limit). A row is written in the transaction
        that stores a message whose body has none and removed in the transaction that
        removes the body's last message (docs/decisions/0027)."""


    async def sort_keys(
        self, mailbox_id: int, fields: frozenset[SortKeyField], version: int,
        uids: Sequence[UID] | None = None,
    ) -> dict[UID, SortKeys]:
        """The stored sort keys of the mailbox's messages (only of ``uids`` when given),
        in one read, with only ``fields`` filled (the rest empty). Messages whose body has
        none, or keys of another ``version``, are absent: the caller derives those from
        the structure and hands them to :meth:`put_sort_keys`. Keys are per body: a copy
        shares them."""

    async def put_sort_keys(self, keys: Mapping[str, SortKeys]) -> None:
        """Keep keys derived after the body was stored (by blob id), replacing older ones;
        a body that no longer exists is skipped. No change event: the keys are derived
        from the body, which did not change."""


class Emails(Protocol):
    """An account's mail as one collection (decision 0033): its emails (a body in one or
    more of its mailboxes), their threads, counts, and what changed since an account
    mod-sequence. JMAP reads it; IMAP's writes keep it (every write takes the account's
    next mod-sequence).

    An implementer keeps:
    - the account mod-sequence growing with every write to the account, and each message's
      MODSEQ the one of the write that last changed it;
    - an email per body the account holds, with the mod-sequence that created it and the
      one that last added or removed a copy; when its last copy goes, a record of the
      removal's mod-sequence (for ``email_changes``);
    - a thread per email fixed when the email was created (the thread of a parent named
      by References or In-Reply-To, or a new one); a removed mailbox likewise remembered.
    """

    async def account_state(self, user_id: int) -> int:
        """The account's mod-sequence now."""

    async def email_records(self, user_id: int, blob_ids: Sequence[str]) -> list[EmailRecord]:
        """The account's emails of these bodies; bodies it does not hold are left out."""

    async def account_emails(self, user_id: int, mailbox_id: int | None = None
                             ) -> list[EmailRecord]:
        """Every email of the account (or with a copy in ``mailbox_id``), newest first."""

    async def thread_emails(self, user_id: int, thread_ids: Sequence[str]
                            ) -> dict[str, list[str]]:
        """Each known thread's bodies, oldest first; unknown threads are left out."""

    async def mailbox_states(self, user_id: int) -> list[MailboxState]:
        """The account's mailboxes with their counts and change marks."""

    async def email_changes(self, user_id: int, since: int, max_changes: int | None
                            ) -> Changes:
        """Emails (by body) changed since ``since``; ChangesTooMany if one write changed
        more than ``max_changes``."""

    async def thread_changes(self, user_id: int, since: int, max_changes: int | None
                             ) -> Changes:
        """Threads whose emails changed since ``since``."""

    async def mailbox_changes(self, user_id: int, since: int, max_changes: int | None
                              ) -> tuple[Changes, bool]:
        """Mailboxes (by UIDVALIDITY as text) changed since ``since``, and whether every
        update was of counts only."""

    async def mailbox_keys(self, user_id: int) -> dict[int, int]:
        """The UIDVALIDITY of each of the account's mailboxes, by id (no counting)."""

    async def email_page(
        self, user_id: int, mailbox_id: int | None, ascending: bool, position: int,
        limit: int, total: bool,
    ) -> tuple[list[str], int | None] | None:
        """Bodies of the account's emails (or of those in a mailbox) by received time, ties
        by body id ascending: ``limit`` of them from ``position``, with their count if
        ``total``; None when the store cannot answer it in that order without sorting
        every email (the caller then sorts :meth:`account_emails` itself)."""


class Uploads(Protocol):
    """Blobs an account uploaded for a later call (JMAP, RFC 8620 §6.1): its own, by the
    SHA-256 of their octets, until they expire."""

    async def put_upload(self, user_id: int, data: bytes, media_type: str) -> str:
        """Keep ``data``; its id (the same octets again renew the same upload)."""

    async def get_upload(self, user_id: int, blob_id: str) -> tuple[bytes, str] | None:
        """The octets and media type of one of the account's uploads, or None."""

    async def expire_uploads(self, before: datetime) -> int:
        """Forget uploads made before ``before``; how many."""


class Identities(Protocol):
    """An account's JMAP identities (RFC 8621 §6). Every change takes the account's next
    mod-sequence; the account always has its own address's identity once anyone read its
    identities (:meth:`identities` makes it), and that one cannot be destroyed."""

    async def identities(self, user_id: int, own_address: str) -> list[Identity]:
        """Every identity of the account, the one for ``own_address`` made if missing."""

    async def add_identity(self, user_id: int, fields: IdentityFields) -> Identity: ...

    async def update_identity(
        self, user_id: int, identity_id: int, fields: IdentityFields
    ) -> Identity:
        """Replace all but ``email`` (fixed at creation); NotFound if there is none."""

    async def remove_identity(self, user_id: int, identity_id: int) -> None:
        """NotFound if there is none, or it is the account's own address's."""

    async def identity_changes(self, user_id: int, since: int) -> Changes:
        """Identities (by id as text) changed since the account mod-sequence ``since``."""


class PushSubscriptions(Protocol):
    """An account's JMAP push subscriptions (RFC 8620 §7.2). They have no state and
    publish no change events: only the push sender and PushSubscription/get read them."""

    async def add_push_subscription(
        self, user_id: int, new: NewPushSubscription
    ) -> PushSubscription: ...

    async def push_subscriptions(self, user_id: int) -> list[PushSubscription]:
        """Every subscription of the account, expired ones included."""

    async def active_push_subscriptions(self, now: datetime) -> list[PushSubscription]:
        """The verified subscriptions of every account that expire after ``now``."""

    async def update_push_subscription(
        self,
        user_id: int,
        subscription_id: int,
        *,
        verified: bool,
        expires: datetime,
        types: tuple[str, ...] | None,
    ) -> PushSubscription:
        """Change what may change after creation; NotFound if there is none."""

    async def remove_push_subscription(self, user_id: int, subscription_id: int) -> None:
        """NotFound if there is none."""

    async def expire_push_subscriptions(self, now: datetime) -> int:
        """Forget those that expire at or before ``now``; how many."""


class Vacations(Protocol):
    """An account's vacation auto-reply: its one setting (RFC 8621 §8; a change takes the
    account's next mod-sequence) and the senders already answered under a response handle
    (RFC 5230 §4.2: :days / :seconds)."""

    async def vacation(self, user_id: int) -> Vacation:
        """The setting; the disabled default when the account never set one."""

    async def set_vacation(self, user_id: int, fields: VacationFields) -> Vacation: ...

    async def claim_auto_reply(
        self, user_id: int, handle: str, sender: str, now: datetime, until: datetime
    ) -> bool:
        """Record ``sender`` (compared without case) as answered under ``handle`` until
        ``until``, in one write; False, nothing changed, when an unexpired answer exists."""

    async def expire_auto_replies(self, now: datetime) -> int:
        """Forget answers whose period ended by ``now``; how many."""


class Submissions(Protocol):
    """An account's JMAP email submissions (RFC 8621 §7): kept after the delivery
    transaction committed, linked to the outbound queue entry it made; each recipient's
    state read from the queue while it holds the message, and recorded when it retires
    it (a change of the submission)."""

    async def add_submission(self, user_id: int, new: NewSubmission) -> Submission: ...

    async def submissions(self, user_id: int, ids: Sequence[int] | None = None
                          ) -> list[Submission]:
        """The account's submissions with these ids (all for None); missing ones left out."""

    async def remove_submission(self, user_id: int, submission_id: int) -> None:
        """Forget one (the delivery goes on); NotFound if there is none."""

    async def submission_changes(self, user_id: int, since: int) -> Changes:
        """Submissions (by id as text) changed since ``since``."""


class Metadata(Protocol):
    """Annotations of an account's mailboxes and of the server as the account sees it
    (IMAP METADATA, RFC 5464). IMAP's GETMETADATA and SETMETADATA use it.

    Entry names and values are opaque here: the front end checks and normalises names
    (RFC 5464 §3.2) and applies size limits before it calls. ``mailbox_id`` None means the
    server's entries (the ``""`` mailbox of RFC 5464 §3.1), which belong to the account.

    An implementer keeps:

    - Values are bytes and come back exactly as written, NUL and 8-bit included.
    - A mailbox's entries go with it when it is renamed and are removed when it is
      deleted (RFC 5464 §3.1), also when a DELETE leaves its name as \\Noselect.
    - :meth:`set_metadata` applies all of its changes or none: when the account would then
      hold more than ``max_entries`` entries (its mailboxes' and its server entries
      together) it raises TooMany, and NotFound when the mailbox is not the account's.
    - A write that changed something publishes one MAILBOX_METADATA (or SERVER_METADATA,
      with mailbox id 0) event naming the entries, after commit; metadata writes bump no
      HIGHESTMODSEQ and are not counted against the quota (decision 0029).
    """

    async def get_metadata(self, user_id: int, mailbox_id: int | None) -> dict[str, bytes]:
        """Every entry of one mailbox (or of the server, for None), by name."""

    async def set_metadata(
        self,
        user_id: int,
        mailbox_id: int | None,
        changes: Mapping[str, bytes | None],
        *,
        max_entries: int,
    ) -> None:
        """Set each named entry to its value, or remove it for None, in one transaction."""


class OutboundQueue(Protocol):
    """The durable queue of mail for remote recipients (and of DSN requests for local
    ones): SMTP submission and the delivery agent fill it, the scheduler drains it, and
    the ``queue`` admin commands inspect it.

    An implementer keeps:

    - A queued message references its body like a stored message does: one body however
      many recipients, shared with local copies of the same content, and never collected
      while queued.
    - :meth:`enqueue` is one transaction with the local deliveries of the same message,
      so SMTP answers ``250`` once for both and a crash leaves neither or both.
    - A recipient is pending (queued, deferred, inflight) until it is final (delivered,
      failed). A claimed recipient is ``inflight`` until its outcome is written; after a
      crash :meth:`recover_queue` makes it due again.
    - Times are instants in UTC; ``next_attempt`` orders the due recipients.
    """

    async def enqueue(
        self,
        data: bytes | MessageData,
        envelope: OutboundEnvelope | None,
        local_data: bytes | MessageData | None = None,
        local: Sequence[Recipient] = (),
        internaldate: datetime | None = None,
    ) -> tuple[DeliveryResult | None, int | None]:
        """Queue ``data`` for ``envelope`` and deliver ``local_data`` to ``local``, all or
        nothing, in one transaction (SMTP says ``250`` once for both). Either side may be
        empty. Returns (local delivery result or None, queue id or None). Raises
        QuotaExceeded like :meth:`deliver`."""

    async def list_queue(self) -> list[QueuedMessage]:
        """Every queued message with its recipients, oldest first."""

    async def queue_summary(self) -> tuple[int, datetime | None]:
        """(recipients not final yet, when the oldest message with one was queued): what
        monitoring asks every few seconds, without reading the queue."""

    async def remove_queued(self, queue_id: int) -> None:
        """Drop a queued message (all recipients done); its body becomes collectable."""

    # -- delivery state (the scheduler) --------------------------------------------------
    async def claim_queue(self, now: datetime, limit: int) -> list[QueuedMessage]:
        """Mark up to ``limit`` recipients due at ``now`` (queued or deferred, message not
        held) ``inflight``; their messages, each with only the claimed recipients."""

    async def queued_messages(self, ids: Sequence[int] | None = None) -> list[QueuedMessage]:
        """Queued messages with every recipient and all delivery state (all, or ``ids``)."""

    async def get_queued(self, queue_id: int) -> QueuedMessage:
        """One queued message with its delivery state; NotFound if it is gone."""

    async def update_queue_recipients(self, recipients: Sequence[QueuedRecipient]) -> None:
        """Write the delivery state of these recipients (matched by ``id``)."""

    async def unsettled_queue(self, limit: int = 1000) -> list[int]:
        """Messages with a final recipient whose DSN is not settled, or all recipients
        settled (ready to retire)."""

    async def recover_queue(self, now: datetime) -> int:
        """At start-up: recipients left ``inflight`` by a crash are due again."""

    async def set_queue_held(self, queue_id: int, held: bool) -> None: ...

    async def retry_queue(self, queue_id: int | None, now: datetime) -> int:
        """Make pending recipients of one message (or all) due now; returns how many."""


class Maintenance(Protocol):
    """Opening and closing the store, and keeping it tidy. The composition root and the
    admin commands use it.

    An implementer keeps:

    - :meth:`open` creates or upgrades the storage before anything else runs;
      :meth:`close` returns once the writes in flight are done.
    - A body is collected only when no message and no queued message references it, and
      never one that an append running at the same moment is about to reference.
    - :meth:`integrity_check` checks the backend's own structures, that every account's
      ``used_bytes`` is the sum of its messages' sizes, and that every body a message
      or a queued message needs can be read.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def collect_garbage(self, grace_seconds: float = 3600.0) -> int:
        """Delete the bodies nothing references, keeping for ``grace_seconds`` any that an
        append could be about to reuse; returns how many went."""

    async def integrity_check(self) -> list[str]:
        """Backend self-check; empty list means healthy."""

    async def index_missing(self, user_id: int | None = None, batch: int = 200) -> IndexReport:
        """Index up to ``batch`` bodies of the account's (or everyone's) messages that have
        no full-text index row (stored before the index existed, or by a store without an
        indexer). A body that cannot be indexed gets an empty row marked incomplete, so
        searches scan it and it is not tried again. Nothing left: both counts are 0."""

    async def purge_index(self, batch: int = 16) -> int:
        """Remove the full-text index rows of up to ``batch`` bodies whose last message
        went (noted in that message's transaction, removed here in small transactions of
        their own); returns how many notes were handled, 0 when none is left. A row of a
        body no message references matches no search meanwhile."""

    async def rebuild_index(self, user_id: int | None = None) -> IndexReport:
        """Drop the full-text index rows of the account's (or everyone's) messages and
        write them again from the bodies. Searches stay exact meanwhile: a message
        without a row is scanned."""

    async def backup(self, target: Path) -> BackupReport:
        """A consistent copy of the store, taken while it runs, into the new directory
        ``target`` (read back with the backend's restore)."""


class AdminRecords(Protocol):
    """API tokens and the audit log, for the admin operations (``mailstead.admin``).

    An implementer keeps:

    - A write made inside :func:`mailstead.store.audit.audited` commits the scope's entry
      in the same transaction as the change, once per scope; a write that fails records
      nothing.
    - :meth:`touch_token` and :meth:`record_audit` are never themselves audited.
    """

    async def add_token(self, name: str, scope: str, secret_hash: str,
                        created_by: str) -> ApiToken: ...

    async def find_token(self, token_id: int) -> ApiToken | None: ...

    async def list_tokens(self) -> list[ApiToken]: ...

    async def revoke_token(self, token_id: int) -> None:
        """Mark the token revoked (kept for the audit trail); NotFound if unknown."""

    async def touch_token(self, token_id: int, at: datetime, source: str) -> None:
        """Remember when and from where the token was last used."""

    async def record_audit(self, entry: AuditEntry) -> None:
        """A change that is not a store write (a key file written) goes in on its own."""

    async def audit_log(self, limit: int = 100, before: int | None = None,
                        target: str | None = None) -> list[AuditRecord]:
        """Newest first; ``before`` an id to page back from; ``target`` an exact target
        or a domain (which also matches the addresses in it)."""


class Store(
    Directory, Mailboxes, MailboxAcls, Messages, Emails, Uploads, Identities, Submissions,
    PushSubscriptions, Vacations, Metadata, OutboundQueue, Maintenance, AdminRecords,
    Protocol,
):
    """Every piece of the store, for the composition root: it builds one backend and hands
    each consumer the piece it uses."""


__all__ = [
    "AdminRecords",
    "Directory",
    "Emails",
    "Identities",
    "MailboxAcls",
    "Mailboxes",
    "Maintenance",
    "Messages",
    "Metadata",
    "OutboundQueue",
    "PushSubscriptions",
    "SortKeysMaker",
    "Store",
    "StructureParser",
    "Submissions",
    "TextIndexer",
    "UIDRanges",
    "Uploads",
    "Vacations",
    "account_change_key",
]
