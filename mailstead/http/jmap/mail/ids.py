"""How the store's keys read in JMAP: ids, states, keywords and roles (decision 0033).

- A Mailbox id is ``B`` and its UIDVALIDITY: unique in the store for the life of the store
  (RFC 9051 §2.3.1.1), kept by RENAME, never reused after DELETE (RFC 8620 §1.2 asks the
  same of ids), where a row id could be.
- An Email id is ``M`` and the SHA-256 of its body: an account holds a body once as an
  email, whichever mailboxes hold copies (RFC 8621 §4: one Email, several mailboxIds).
  The message blob's id is ``G`` and the same hash.
- A Thread id is the store's (``T`` and 24 hex digits), fixed when its first email arrived.
- Every state string is the account's mod-sequence in decimal: every write to the account
  changes it, so one number serves Mailbox, Email and Thread (a state may change when
  nothing of a given type did; RFC 8620 §1.6.1 allows that).
- Keywords are IMAP flags: ``$seen`` is ``\\Seen`` and so on for the four system flags
  that have a keyword (RFC 8621 §4.1.1); ``\\Deleted`` has none and stays invisible to
  JMAP (and untouched by it); other keywords are IMAP keywords, case-folded to lower case
  as JMAP compares them case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailstead.core.types import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN
from mailstead.http.jmap.errors import MethodError

#: RFC 8621 §4.1.1: the keywords that are IMAP system flags.
_SYSTEM = {"$seen": SEEN, "$flagged": FLAGGED, "$answered": ANSWERED, "$draft": DRAFT}
_FLAG_KEYWORD = {flag.lower(): keyword for keyword, flag in _SYSTEM.items()}
#: Flags with no keyword: kept as they are when JMAP sets an email's keywords.
HIDDEN_FLAGS = frozenset({DELETED})
#: RFC 8621 §4.1.1: a keyword is 1-255 of these (IMAP atom characters minus ``]``...).
_KEYWORD = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]{1,255}")

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: RFC 8621 §2: Mailbox roles from the IANA registry (RFC 8457), as special-use attributes.
ROLE_OF_SPECIAL_USE = {
    "\\All": "all",
    "\\Archive": "archive",
    "\\Drafts": "drafts",
    "\\Flagged": "flagged",
    "\\Junk": "junk",
    "\\Sent": "sent",
    "\\Trash": "trash",
}
SPECIAL_USE_OF_ROLE = {role: use for use, role in ROLE_OF_SPECIAL_USE.items()}


def mailbox_id(uidvalidity: int) -> str:
    return f"B{uidvalidity}"


def uidvalidity_of(value: str) -> int | None:
    """The UIDVALIDITY a Mailbox id names, or None for anything that is not one."""
    if len(value) < 2 or value[0] != "B" or not value[1:].isdigit() or len(value) > 12:
        return None
    return int(value[1:])


def email_id(blob_id: str) -> str:
    return f"M{blob_id}"


def blob_of_email(value: str) -> str | None:
    """The body an Email id names, or None."""
    if value[:1] != "M" or not _SHA256.fullmatch(value[1:]):
        return None
    return value[1:]


def message_blob_id(blob_id: str) -> str:
    return f"G{blob_id}"


def blob_of_message_blob(value: str) -> str | None:
    if value[:1] != "G" or not _SHA256.fullmatch(value[1:]):
        return None
    return value[1:]


def state_text(modseq: int) -> str:
    return str(modseq)


def parse_state(value: str) -> int:
    """A state string this server gave; anything else cannot be answered from
    (RFC 8620 §5.2 cannotCalculateChanges)."""
    if not value.isdigit() or len(value) > 19:
        raise MethodError("cannotCalculateChanges", "not a state this server gave")
    return int(value)


def keyword_of(flag: str) -> str | None:
    """The keyword of an IMAP flag, or None for a flag JMAP does not show."""
    if flag.startswith("\\"):
        return _FLAG_KEYWORD.get(flag.lower())
    return flag.lower()


def keywords_of(flags: Iterable[str]) -> dict[str, bool]:
    """RFC 8621 §4.1.1 ``keywords``: an object of keyword to true."""
    found = (keyword_of(flag) for flag in flags)
    return {k: True for k in sorted(k for k in found if k is not None)}


def is_keyword(value: str) -> bool:
    return _KEYWORD.fullmatch(value) is not None and "]" not in value


def flag_of(keyword: str) -> str:
    """The IMAP flag to store for a keyword (checked with :func:`is_keyword`)."""
    lowered = keyword.lower()
    return _SYSTEM.get(lowered, lowered)


def flags_for(keywords: Iterable[str], current: Iterable[str]) -> frozenset[str]:
    """The flags a copy gets when JMAP sets an email's keywords: the keywords' flags, plus
    the copy's flags JMAP cannot see (``\\Deleted``)."""
    kept = {flag for flag in current if flag in HIDDEN_FLAGS}
    return frozenset(kept | {flag_of(k) for k in keywords})
