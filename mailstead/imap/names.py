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

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mailstead.core.errors import InvalidName
from mailstead.imap.dispatch import MailboxFields
from mailstead.imap.parse.commands import Command
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

    def command(self, cmd: Command[Any], fields: MailboxFields) -> Command[Any]:
        """The command with the mailbox names (and LIST patterns) its table entry lists in
        store terms."""
        if self.identity or not fields:
            return cmd
        changes: dict[str, object] = {}
        for name in fields.names:
            changes[name] = _map(getattr(cmd.args, name), self.to_store)
        for name in fields.patterns:
            changes[name] = _map(getattr(cmd.args, name), self.pattern_to_store)
        return replace(cmd, args=replace(cmd.args, **changes))


def _map(value: object, convert: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, tuple):
        return tuple(convert(v) for v in value)
    raise TypeError(f"not a mailbox name field: {value!r}")
