"""Mailbox names at the IMAP boundary: the configured hierarchy separator (``[imap]
hierarchy_separator``) against the store's ``/`` (:data:`mailstead.store.names.SEPARATOR`).

With the default ``/`` names pass through unchanged. With ``.`` an IMAP name ``a.b`` is the
store name ``a/b`` and back. Under ``.``, ``/`` inside an IMAP name would have to be an
ordinary character of one level, which the store cannot hold (``/`` is its separator), so
such names are refused (NO [CANNOT]); and a store name that contains ``.`` (made while the
separator was ``/``) is shown with its dots, which clients read as levels — see
docs/imap.md, "Hierarchy separator". Names never become file system paths either way.
"""

from __future__ import annotations

from dataclasses import replace

from mailstead.core.errors import InvalidName
from mailstead.imap.parse.commands import (
    Append,
    Command,
    CopyMove,
    Create,
    ListArgs,
    MailboxArg,
    Rename,
    Status,
)
from mailstead.store.names import SEPARATOR as STORE_SEPARATOR

#: Stands for a literal "/" of a LIST pattern under ".": matches no store name, because the
#: store refuses control characters in names.
_NO_MATCH = "\x00"


class NameMapper:
    """Translates mailbox names between the client's hierarchy separator and the store's."""

    def __init__(self, separator: str) -> None:
        if separator not in ("/", "."):
            raise ValueError(f"unsupported hierarchy separator {separator!r}")
        self.separator = separator
        self.identity = separator == STORE_SEPARATOR

    def to_store(self, name: str) -> str:
        """An IMAP mailbox name from a command -> the store's name (RFC 9051 §5.1.1)."""
        if self.identity:
            return name
        if STORE_SEPARATOR in name:
            raise InvalidName(
                f"mailbox names cannot contain {STORE_SEPARATOR!r} when the hierarchy "
                f"separator is {self.separator!r}"
            )
        return name.replace(self.separator, STORE_SEPARATOR)

    def pattern_to_store(self, pattern: str) -> str:
        """A LIST reference or pattern -> the same in store names; wildcards unchanged."""
        if self.identity:
            return pattern
        return pattern.replace(STORE_SEPARATOR, _NO_MATCH).replace(
            self.separator, STORE_SEPARATOR
        )

    def to_imap(self, name: str) -> str:
        """A store name -> the IMAP name shown to the client."""
        if self.identity:
            return name
        return name.replace(STORE_SEPARATOR, self.separator)

    def command(self, cmd: Command) -> Command:
        """The command with every mailbox name (and LIST pattern) in store terms."""
        if self.identity:
            return cmd
        a = cmd.args
        args: object
        if isinstance(a, (MailboxArg, Create, Status, Append)):
            args = replace(a, name=self.to_store(a.name))
        elif isinstance(a, Rename):
            args = replace(a, old=self.to_store(a.old), new=self.to_store(a.new))
        elif isinstance(a, CopyMove):
            args = replace(a, mailbox=self.to_store(a.mailbox))
        elif isinstance(a, ListArgs):
            args = replace(
                a,
                reference=self.pattern_to_store(a.reference),
                patterns=tuple(self.pattern_to_store(p) for p in a.patterns),
            )
        else:
            return cmd
        return replace(cmd, args=args)
