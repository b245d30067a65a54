"""What ends a POP3 command with ``-ERR``, and what ends the session.

An error carries its protocol outcome: the text the client may see, the RFC 2449 §8
response code that tells a client whether to retry, wait or ask for a new password, and
whether it uses up the session's error budget. The session turns it into the ``-ERR``
line in one place (:meth:`mailstead.pop3.session.Session.handle_line`); handlers and the
sans-I/O parser only raise. Client text is generic; details go to the log with the
connection id.
"""

from __future__ import annotations

from enum import StrEnum

from mailstead.core.errors import MailsteadError


class ResponseCode(StrEnum):
    """The bracketed word after ``-ERR`` (RFC 2449 §8, RFC 3206)."""

    IN_USE = "IN-USE"  # RFC 2449 §8.1.2: another session holds the maildrop
    LOGIN_DELAY = "LOGIN-DELAY"  # RFC 2449 §8.1.1: logged in too recently
    AUTH = "AUTH"  # RFC 3206: the credentials, not the server, are at fault
    SYS_TEMP = "SYS/TEMP"  # RFC 3206: a server failure that may pass; retry later
    SYS_PERM = "SYS/PERM"  # RFC 3206: a server failure that will not pass by retrying


class POP3Error(MailsteadError):
    """Ends one command with ``-ERR``. ``counts`` says whether it uses up the error budget
    (bad syntax, wrong state, failed login), as opposed to an ordinary refusal such as
    "no such message", which a well-behaved client also meets."""

    def __init__(
        self, text: str, code: ResponseCode | None = None, *, counts: bool = False
    ) -> None:
        self.text = text
        self.code = code
        self.counts = counts
        super().__init__(text)


class CommandError(POP3Error):
    """A command line or argument is malformed (RFC 1939 §3); ``text`` is safe to send.

    Raised by the sans-I/O parser and the argument grammars; always counts against the
    error budget, since a client that speaks the protocol never sends one.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text, counts=True)


class CloseSession(MailsteadError):
    """Stop the session now (QUIT done, budget exhausted, or output stream broken)."""
