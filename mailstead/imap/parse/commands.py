"""Command grammars, grouped by the state they are valid in (RFC 9051 §6).

:func:`parse_command` turns one frame into a :class:`Command` whose ``args`` is the typed
argument record of that command. State is not checked here: the session checks it once,
from :mod:`mailstead.imap.states`, before dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from mailstead.core.types import normalize_flag
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.fetch import FetchAtt, fetch_atts
from mailstead.imap.parse.primitives import MAX_NUMBER64, PartialRange, Reader, SequenceSet
from mailstead.imap.parse.search import SearchArgs, search_args


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # upper case; UID commands are "UID FETCH" etc.
    args: object = None


# -- argument records ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Authenticate:
    mechanism: str
    initial: bytes | None  # SASL-IR initial response as sent (base64 or "=")


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Enable:
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QResync:
    """SELECT/EXAMINE (QRESYNC (...)) (RFC 7162 §3.2.5): what the client knew."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    # (known sequence numbers, their UIDs): only a hint for servers that forget expunges.
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class MailboxArg:
    """SELECT, EXAMINE, DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT."""

    name: str
    condstore: bool = False  # SELECT/EXAMINE (CONDSTORE) (RFC 7162 §3.1.8)
    qresync: QResync | None = None  # SELECT/EXAMINE (QRESYNC (...)) (RFC 7162 §3.2.5)


@dataclass(frozen=True, slots=True)
class Create:
    name: str
    special_use: tuple[str, ...] = ()  # RFC 6154 §3 CREATE (USE (...))


@dataclass(frozen=True, slots=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ListArgs:
    """LIST / LSUB with RFC 5258 LIST-EXTENDED options and RFC 5819 RETURN (STATUS)."""

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False  # any selection/return option or multiple patterns used
    lsub: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    name: str
    flags: tuple[str, ...]
    date: datetime | None
    message: bytes


@dataclass(frozen=True, slots=True)
class Fetch:
    sequence: SequenceSet
    items: tuple[FetchAtt, ...]
    changed_since: int | None = None  # RFC 7162 §3.1.4 CHANGEDSINCE modifier
    vanished: bool = False  # RFC 7162 §3.2.6 VANISHED modifier (UID FETCH only)
    partial: PartialRange | None = None  # RFC 9394 §3.3 PARTIAL modifier


@dataclass(frozen=True, slots=True)
class Store:
    sequence: SequenceSet
    mode: str  # "set" | "add" | "remove"
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None  # RFC 7162 §3.1.3 UNCHANGEDSINCE modifier


@dataclass(frozen=True, slots=True)
class CopyMove:
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Sequence:
    """UID EXPUNGE."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class Id:
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class GetQuota:
    """GETQUOTA (RFC 9208 §4.1.1): a quota root name, an opaque astring (§3.2)."""

    root: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """SETQUOTA (RFC 9208 §4.1.3): the root and its new (resource, limit) pairs."""

    root: str
    limits: tuple[tuple[str, int], ...]


STATUS_ITEMS = frozenset({
    "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "APPENDLIMIT",
    "HIGHESTMODSEQ", "MAILBOXID", "DELETED-STORAGE",
})
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


# -- any state ----------------------------------------------------------------------------
def _no_args(r: Reader) -> None:
    r.end()


MAX_ID_PARAMS = 30  # RFC 2971 §3.3: at most 30 field-value pairs


def _id(r: Reader) -> Id:
    """RFC 2971 §4: "ID" SP ( "(" [string SP nstring *(SP string SP nstring)] ")" / nil ).

    The values are only logged (§3.3: no operational decision may depend on them), so, as
    Dovecot and James do, what clients really send is accepted too: commas between items
    (``("vendor", "x")``) and unquoted atoms (``"version" 102.7.1``)."""
    r.sp()
    if r.skip(b"NIL"):
        r.end()
        return Id(None)
    r.open_paren()
    items: list[str | None] = []
    if r.peek() != b")":
        items.append(_id_item(r))
        while True:
            r.skip(b",")
            if not r.more_in_list():
                break
            items.append(_id_item(r))
            if len(items) > 2 * MAX_ID_PARAMS:
                raise r.error("too many ID parameters")
    r.close_paren()
    r.end()
    keys, values = items[::2], items[1::2] + [None] * (len(items) % 2)
    return Id(tuple((key or "", value) for key, value in zip(keys, values, strict=True)))


def _id_item(r: Reader) -> str | None:
    if r.peek() in (b'"', b"{", b"~"):
        return r.string().decode("utf-8", "replace")
    if r.peek_upper(3) == b"NIL" and r.peek(4)[3:] in (b"", b" ", b")", b","):
        r.pos += 3
        return None
    return r.astring("an ID field or value").decode("utf-8", "replace")


# -- not authenticated --------------------------------------------------------------------
def _authenticate(r: Reader) -> Authenticate:
    r.sp()
    mechanism = r.atom("a SASL mechanism").upper()
    initial = None
    if r.more():
        r.pos += 1  # RFC 4959 SASL-IR: base64 or "="
        start = r.pos
        while not r.at_end() and r.peek() != b" ":
            r.pos += 1
        initial = r.data[start : r.pos]
        if not initial:
            raise r.error("empty initial response")
    r.end()
    return Authenticate(mechanism, initial)


def _login(r: Reader) -> Login:
    r.sp()
    user = r.text_astring("a user name")
    r.sp()
    password = r.text_astring("a password")
    r.end()
    return Login(user, password)


# -- authenticated ------------------------------------------------------------------------
def _enable(r: Reader) -> Enable:
    caps: list[str] = []
    while r.more():
        r.sp()
        caps.append(r.atom("a capability").upper())
    if not caps:
        raise r.error("ENABLE needs at least one capability")
    r.end()
    return Enable(tuple(caps))


def _mailbox_arg(r: Reader) -> MailboxArg:
    r.sp()
    name = r.mailbox()
    r.end()
    return MailboxArg(name)


def _parameters(r: Reader, what: str) -> Iterator[str]:
    """The names of a parenthesised RFC 4466 parameter list (select-params, fetch-modifiers),
    upper-cased, one at a time: the caller reads each one's value before the next name."""
    r.open_paren()
    first = True
    while r.peek() != b")":
        if not first:
            r.sp()
        first = False
        yield r.atom(what).upper()
    r.close_paren()


def _select(r: Reader) -> MailboxArg:
    """RFC 4466 select-params: ``CONDSTORE`` (RFC 7162 §3.1.8) and ``QRESYNC (...)``
    (§3.2.5), each at most once."""
    r.sp()
    name = r.mailbox()
    condstore = False
    qresync: QResync | None = None
    if r.more():
        r.sp()
        for param in _parameters(r, "a SELECT parameter"):
            if param == "CONDSTORE" and not condstore:
                condstore = True
            elif param == "QRESYNC" and qresync is None:
                r.sp()
                qresync = _qresync(r)
            else:
                raise r.error(f"unsupported or repeated SELECT parameter {param[:40]}")
    r.end()
    return MailboxArg(name, condstore, qresync)


def _qresync(r: Reader) -> QResync:
    """``(uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data])``."""
    r.open_paren()
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.number(nonzero=True, limit=MAX_NUMBER64)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if r.peek() == b" ":
        r.sp()
        if r.peek() != b"(":
            known = _uid_set(r)
            if r.peek() == b" ":
                r.sp()
        if r.peek() == b"(":
            r.open_paren()
            seqs = _uid_set(r)
            r.sp()
            uids = _uid_set(r)
            r.close_paren()
            match = (seqs, uids)
    r.close_paren()
    return QResync(uidvalidity, modseq, known, match)


def _uid_set(r: Reader) -> SequenceSet:
    """A sequence set without ``*`` or ``$`` (RFC 7162 §7 known-uids, seq-match-data)."""
    seq = r.sequence_set()
    if seq.saved or any(a is None or b is None for a, b in seq.ranges):
        raise r.error("'*' and '$' are not allowed in QRESYNC sets")
    return seq


def _modifier(r: Reader, name: bytes) -> int:
    """``(NAME mod-sequence-value)``: STORE's one modifier, UNCHANGEDSINCE (RFC 7162
    §3.1.3)."""
    r.open_paren()
    word = r.atom("a modifier").upper()
    if word.encode() != name:
        raise r.error(f"unsupported modifier {word[:40]}")
    r.sp()
    value = r.number(limit=MAX_NUMBER64)  # mod-sequence-valzer: zero allowed
    r.close_paren()
    return value


#: Longest name CREATE or RENAME may give a mailbox, in characters (James's limit; Dovecot
#: stops near 255). Longer is no valid new name, so BAD like a name that is not valid
#: modified UTF-7. The store itself holds up to 512, for names that came in another way.
MAX_NEW_NAME_LENGTH = 200


def _new_mailbox(r: Reader) -> str:
    name = r.mailbox()
    if len(name) > MAX_NEW_NAME_LENGTH:
        raise r.error(f"mailbox name longer than {MAX_NEW_NAME_LENGTH} characters")
    return name


def _create(r: Reader) -> Create:
    r.sp()
    name = _new_mailbox(r)
    uses: list[str] = []
    if r.more():
        r.sp()
        r.open_paren()  # RFC 4466 create-param; RFC 6154 §3 "USE" (list of attributes)
        r.expect(b"USE ", "USE")
        r.open_paren()
        while r.peek() != b")":
            if uses:
                r.sp()
            uses.append(r.flag())
        r.close_paren()
        r.close_paren()
    r.end()
    return Create(name, tuple(uses))


def _rename(r: Reader) -> Rename:
    r.sp()
    old = r.mailbox()
    r.sp()
    new = _new_mailbox(r)
    r.end()
    return Rename(old, new)


def _options(r: Reader, allowed: frozenset[str], what: str) -> list[str]:
    r.open_paren()
    opts: list[str] = []
    while r.peek() != b")":
        if opts:
            r.sp()
        opt = r.atom(f"a {what} option").upper()
        if opt not in allowed:
            raise r.error(f"unknown {what} option {opt[:40]}")
        opts.append(opt)
        if opt == "STATUS":
            r.sp()
            opts.extend("STATUS:" + item for item in _status_items(r))
    r.close_paren()
    return opts


def _status_items(r: Reader) -> list[str]:
    r.open_paren()
    items: list[str] = []
    while r.peek() != b")":
        if items and not r.more_in_list():
            break
        item = r.atom("a status item").upper()
        if item not in STATUS_ITEMS:
            raise r.error(f"unknown STATUS item {item[:40]}")
        items.append(item)
    r.close_paren()
    if not items:
        raise r.error("STATUS needs at least one item")
    return items


def _list(r: Reader, *, lsub: bool = False) -> ListArgs:
    r.sp()
    selection: list[str] = []
    extended = False
    if not lsub and r.peek() == b"(":
        selection = _options(r, LIST_SELECTION, "LIST selection")
        extended = True
        r.sp()
    reference = r.list_mailbox()
    r.sp()
    patterns: list[str] = []
    if not lsub and r.peek() == b"(":
        extended = True
        r.open_paren()
        while r.peek() != b")":
            if patterns:
                r.sp()
            patterns.append(r.list_mailbox())
        r.close_paren()
        if not patterns:
            raise r.error("empty pattern list")
    else:
        patterns.append(r.list_mailbox())
    returns: list[str] = []
    status_items: list[str] = []
    if not lsub and r.more():
        r.sp()
        r.expect(b"RETURN ", "RETURN")
        extended = True
        for opt in _options(r, LIST_RETURN, "LIST return"):
            if opt.startswith("STATUS:"):
                status_items.append(opt[7:])
            else:
                returns.append(opt)
    r.end()
    if "RECURSIVEMATCH" in selection and len(selection) == 1:
        raise r.error("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3.1
    return ListArgs(
        reference,
        tuple(patterns),
        frozenset(selection),
        frozenset(returns),
        tuple(status_items),
        extended,
        lsub,
    )


def _status(r: Reader) -> Status:
    r.sp()
    name = r.mailbox()
    r.sp()
    items = _status_items(r)
    r.end()
    return Status(name, tuple(items))


def _getquota(r: Reader) -> GetQuota:
    """RFC 9208 §7: getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring."""
    r.sp()
    root = r.text_astring("a quota root name")
    r.end()
    return GetQuota(root)


def _setquota(r: Reader) -> SetQuota:
    """RFC 9208 §7: setquota = "SETQUOTA" SP quota-root-name SP setquota-list;
    setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")";
    setquota-resource = resource-name SP resource-limit (an atom and a number64)."""
    r.sp()
    root = r.text_astring("a quota root name")
    r.sp()
    r.open_paren()
    limits: list[tuple[str, int]] = []
    while r.peek() != b")":
        if limits:
            r.sp()
        resource = r.atom("a resource name").upper()
        r.sp()
        limits.append((resource, r.number(limit=MAX_NUMBER64)))
    r.close_paren()
    r.end()
    return SetQuota(root, tuple(limits))


def _append(r: Reader) -> Append:
    r.sp()
    name = r.mailbox()
    r.sp()
    flags: list[str] = []
    date: datetime | None = None
    if r.peek() == b"(":
        flags = [normalize_flag(f) for f in r.flag_list()]
        r.sp()
    if r.peek() == b'"':
        date = r.date_time()
        r.sp()
    if r.peek_upper(4) == b"UTF8":
        # RFC 6855 §4: UTF8 (literal8)
        r.expect(b"UTF8 (", "UTF8 (")
        message = r.literal(binary=True)
        r.expect(b")", "')'")
    else:
        message = r.literal(binary=True)
    if r.more():
        raise r.error("MULTIAPPEND is not supported")
    r.end()
    return Append(name, tuple(flags), date, message)


# -- selected -----------------------------------------------------------------------------
def _fetch(r: Reader) -> Fetch:
    r.sp()
    seq = r.sequence_set()
    r.sp()
    items = fetch_atts(r)
    changed_since = None
    vanished = False
    partial: PartialRange | None = None
    if r.more():
        # RFC 4466 §2.4: "(" fetch-modifier *(SP fetch-modifier) ")", in any order (RFC 9394
        # §3.4); CHANGEDSINCE n, VANISHED (RFC 7162), PARTIAL range (RFC 9394 §4).
        r.sp()
        for word in _parameters(r, "a FETCH modifier"):
            if word == "CHANGEDSINCE" and changed_since is None:
                r.sp()
                changed_since = r.number(nonzero=True, limit=MAX_NUMBER64)
            elif word == "VANISHED" and not vanished:
                vanished = True
            elif word == "PARTIAL" and partial is None:
                r.sp()
                partial = r.partial_range()
            else:
                raise r.error(f"unsupported or repeated FETCH modifier {word[:40]}")
        if vanished and changed_since is None:
            raise r.error("VANISHED needs CHANGEDSINCE")  # RFC 7162 §3.2.6
    r.end()
    return Fetch(seq, tuple(items), changed_since, vanished, partial)


def _store(r: Reader) -> Store:
    r.sp()
    seq = r.sequence_set()
    r.sp()
    unchanged_since = None
    if r.peek() == b"(":
        unchanged_since = _modifier(r, b"UNCHANGEDSINCE")
        r.sp()
    mode = "set"
    if r.peek() in (b"+", b"-"):
        mode = "add" if r.peek() == b"+" else "remove"
        r.pos += 1
    r.expect(b"FLAGS", "FLAGS")
    silent = r.skip(b".SILENT")
    r.sp()
    if r.peek() == b"(":
        flags = r.flag_list()
    else:
        flags = [r.flag()]
        while r.more():
            r.sp()
            flags.append(r.flag())
    r.end()
    for flag in flags:
        if flag.startswith("\\") and flag.lower() not in _SYSTEM_LOWER:
            raise r.error(f"{flag[:40]} is not a flag that can be stored")
    return Store(
        seq, mode, silent, tuple(normalize_flag(f) for f in flags), unchanged_since
    )


_SYSTEM_LOWER = frozenset({"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"})


def _copy_move(r: Reader) -> CopyMove:
    r.sp()
    seq = r.sequence_set()
    r.sp()
    name = r.mailbox()
    r.end()
    return CopyMove(seq, name)


def _search(r: Reader) -> SearchArgs:
    r.sp()
    return search_args(r)


def _uid_expunge(r: Reader) -> Sequence:
    r.sp()
    seq = r.sequence_set()
    r.end()
    return Sequence(seq)


Grammar = Callable[[Reader], object]

GRAMMARS: dict[str, Grammar] = {
    # any state (RFC 9051 §6.1)
    "CAPABILITY": _no_args,
    "NOOP": _no_args,
    "LOGOUT": _no_args,
    "ID": _id,
    # not authenticated (§6.2)
    "STARTTLS": _no_args,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    # authenticated (§6.3)
    "ENABLE": _enable,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox_arg,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_arg,
    "UNSUBSCRIBE": _mailbox_arg,
    "LIST": _list,
    "LSUB": lambda r: _list(r, lsub=True),
    "NAMESPACE": _no_args,
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _no_args,
    "GETQUOTA": _getquota,  # RFC 9208 §4.1
    "GETQUOTAROOT": _mailbox_arg,
    "SETQUOTA": _setquota,
    # selected (§6.4)
    "CHECK": _no_args,
    "CLOSE": _no_args,
    "UNSELECT": _no_args,
    "EXPUNGE": _no_args,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "UID SEARCH": _search,
    "UID FETCH": _fetch,
    "UID STORE": _store,
    "UID COPY": _copy_move,
    "UID MOVE": _copy_move,
    "UID EXPUNGE": _uid_expunge,
}


def parse_tag(data: bytes) -> str | None:
    """The tag of a frame, if it has a valid one (used to address a BAD)."""
    r = Reader(data)
    try:
        tag = r.tag_token()
    except ParseError:
        return None
    return tag if r.peek() in (b" ", b"") else None


def parse_command(data: bytes, *, utf8: bool = False) -> Command:
    """One frame -> Command; ParseError (carrying the tag when known) on any syntax error."""
    r = Reader(data, utf8=utf8)
    try:
        tag = r.tag_token()
    except ParseError:
        raise ParseError("missing or invalid tag") from None
    r.tag = tag
    if r.peek() != b" ":
        raise r.error("missing command")
    r.pos += 1
    name = r.atom("a command name").upper()
    if name == "UID":
        r.sp()
        name = "UID " + r.atom("a command name after UID").upper()
    grammar = GRAMMARS.get(name)
    if grammar is None:
        raise r.error(f"unknown command {name[:40]}")
    try:
        args = grammar(r)
    except ParseError as exc:
        exc.command = name  # a known command with bad arguments, not a stray line
        raise
    return Command(tag, name, args)
