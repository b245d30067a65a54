"""The POP3 command table: one entry per command, holding all the session knows of it.

Each :class:`~mailstead.pop3.session.CommandSpec` names the command's grammar (argument
words to a typed record, :mod:`.arguments`), its handler, the states it is allowed in
(RFC 1939 §4-§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4, RFC 6856 §2) and the capability
it belongs to. The session checks the state here once, before the grammar and the
handler run; CAPA derives its list from the capabilities here. Found through this table
only, never by name lookup. APOP is deliberately absent (it needs the password in a
recoverable form), so it gets "unknown command".
"""

from __future__ import annotations

from collections.abc import Mapping

from mailstead.pop3.commands import (
    capa,
    deletion,
    listing,
    login,
    noop,
    retrieval,
    stls,
    update,
    utf8,
)
from mailstead.pop3.commands.arguments import (
    message_number,
    no_arguments,
    optional_message_number,
    password,
    sasl_start,
    top_arguments,
    user_name,
)
from mailstead.pop3.protocol import Capability
from mailstead.pop3.session import CommandEntry, CommandSpec
from mailstead.pop3.states import AUTHORIZATION, EITHER, TRANSACTION

COMMANDS: Mapping[str, CommandEntry] = {
    "CAPA": CommandSpec(no_arguments, capa.capa, EITHER),
    "STLS": CommandSpec(no_arguments, stls.stls, AUTHORIZATION, Capability.STLS),
    "USER": CommandSpec(user_name, login.user, AUTHORIZATION, Capability.USER),
    "PASS": CommandSpec(password, login.pass_, AUTHORIZATION, Capability.USER,
                        keeps_pending_user=True),
    "AUTH": CommandSpec(sasl_start, login.auth, AUTHORIZATION, Capability.SASL),
    "UTF8": CommandSpec(no_arguments, utf8.utf8, AUTHORIZATION, Capability.UTF8),
    "QUIT": CommandSpec(no_arguments, update.quit_, EITHER),
    "STAT": CommandSpec(no_arguments, listing.stat, TRANSACTION),
    "LIST": CommandSpec(optional_message_number, listing.list_, TRANSACTION),
    "UIDL": CommandSpec(optional_message_number, listing.uidl, TRANSACTION, Capability.UIDL),
    "RETR": CommandSpec(message_number, retrieval.retr, TRANSACTION),
    "TOP": CommandSpec(top_arguments, retrieval.top, TRANSACTION, Capability.TOP),
    "DELE": CommandSpec(message_number, deletion.dele, TRANSACTION),
    "NOOP": CommandSpec(no_arguments, noop.noop, TRANSACTION),
    "RSET": CommandSpec(no_arguments, deletion.rset, TRANSACTION),
}

__all__ = ["COMMANDS"]
