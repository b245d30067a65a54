"""The dispatch table: command name -> handler. Found explicitly, never by name lookup.

Every handler is ``async (session, command) -> Reply``; the session has already checked the
state (:data:`mailstead.imap.states.ALLOWED`) and writes the tagged reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mailstead.imap.commands import (
    any_state,
    append,
    auth,
    copy_move,
    fetch,
    idle,
    listing,
    mailboxes,
    quota,
    search,
    select,
    store,
)
from mailstead.imap.parse.commands import Command

if TYPE_CHECKING:
    from mailstead.imap.session import Reply, Session

Handler = Callable[["Session", Command], Awaitable["Reply"]]

COMMANDS: dict[str, Handler] = {
    "CAPABILITY": any_state.capability,
    "NOOP": any_state.noop,
    "LOGOUT": any_state.logout,
    "ID": any_state.id_command,
    "STARTTLS": auth.starttls,
    "AUTHENTICATE": auth.authenticate,
    "LOGIN": auth.login,
    "ENABLE": mailboxes.enable,
    "SELECT": select.select,
    "EXAMINE": select.select,
    "CREATE": mailboxes.create,
    "DELETE": mailboxes.delete,
    "RENAME": mailboxes.rename,
    "SUBSCRIBE": mailboxes.subscribe,
    "UNSUBSCRIBE": mailboxes.subscribe,
    "LIST": listing.list_command,
    "LSUB": listing.list_command,
    "NAMESPACE": mailboxes.namespace,
    "STATUS": mailboxes.status,
    "APPEND": append.append,
    "IDLE": idle.idle,
    "GETQUOTA": quota.getquota,
    "GETQUOTAROOT": quota.getquotaroot,
    "SETQUOTA": quota.setquota,
    "CHECK": any_state.check,
    "CLOSE": select.close,
    "UNSELECT": select.unselect,
    "EXPUNGE": select.expunge,
    "UID EXPUNGE": select.expunge,
    "SEARCH": search.search,
    "UID SEARCH": search.search,
    "FETCH": fetch.fetch,
    "UID FETCH": fetch.fetch,
    "STORE": store.store,
    "UID STORE": store.store,
    "COPY": copy_move.copy_move,
    "UID COPY": copy_move.copy_move,
    "MOVE": copy_move.copy_move,
    "UID MOVE": copy_move.copy_move,
}
