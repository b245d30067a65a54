"""Access rights on a mailbox (RFC 4314 §2.1): the letters, their canonical order, and the
two obsolete virtual rights of RFC 2086.

A rights value is a ``str`` holding each granted letter once, in the order of
:data:`RIGHTS`; that is how the store keeps it and how IMAP shows it. Pure: the IMAP
commands, the store and the ``mailstead share`` admin commands all parse with this one
function, so a rights string means the same everywhere (decision 0028).
"""

from __future__ import annotations

from mailstead.core.errors import InvalidName
from mailstead.core.types import SEEN

#: Every right mailstead knows, in canonical order (RFC 4314 §2.1): lookup, read, keep
#: \\Seen, write other flags, insert, post, create children, delete mailbox, set
#: \\Deleted, expunge, administer.
RIGHTS = "lrswipkxtea"

#: RFC 4314 §2.1.1: mailstead is of the first group of RFC 2086 servers (as Dovecot):
#: the virtual "c" (create) is "k" and "x", the virtual "d" (delete) is "e" and "t". A
#: client giving "c" or "d" gets every member; a response names "c" when any member of
#: its set is granted, "d" likewise.
OBSOLETE: dict[str, str] = {"c": "kx", "d": "et"}

_SHOWN_ORDER = "lrswipkxtecda"

#: The longest rights string accepted from a client (each letter once, with "c" and "d",
#: and a sign).
MAX_RIGHTS_LENGTH = 32

#: The identifier that stands for every authenticated user (RFC 4314 §2).
ANYONE = "anyone"


def flag_right(flag: str) -> str:
    """The right that setting or clearing ``flag`` needs (RFC 4314 §4): "s" for \\Seen,
    "t" for \\Deleted, "w" for every other flag and keyword."""
    if flag == "\\Seen":
        return "s"
    if flag == "\\Deleted":
        return "t"
    return "w"


def overlay(flags: frozenset[str], seen: bool) -> frozenset[str]:
    """A message's flags as a grantee sees them: the owner's, with the grantee's own
    \\Seen in place of the owner's (decision 0028). IMAP's FETCH and JMAP's keywords of
    another account's mailbox both show this."""
    others = flags - {SEEN}
    return others | {SEEN} if seen else others


def settable(flags: frozenset[str], rights: str) -> frozenset[str]:
    """The part of ``flags`` that ``rights`` allow setting."""
    return frozenset(f for f in flags if flag_right(f) in rights)


def canonical(letters: str) -> str:
    """``letters`` (known rights only) once each, in canonical order."""
    return "".join(r for r in RIGHTS if r in letters)


def parse_rights(text: str) -> str:
    """A client's rights string -> canonical rights. "c" and "d" expand to their sets
    (§2.1.1); an unknown letter (including the digits RFC 4314 leaves to
    implementations) raises InvalidName, so a grant never silently means less than asked."""
    if len(text) > MAX_RIGHTS_LENGTH:
        raise InvalidName("rights string too long")
    letters: set[str] = set()
    for char in text:
        if char in RIGHTS:
            letters.add(char)
        elif char in OBSOLETE:
            letters.update(OBSOLETE[char])
        else:
            raise InvalidName(f"unknown right {char!r}")
    return canonical("".join(letters))


def with_obsolete(rights: str) -> str:
    """Canonical rights as a response shows them: with "c" and "d" appended when any
    member of their set is granted (RFC 4314 §2.1.1)."""
    granted = set(canonical(rights))
    for virtual, members in OBSOLETE.items():
        if granted & set(members):
            granted.add(virtual)
    # The order Cyrus and James show: the virtual rights just before "a".
    return "".join(r for r in _SHOWN_ORDER if r in granted)


def apply_change(current: str, change: str) -> str:
    """SETACL's rights argument (RFC 4314 §3.1): ``+abc`` adds, ``-abc`` removes, a bare
    string replaces."""
    if change.startswith("+"):
        return canonical(current + parse_rights(change[1:]))
    if change.startswith("-"):
        removed = parse_rights(change[1:])
        return canonical("".join(r for r in current if r not in removed))
    return parse_rights(change)


__all__ = [
    "ANYONE",
    "MAX_RIGHTS_LENGTH",
    "OBSOLETE",
    "RIGHTS",
    "apply_change",
    "canonical",
    "flag_right",
    "overlay",
    "parse_rights",
    "settable",
    "with_obsolete",
]
