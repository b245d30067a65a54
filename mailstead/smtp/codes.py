"""SMTP replies: a basic code, an enhanced status code and generic text, in one value.

Every reply a session sends is a :class:`Reply` (never a magic string), so every reply
after the greeting carries an enhanced status code (RFC 2034 §4 exempts only the greeting
and the HELO/EHLO replies, whose first line must start with the domain). Handlers signal
failure by raising :class:`SMTPError`; the session turns it into bytes in one place.
Client text is generic; details for the operator go to the connection log.

:class:`Reply` itself lives in :mod:`mailstead.wire.smtp`, shared with the outbound client.
"""

from __future__ import annotations

from mailstead.core.errors import MailsteadError
from mailstead.wire.smtp import Reply as Reply  # re-exported: the handlers import it from here


class SMTPError(MailsteadError):
    """Raised by a command handler; the session sends ``reply`` and carries on.

    ``close`` asks the session to end the connection after the reply (421 codes).
    """

    def __init__(self, reply: Reply, *, close: bool = False, log: str | None = None) -> None:
        self.reply = reply
        self.close = close
        self.log_detail = log
        super().__init__(f"{reply.code} {reply.enhanced} {reply.lines[0]}")


def error(code: int, enhanced: str, text: str, *, close: bool = False) -> SMTPError:
    """Shorthand for ``SMTPError(Reply(...))`` at the raise site."""
    return SMTPError(Reply(code, enhanced, text), close=close)


# -- replies used in more than one place -----------------------------------------------------
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
START_DATA = Reply(354, "", "Start mail input; end with <CRLF>.<CRLF>")
BYE = Reply(221, "2.0.0", "Bye")

SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, please try again later")
# RFC 3463 X.3.2: the server takes no more messages for now (its memory budget for
# message data is spent); the client tries again later.
TOO_BUSY = Reply(451, "4.3.2", "Too much mail arriving at once, please try again later")
SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TOO_MANY_COMMANDS = Reply(421, "4.7.0", "Too many commands, closing connection")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing connection")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
