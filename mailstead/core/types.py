"""Small value types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import NewType

from mailstead.core.errors import InvalidName

UID = NewType("UID", int)
ModSeq = NewType("ModSeq", int)

# RFC 9051 §2.3.2 system flags. Keywords are any other atom and are kept as given.
SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
SYSTEM_FLAGS = frozenset({SEEN, ANSWERED, FLAGGED, DELETED, DRAFT})

# RFC 6154 special-use attributes, and the folders every new account gets.
SPECIAL_USES = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)



class FlagMode(Enum):
    """How a flag change applies: replace the set, add to it, or take from it (IMAP STORE
    FLAGS / +FLAGS / -FLAGS, RFC 9051 §6.4.6)."""

    SET = "set"
    ADD = "add"
    REMOVE = "remove"


class Pop3Policy(StrEnum):
    """What POP3 does with the messages a client deleted, at QUIT (``mailstead user
    pop3-policy``). The value is what the store keeps and the command line takes."""

    DELETE = "delete"  # RFC 1939: expunge them
    KEEP = "keep"  # leave them, so IMAP clients still see them
    MARK_READ = "mark-read"  # leave them, flagged \Seen
    ARCHIVE = "archive"  # move them to the Archive folder


class SendAs(StrEnum):
    """Which sender addresses an account may submit mail with (``mailstead user send-as``):
    the envelope MAIL FROM, the header From: and Sender:. The value is what the store keeps
    and the command line takes."""

    OWN = "own"  # its own address, its +tags and the aliases that deliver to it
    ANY = "any"  # any address (an application sending for many senders, a list manager)


class TLSMode(StrEnum):
    """How a listener offers TLS: not at all, by the protocol's STARTTLS/STLS command, or
    from the first byte (RFC 8314 implicit TLS)."""

    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


def normalize_flag(flag: str) -> str:
    """System flags are case-insensitive (RFC 9051 §2.3.2); store them in canonical case."""
    if flag.startswith("\\"):
        for system in SYSTEM_FLAGS:
            if system.lower() == flag.lower():
                return system
    return flag


@dataclass(frozen=True, slots=True)
class Address:
    """An e-mail address: local part kept as given, domain lower-cased.

    RFC 5321 §2.4 lets the local part be case-sensitive, so it is preserved; lookups decide
    how to match it. The domain is case-insensitive and stored lower-case (IDNA A-labels are
    accepted as given; U-labels stay Unicode for SMTPUTF8).
    """

    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> Address:
        text = text.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        local, sep, domain = text.rpartition("@")
        if not sep or not local or not domain:
            raise InvalidName(f"not an e-mail address: {text!r}")
        if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in text):
            raise InvalidName(f"address contains whitespace or control characters: {text!r}")
        domain = domain.lower().rstrip(".")
        if not domain or ".." in domain or domain.startswith("."):
            raise InvalidName(f"bad domain in address: {text!r}")
        if len(local) > 64 * 4 or len(domain) > 255:
            raise InvalidName(f"address too long: {text!r}")
        return cls(local, domain)

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    def without_tag(self, separator: str = "+") -> tuple[Address, str | None]:
        """Split ``user+tag@d`` into (``user@d``, ``tag``); no tag gives (self, None)."""
        base, sep, tag = self.local.partition(separator)
        if not sep or not base:
            return self, None
        return Address(base, self.domain), tag
