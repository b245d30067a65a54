"""ACL command grammar (RFC 4314 §3, §7): a mailbox, and for some commands an identifier
and a rights string, each an astring. The rights are parsed into letters by the handler
(:mod:`mailstead.core.rights`), so a bad letter is ``NO`` with a reason, not a syntax
error, as the RFC's examples answer it."""

from __future__ import annotations

from dataclasses import dataclass

from mailstead.imap.parse.primitives import Reader

#: An identifier is an account address (at most 320 octets) or ``anyone``; longer is BAD.
MAX_IDENTIFIER = 320


@dataclass(frozen=True, slots=True)
class AclTarget:
    """GETACL and MYRIGHTS: a mailbox."""

    name: str


@dataclass(frozen=True, slots=True)
class AclIdentifier:
    """DELETEACL and LISTRIGHTS: a mailbox and an identifier."""

    name: str
    identifier: str


@dataclass(frozen=True, slots=True)
class SetAcl:
    """SETACL: a mailbox, an identifier and ``[+-]rights`` (RFC 4314 §3.1)."""

    name: str
    identifier: str
    rights: str


def _identifier(r: Reader) -> str:
    r.sp()
    identifier = r.text_astring("an identifier")
    if not identifier or len(identifier) > MAX_IDENTIFIER:
        raise r.error("identifier empty or too long")
    return identifier


def acl_target(r: Reader) -> AclTarget:
    """getacl = "GETACL" SP mailbox; myrights = "MYRIGHTS" SP mailbox."""
    r.sp()
    name = r.mailbox()
    r.end()
    return AclTarget(name)


def acl_identifier(r: Reader) -> AclIdentifier:
    """deleteacl / listrights = name SP mailbox SP identifier."""
    r.sp()
    name = r.mailbox()
    identifier = _identifier(r)
    r.end()
    return AclIdentifier(name, identifier)


def setacl(r: Reader) -> SetAcl:
    """setacl = "SETACL" SP mailbox SP identifier SP mod-rights;
    mod-rights = astring (``["+" / "-"] *rights``)."""
    r.sp()
    name = r.mailbox()
    identifier = _identifier(r)
    r.sp()
    rights = r.text_astring("rights")
    r.end()
    return SetAcl(name, identifier, rights)
