"""The IMAP command table: one entry per command, everything else derived from it.

Each entry names the command's grammar (in :mod:`mailstead.imap.parse.commands`, which
also fixes its typed argument record), its handler (one module per command or small group,
in this package), the states it may run in, when pending expunges may be sent around it,
the mailbox-name fields of its record and the capability that announces it. The parser's
grammar lookup (:data:`GRAMMARS`), the state check, the expunge points, the name mapping
and the command part of CAPABILITY (:data:`COMMAND_CAPABILITIES`) all read this table;
``tests/imap/test_imap_table.py`` checks that every entry is complete. Adding a command is
one entry here, one grammar, one handler and its test (HACKING.md shows one).
"""

from __future__ import annotations

from mailstead.imap.commands import (
    acl,
    any_state,
    append,
    auth,
    compress,
    contexts,
    copy_move,
    enable,
    expunge,
    fetch,
    idle,
    listing,
    mailboxes,
    metadata,
    notify,
    quota,
    replace,
    search,
    select,
    sort,
    status,
    store,
)
from mailstead.imap.dispatch import (
    CommandSpec,
    Expunge,
    MailboxFields,
    for_selected,
    for_user,
    plain,
    table,
)
from mailstead.imap.parse import acl as acl_grammar
from mailstead.imap.parse import commands as grammar
from mailstead.imap.parse import metadata as metadata_grammar
from mailstead.imap.parse import notify as notify_grammar
from mailstead.imap.parse import sort as sort_grammar
from mailstead.imap.parse.commands import Grammar
from mailstead.imap.states import AUTHENTICATED, NOT_AUTHENTICATED, ONLY_AUTHENTICATED

_NAME = MailboxFields(names=("name",))
_TARGET = MailboxFields(names=("mailbox",))
_PATTERNS = MailboxFields(patterns=("reference", "patterns"))

COMMANDS: dict[str, CommandSpec] = table(
    # Any state (RFC 9051 §6.1; RFC 2971 ID).
    plain("CAPABILITY", grammar.no_args, any_state.capability),
    plain("NOOP", grammar.no_args, any_state.noop, expunge=Expunge.BEFORE),
    plain("LOGOUT", grammar.no_args, any_state.logout),
    plain("ID", grammar.id_params, any_state.id_command, capability="ID"),
    # Not authenticated (§6.2; RFC 4959 SASL-IR).
    plain("STARTTLS", grammar.no_args, auth.starttls, states=NOT_AUTHENTICATED,
          capability="STARTTLS"),
    plain("AUTHENTICATE", grammar.authenticate, auth.authenticate, states=NOT_AUTHENTICATED),
    plain("LOGIN", grammar.login, auth.login, states=NOT_AUTHENTICATED),
    # Authenticated, and also while a mailbox is selected (§6.3). RFC 5161 §3.1: ENABLE
    # only before a mailbox is selected.
    plain("ENABLE", grammar.enable, enable.enable, states=ONLY_AUTHENTICATED,
          capability="ENABLE"),
    for_user("SELECT", grammar.select, select.select, expunge=Expunge.DROPPED, mailbox=_NAME),
    for_user("EXAMINE", grammar.select, select.select, expunge=Expunge.DROPPED, mailbox=_NAME),
    for_user("CREATE", grammar.create, mailboxes.create, mailbox=_NAME),
    for_user("DELETE", grammar.mailbox_arg, mailboxes.delete, mailbox=_NAME),
    for_user("RENAME", grammar.rename, mailboxes.rename,
             mailbox=MailboxFields(names=("old", "new"))),
    for_user("SUBSCRIBE", grammar.mailbox_arg, mailboxes.subscribe, mailbox=_NAME),
    for_user("UNSUBSCRIBE", grammar.mailbox_arg, mailboxes.subscribe, mailbox=_NAME),
    for_user("LIST", grammar.list_args, listing.list_command, mailbox=_PATTERNS),
    for_user("LSUB", grammar.lsub, listing.lsub, mailbox=_PATTERNS),
    plain("NAMESPACE", grammar.no_args, mailboxes.namespace, states=AUTHENTICATED,
          capability="NAMESPACE"),
    for_user("STATUS", grammar.status, status.status, mailbox=_NAME),
    for_user("APPEND", grammar.append, append.append, mailbox=_NAME),
    plain("IDLE", grammar.no_args, idle.idle, states=AUTHENTICATED, capability="IDLE"),
    # RFC 4978 §3: authenticated or selected, so after STARTTLS (which is before login).
    plain("COMPRESS", grammar.compress, compress.compress, states=AUTHENTICATED,
          capability="COMPRESS=DEFLATE"),
    # RFC 5465 §3.1: NOTIFY, authenticated or selected; SET implies a NOOP (expunges first).
    for_user("NOTIFY", notify_grammar.notify, notify.notify, expunge=Expunge.BEFORE,
             capability="NOTIFY"),
    # RFC 9208 §4.1: the QUOTA commands, authenticated or selected.
    for_user("GETQUOTA", grammar.getquota, quota.getquota, capability="QUOTA"),
    for_user("GETQUOTAROOT", grammar.mailbox_arg, quota.getquotaroot, mailbox=_NAME,
             capability="QUOTA"),
    for_user("SETQUOTA", grammar.setquota, quota.setquota, capability="QUOTA"),
    # RFC 5464 METADATA (and METADATA-SERVER, in EXTENSIONS): authenticated or selected.
    for_user("GETMETADATA", metadata_grammar.getmetadata, metadata.getmetadata,
             mailbox=_TARGET, capability="METADATA"),
    for_user("SETMETADATA", metadata_grammar.setmetadata, metadata.setmetadata,
             mailbox=_TARGET, capability="METADATA"),
    # RFC 4314 ACL, authenticated or selected (decision 0028).
    for_user("SETACL", acl_grammar.setacl, acl.setacl, mailbox=_NAME, capability="ACL"),
    for_user("DELETEACL", acl_grammar.acl_identifier, acl.deleteacl, mailbox=_NAME,
             capability="ACL"),
    for_user("GETACL", acl_grammar.acl_target, acl.getacl, mailbox=_NAME, capability="ACL"),
    for_user("LISTRIGHTS", acl_grammar.acl_identifier, acl.listrights, mailbox=_NAME,
             capability="ACL"),
    for_user("MYRIGHTS", acl_grammar.acl_target, acl.myrights, mailbox=_NAME,
             capability="ACL"),
    # Selected (§6.4). CHECK is RFC 3501 §6.4.1 (rev1 only); UNSELECT is RFC 3691; MOVE is
    # RFC 6851; UID EXPUNGE is RFC 4315 (UIDPLUS).
    for_selected("CHECK", grammar.no_args, any_state.check, expunge=Expunge.BEFORE),
    for_selected("CLOSE", grammar.no_args, select.close, expunge=Expunge.DROPPED),
    for_selected("UNSELECT", grammar.no_args, select.unselect, expunge=Expunge.DROPPED,
                 capability="UNSELECT"),
    for_selected("EXPUNGE", grammar.no_args, expunge.expunge),
    for_selected("UID EXPUNGE", grammar.uid_expunge, expunge.uid_expunge,
                 capability="UIDPLUS"),
    for_selected("SEARCH", grammar.search, search.search, expunge=Expunge.HELD),
    for_selected("UID SEARCH", grammar.search, search.search),
    # RFC 5256: SORT, and THREAD (announced per algorithm: THREAD_CAPABILITIES).
    for_selected("SORT", sort_grammar.sort, sort.sort, expunge=Expunge.HELD, capability="SORT"),
    for_selected("UID SORT", sort_grammar.sort, sort.sort, capability="SORT"),
    # RFC 5267 §4.3.5: CANCELUPDATE ends live results (CONTEXT=SEARCH, CONTEXT=SORT).
    for_selected("CANCELUPDATE", grammar.cancelupdate, contexts.cancelupdate,
                 capability="CONTEXT=SEARCH"),
    for_selected("THREAD", sort_grammar.thread, sort.thread, expunge=Expunge.HELD),
    for_selected("UID THREAD", sort_grammar.thread, sort.thread),
    for_selected("FETCH", grammar.fetch, fetch.fetch, expunge=Expunge.HELD),
    for_selected("UID FETCH", grammar.fetch, fetch.fetch),
    for_selected("STORE", grammar.store, store.store, expunge=Expunge.HELD),
    for_selected("UID STORE", grammar.store, store.store),
    for_selected("COPY", grammar.copy_move, copy_move.copy_move, mailbox=_TARGET),
    for_selected("UID COPY", grammar.copy_move, copy_move.copy_move, mailbox=_TARGET),
    for_selected("MOVE", grammar.copy_move, copy_move.copy_move, mailbox=_TARGET,
                 capability="MOVE"),
    for_selected("UID MOVE", grammar.copy_move, copy_move.copy_move, mailbox=_TARGET,
                 capability="MOVE"),
    # RFC 8508 REPLACE: APPEND of a new message and expunge of the old one, atomically.
    for_selected("REPLACE", grammar.replace, replace.replace, mailbox=_NAME,
                 capability="REPLACE"),
    for_selected("UID REPLACE", grammar.replace, replace.replace, mailbox=_NAME,
                 capability="REPLACE"),
)

#: What the parser needs: the grammar of each command name.
GRAMMARS: dict[str, Grammar[object]] = {name: spec.grammar for name, spec in COMMANDS.items()}

#: The capabilities that announce commands, once each, in table order.
COMMAND_CAPABILITIES: tuple[str, ...] = tuple(
    dict.fromkeys(spec.capability for spec in COMMANDS.values() if spec.capability)
)

__all__ = ["COMMANDS", "COMMAND_CAPABILITIES", "GRAMMARS"]
