"""Records the mailstore hands out. Plain frozen dataclasses: no behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from mailstead.core.types import UID, ModSeq


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
    pop3_policy: str
    plus_folders: bool
    disabled: bool
    created: datetime


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


@dataclass(frozen=True, slots=True)
class AppendResult:
    """RFC 4315 APPENDUID needs both values."""

    uidvalidity: int
    uid: UID
    modseq: ModSeq


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


class FlagMode(Enum):
    SET = "set"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One local destination of a delivery: which user and which of their mailboxes."""

    user_id: int
    mailbox_name: str = "INBOX"
    flags: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    blob_id: str
    results: tuple[tuple[int, AppendResult], ...]  # (user_id, where it landed)


class ChangeKind(Enum):
    EXISTS = "exists"
    FLAGS = "flags"
    EXPUNGE = "expunge"
    MAILBOX_CREATED = "mailbox-created"
    MAILBOX_DELETED = "mailbox-deleted"
    MAILBOX_RENAMED = "mailbox-renamed"
    SUBSCRIPTION = "subscription"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Published after commit for every write; sessions turn it into untagged responses."""

    user_id: int
    mailbox_id: int
    kind: ChangeKind
    uids: tuple[UID, ...] = ()
    modseq: int = 0
    flags: tuple[frozenset[str], ...] = ()  # for FLAGS: new flags per uid, same order
    name: str | None = None  # mailbox name (new name for renames)
