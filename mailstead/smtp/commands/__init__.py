"""The SMTP command table: verb -> handler and the states it is allowed in.

Found through this explicit table, never by name lookup; :class:`Session` checks the state
here once, before the handler runs (RFC 5321 §4.1.4 ordering, RFC 3030 §2 for BDAT).
"""

from __future__ import annotations

from mailstead.smtp.commands import auth, bdat, data, ehlo, mail, misc, rcpt, starttls
from mailstead.smtp.session import ANY, CommandSpec, State

COMMANDS: dict[str, CommandSpec] = {
    "EHLO": CommandSpec(ehlo.handle_ehlo, ANY - {State.BDAT}),
    "HELO": CommandSpec(ehlo.handle_helo, ANY - {State.BDAT}),
    "STARTTLS": CommandSpec(starttls.handle, frozenset({State.READY}),
                            "STARTTLS must follow EHLO, outside a mail transaction"),
    "AUTH": CommandSpec(auth.handle, frozenset({State.READY}),
                        "AUTH must follow EHLO, outside a mail transaction"),
    "MAIL": CommandSpec(mail.handle, frozenset({State.READY}),
                        "Send EHLO first, or RSET to end the current transaction"),
    "RCPT": CommandSpec(rcpt.handle, frozenset({State.MAIL, State.RCPT}), "Need MAIL before RCPT"),
    "DATA": CommandSpec(data.handle, frozenset({State.MAIL, State.RCPT}),
                        "Need MAIL and RCPT before DATA"),
    "BDAT": CommandSpec(bdat.handle, frozenset({State.RCPT, State.BDAT}), refuse=bdat.refuse),
    "RSET": CommandSpec(misc.handle_rset, ANY),
    "NOOP": CommandSpec(misc.handle_noop, ANY),
    "QUIT": CommandSpec(misc.handle_quit, ANY),
    "VRFY": CommandSpec(misc.handle_vrfy, ANY - {State.BDAT}),
    "EXPN": CommandSpec(misc.handle_expn, ANY - {State.BDAT}),
    "HELP": CommandSpec(misc.handle_help, ANY - {State.BDAT}),
}

__all__ = ["COMMANDS"]
