"""The one error a parser raises: it becomes ``tag BAD reason`` (or ``* BAD`` without a tag)."""

from __future__ import annotations


class ParseError(Exception):
    """Syntax error in a client command. ``tag`` is set once the tag itself was readable;
    ``code`` is an optional response code such as ``BADCHARSET (UTF-8 US-ASCII)``;
    ``command`` is the command name once it was recognised (so the error is in its
    arguments), None for a line that is not an IMAP command at all."""

    def __init__(
        self,
        reason: str,
        *,
        tag: str | None = None,
        code: str | None = None,
        command: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag
        self.code = code
        self.command = command
