"""Object identifiers (RFC 8474 OBJECTID): MAILBOXID, EMAILID and THREADID.

All three are derived from what the store already keeps, so nothing new is stored:

- MAILBOXID from the mailbox's UIDVALIDITY, which the store makes unique per mailbox for its
  whole life and which RENAME keeps (§4: the id survives a rename, a recreated name gets a
  new one).
- EMAILID from the content address of the body (its SHA-256). The same bytes in several
  mailboxes (COPY, MOVE, one delivery to many folders) share it, and different content never
  does (§5.1), as in Cyrus, whose EMAILID is also a content hash.
- THREADID from the first Message-ID of References (the thread's root), else In-Reply-To,
  else the message's own Message-ID, scoped to the account. Replies that carry References
  (all common clients send it) join the thread of their root without any stored state; a
  message with none of these headers is a thread of its own.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from mailstead.store.models import Mailbox

_MSG_ID = re.compile(rb"<[^<>\s]+>")
#: Header fields THREADID reads, lower case as the structure lists them.
THREAD_FIELDS = frozenset({"references", "in-reply-to", "message-id"})


def mailbox_id(box: Mailbox) -> str:
    return f"M{box.uidvalidity}"


def email_id(blob_id: str) -> str:
    return "E" + blob_id[:24]


def thread_id(user_id: int, blob_id: str, fields: dict[str, bytes]) -> str:
    """``fields``: the raw values of References, In-Reply-To and Message-ID (lower-case
    names) as far as the message has them."""
    root = None
    for name in ("references", "in-reply-to", "message-id"):
        found = _MSG_ID.search(fields.get(name, b""))
        if found is not None:
            root = found.group(0)
            break
    if root is None:
        return "T" + blob_id[:16]
    digest = hashlib.sha256(b"%d\0%s" % (user_id, root.lower())).hexdigest()
    return "T" + digest[:16]


def header_values(raw: bytes, headers: list[list[Any]]) -> dict[str, bytes]:
    """The THREAD_FIELDS of a message from its raw header and the structure's top-level
    header list (``[name, start, end]``); the first occurrence of each wins."""
    out: dict[str, bytes] = {}
    for entry in headers:
        name, start, end = entry[0], entry[1], entry[2]
        if name in THREAD_FIELDS and name not in out:
            line = raw[start:end]
            colon = line.find(b":")
            out[str(name)] = line[colon + 1 :]
    return out
