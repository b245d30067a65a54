"""Command grammars and the typed argument record each one returns (RFC 9051 §6).

A grammar is a function of a :class:`Reader` positioned after the command name; it reads
the arguments and returns the command's record (or None for a command without arguments),
raising :class:`ParseError` at the first octet that does not fit. Which grammar serves which
command is said once, in the command table (:data:`mailstead.imap.commands.COMMANDS`);
:func:`parse_command` takes that mapping. State is not checked here: the session checks it
once, from the same table, before dispatch. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from mailstead.core.message_data import MessageData
from mailstead.core.types import FlagMode, normalize_flag
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.fetch import FetchAtt, fetch_atts
from mailstead.imap.parse.imapurl import MAX_URL_LENGTH
from mailstead.imap.parse.primitives import MAX_NUMBER64, PartialRange, Reader, SequenceSet
from mailstead.imap.parse.receiver import AsideLiteral
from mailstead.imap.parse.search import SearchArgs, search_args

A = TypeVar("A")
#: Reads one command's arguments into its record.
Grammar = Callable[[Reader], A]


@dataclass(frozen=True, slots=True)
class Command(Generic[A]):
    """One parsed command: ``name`` upper case (UID commands are "UID FETCH" etc.) and
    ``args`` the record its grammar returned."""

    tag: str
    name: str
    args: A


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
    """DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT: one mailbox name."""

    name: str


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT and EXAMINE with their RFC 4466 select-params."""

    name: str
    condstore: bool = False  # (CONDSTORE), RFC 7162 §3.1.8
    qresync: QResync | None = None  # (QRESYNC (...)), RFC 7162 §3.2.5


@dataclass(frozen=True, slots=True)
class Create:
    name: str
    special_use: tuple[str, ...] = ()  # RFC 6154 §3 CREATE (USE (...))


@dataclass(frozen=True, slots=True)
class Rename:
    old: str
    new: str


class StatusItem(StrEnum):
    """What STATUS can report (RFC 9051 §6.3.11, RFC 8438 SIZE, RFC 7889 APPENDLIMIT, RFC
    7162 HIGHESTMODSEQ, RFC 8474 MAILBOXID, RFC 9208 DELETED-STORAGE), in the order every
    answer lists them whatever the order asked. RFC 9051 leaves the order open; this is
    Apache James's (MailboxStatusResponseEncoder), with MAILBOXID last as its scripts
    expect, so that each item has one place in every answer."""

    APPENDLIMIT = "APPENDLIMIT"
    MESSAGES = "MESSAGES"
    SIZE = "SIZE"
    DELETED = "DELETED"
    DELETED_STORAGE = "DELETED-STORAGE"
    RECENT = "RECENT"
    UIDNEXT = "UIDNEXT"
    HIGHESTMODSEQ = "HIGHESTMODSEQ"
    UIDVALIDITY = "UIDVALIDITY"
    UNSEEN = "UNSEEN"
    MAILBOXID = "MAILBOXID"


class ListSelection(StrEnum):
    """LIST selection options (RFC 5258 §3, RFC 6154 §5.1)."""

    SUBSCRIBED = "SUBSCRIBED"
    REMOTE = "REMOTE"
    RECURSIVEMATCH = "RECURSIVEMATCH"
    SPECIAL_USE = "SPECIAL-USE"


#: The selection options that select by themselves (RFC 5258 §6 list-select-base-opt,
#: extended by RFC 6154 §6); RECURSIVEMATCH modifies these and CHILDINFO names them.
LIST_BASE_SELECTION = frozenset({ListSelection.SUBSCRIBED, ListSelection.SPECIAL_USE})


class ListReturn(StrEnum):
    """LIST return options (RFC 5258 §3, RFC 6154 §5.2, RFC 5819 STATUS)."""

    SUBSCRIBED = "SUBSCRIBED"
    CHILDREN = "CHILDREN"
    SPECIAL_USE = "SPECIAL-USE"
    STATUS = "STATUS"
    MYRIGHTS = "MYRIGHTS"  # RFC 8440 LIST-MYRIGHTS


@dataclass(frozen=True, slots=True)
class ListArgs:
    """LIST / LSUB with RFC 5258 LIST-EXTENDED options and RFC 5819 RETURN (STATUS)."""

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[ListSelection] = frozenset()
    returns: frozenset[ListReturn] = frozenset()
    status_items: tuple[StatusItem, ...] = ()
    extended: bool = False  # any selection/return option or multiple patterns used


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    items: tuple[StatusItem, ...]


@dataclass(frozen=True, slots=True)
class CatText:
    """A TEXT part of CATENATE (RFC 4469 §5): a literal's octets, or spooled to a file;
    None when the budgets refused them."""

    data: bytes | MessageData | None


@dataclass(frozen=True, slots=True)
class CatURL:
    """A URL part of CATENATE (RFC 4469 §5): the IMAP URL as sent, resolved when the
    command runs (``mailstead.imap.catenate``)."""

    url: str


@dataclass(frozen=True, slots=True)
class Catenate:
    """``CATENATE (part ...)``: the message is made of these, in order (RFC 4469 §3)."""

    parts: tuple[CatText | CatURL, ...]


#: What an APPEND or REPLACE message is: the octets (in memory or spooled; None when the
#: budgets refused them), or the parts CATENATE assembles it from.
MessageSource = bytes | MessageData | Catenate | None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of APPEND (RFC 3502 append-message) or REPLACE: its flags, date and
    data (see :data:`MessageSource`)."""

    flags: tuple[str, ...]
    date: datetime | None
    message: MessageSource


@dataclass(frozen=True, slots=True)
class Append:
    name: str
    flags: tuple[str, ...]
    date: datetime | None
    #: The octets, or the message spooled to a file as it arrived; None when the budgets
    #: for message data refused it (the command is answered NO [UNAVAILABLE]); or the
    #: parts of a CATENATE.
    message: MessageSource
    #: The messages after the first (MULTIAPPEND, RFC 3502), in the order sent.
    more: tuple[AppendMessage, ...] = ()

    @property
    def messages(self) -> tuple[AppendMessage, ...]:
        """Every message of the command, the first included."""
        return (AppendMessage(self.flags, self.date, self.message), *self.more)


@dataclass(frozen=True, slots=True)
class Replace:
    """REPLACE / UID REPLACE (RFC 8508 §3): the message to replace (a sequence set of one
    number, so the view resolves ``*`` and ranges as for the other commands), the mailbox
    to append to and the new message."""

    sequence: SequenceSet
    name: str
    message: AppendMessage


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
    mode: FlagMode  # FLAGS, +FLAGS, -FLAGS
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None  # RFC 7162 §3.1.3 UNCHANGEDSINCE modifier


@dataclass(frozen=True, slots=True)
class CopyMove:
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class CancelUpdate:
    """CANCELUPDATE (RFC 5267 §4.3.5): the tags of the live results to stop."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """UID EXPUNGE (RFC 4315 §2.1): the UIDs to expunge, if flagged \\Deleted."""

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


# -- any state ----------------------------------------------------------------------------
def no_args(r: Reader) -> None:
    """A command that takes no arguments (CAPABILITY, NOOP, ...): anything more is BAD."""
    r.end()


def compress(r: Reader) -> str:
    """RFC 4978 §3: compress = "COMPRESS" SP algorithm; the algorithm name, upper case."""
    r.sp()
    algorithm = r.atom("a compression algorithm").upper()
    r.end()
    return algorithm


MAX_ID_PARAMS = 30  # RFC 2971 §3.3: at most 30 field-value pairs


def id_params(r: Reader) -> Id:
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
    if r.at_string():
        return r.string().decode("utf-8", "replace")
    if r.peek_upper(3) == b"NIL" and r.peek(4)[3:] in (b"", b" ", b")", b","):
        r.pos += 3
        return None
    return r.astring("an ID field or value").decode("utf-8", "replace")


# -- not authenticated --------------------------------------------------------------------
def authenticate(r: Reader) -> Authenticate:
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


def login(r: Reader) -> Login:
    r.sp()
    user = r.text_astring("a user name")
    r.sp()
    password = r.text_astring("a password")
    r.end()
    return Login(user, password)


# -- authenticated ------------------------------------------------------------------------
def enable(r: Reader) -> Enable:
    caps: list[str] = []
    while r.more():
        r.sp()
        caps.append(r.atom("a capability").upper())
    if not caps:
        raise r.error("ENABLE needs at least one capability")
    r.end()
    return Enable(tuple(caps))


def mailbox_arg(r: Reader) -> MailboxArg:
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


def select(r: Reader) -> Select:
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
    return Select(name, condstore, qresync)


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


def create(r: Reader) -> Create:
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


def rename(r: Reader) -> Rename:
    r.sp()
    old = r.mailbox()
    r.sp()
    new = _new_mailbox(r)
    r.end()
    return Rename(old, new)


E = TypeVar("E", bound=StrEnum)


def _option(r: Reader, kind: type[E], what: str) -> E:
    word = r.atom(f"a {what}").upper()
    try:
        return kind(word)
    except ValueError:
        raise r.error(f"unknown {what} {word[:40]}") from None


def _selection(r: Reader) -> list[ListSelection]:
    r.open_paren()
    opts: list[ListSelection] = []
    while r.peek() != b")":
        if opts:
            r.sp()
        opts.append(_option(r, ListSelection, "LIST selection option"))
    r.close_paren()
    return opts


def _returns(r: Reader) -> tuple[list[ListReturn], list[StatusItem]]:
    r.open_paren()
    opts: list[ListReturn] = []
    items: list[StatusItem] = []
    while r.peek() != b")":
        if opts:
            r.sp()
        opt = _option(r, ListReturn, "LIST return option")
        opts.append(opt)
        if opt is ListReturn.STATUS:
            r.sp()
            items.extend(_status_items(r))
    r.close_paren()
    return opts, items


def _status_items(r: Reader) -> list[StatusItem]:
    r.open_paren()
    items: list[StatusItem] = []
    while r.peek() != b")":
        if items and not r.more_in_list():
            break
        items.append(_option(r, StatusItem, "STATUS item"))
    r.close_paren()
    if not items:
        raise r.error("STATUS needs at least one item")
    return items


def lsub(r: Reader) -> ListArgs:
    """LSUB (RFC 3501 §6.3.9): a reference and one pattern, no options."""
    return list_args(r, lsub=True)


def list_args(r: Reader, *, lsub: bool = False) -> ListArgs:
    r.sp()
    selection: list[ListSelection] = []
    extended = False
    if not lsub and r.peek() == b"(":
        selection = _selection(r)
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
    returns: list[ListReturn] = []
    status_items: list[StatusItem] = []
    if not lsub and r.more():
        r.sp()
        r.expect(b"RETURN ", "RETURN")
        extended = True
        returns, status_items = _returns(r)
    r.end()
    if ListSelection.RECURSIVEMATCH in selection and not LIST_BASE_SELECTION & set(selection):
        # RFC 5258 §3.1 and §6 list-select-opts: a modifier needs a base option; REMOTE is
        # independent and does not count, so (RECURSIVEMATCH REMOTE) is as invalid as
        # (RECURSIVEMATCH) alone.
        raise r.error("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE")
    return ListArgs(
        reference,
        tuple(patterns),
        frozenset(selection),
        frozenset(returns),
        tuple(status_items),
        extended,
    )


def status(r: Reader) -> Status:
    r.sp()
    name = r.mailbox()
    r.sp()
    items = _status_items(r)
    r.end()
    return Status(name, tuple(items))


def getquota(r: Reader) -> GetQuota:
    """RFC 9208 §7: getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring."""
    r.sp()
    root = r.text_astring("a quota root name")
    r.end()
    return GetQuota(root)


def setquota(r: Reader) -> SetQuota:
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


#: The most messages one MULTIAPPEND may carry; their octets are already bounded by the
#: budgets for message data, this bounds the rows and bodies of one transaction.
MAX_APPEND_MESSAGES = 1000


#: The most parts one CATENATE message may have, and one command may have in all: each
#: URL part is a few store reads when the command runs.
MAX_CATENATE_PARTS = 256
MAX_CATENATE_PARTS_PER_COMMAND = 1000


def append(r: Reader) -> Append:
    """RFC 3502 §6.3.11: append = "APPEND" SP mailbox 1*append-message."""
    r.sp()
    name = r.mailbox()
    r.sp()
    first = _append_message(r)
    more: list[AppendMessage] = []
    parts = _parts(first)
    while r.more():
        if len(more) + 1 >= MAX_APPEND_MESSAGES:
            raise r.error(f"more than {MAX_APPEND_MESSAGES} messages in one APPEND")
        r.sp()
        more.append(_append_message(r))
        parts += _parts(more[-1])
        if parts > MAX_CATENATE_PARTS_PER_COMMAND:
            raise r.error(f"more than {MAX_CATENATE_PARTS_PER_COMMAND} CATENATE parts in one "
                          "APPEND")
    r.end()
    return Append(name, first.flags, first.date, first.message, tuple(more))


def _parts(message: AppendMessage) -> int:
    return len(message.message.parts) if isinstance(message.message, Catenate) else 0


def _append_message(r: Reader) -> AppendMessage:
    """append-opts SP append-data, after its leading SP (RFC 3502 §6.3.11, RFC 4466 §2.3):
    an optional flag list and date-time, then the literal."""
    flags: list[str] = []
    date: datetime | None = None
    if r.peek() == b"(":
        flags = [normalize_flag(f) for f in r.flag_list()]
        r.sp()
    if r.peek() == b'"':
        date = r.date_time()
        r.sp()
    message: MessageSource
    if r.peek_upper(4) == b"UTF8":
        # RFC 6855 §4: UTF8 (literal8)
        r.expect(b"UTF8 (", "UTF8 (")
        message = r.message_literal()
        r.expect(b")", "')'")
    elif r.peek_upper(8) == b"CATENATE":
        r.pos += 8
        r.sp()
        message = _catenate(r)
    else:
        message = r.message_literal()
    return AppendMessage(tuple(flags), date, message)


def _catenate(r: Reader) -> Catenate:
    """RFC 4469 §5: "CATENATE" SP "(" cat-part *(SP cat-part) ")", cat-part = "TEXT" SP
    literal / "URL" SP astring. A TEXT part may be a literal8 (``~{n}``): with BINARY
    (RFC 3516, which we advertise) it may hold any octet, NUL included; a plain literal may
    not (RFC 9051 §4.3)."""
    r.open_paren()
    parts: list[CatText | CatURL] = []
    while True:
        if len(parts) >= MAX_CATENATE_PARTS:
            raise r.error(f"more than {MAX_CATENATE_PARTS} parts in one CATENATE")
        if r.skip(b"TEXT"):
            r.sp()
            parts.append(CatText(r.message_literal()))
        elif r.skip(b"URL"):
            r.sp()
            url = r.astring("a URL")
            if len(url) > MAX_URL_LENGTH:  # it would be echoed in NO [BADURL url]
                raise r.error(f"URL longer than {MAX_URL_LENGTH} octets")
            parts.append(CatURL(url.decode("utf-8", "surrogateescape")))
        else:
            raise r.error("expected TEXT or URL")
        if not r.more_in_list():
            break
    r.close_paren()
    return Catenate(tuple(parts))


def replace(r: Reader) -> Replace:
    """RFC 8508 formal syntax: replace = "REPLACE" SP seq-number SP mailbox append-message (one
    message: no MULTIAPPEND here); for UID REPLACE the number is a UID."""
    r.sp()
    seq = r.sequence_set()
    if seq.saved or len(seq.ranges) != 1 or seq.ranges[0][0] != seq.ranges[0][1]:
        raise r.error("REPLACE takes one message number")
    r.sp()
    name = r.mailbox()
    r.sp()
    message = _append_message(r)
    r.end()
    return Replace(seq, name, message)


# -- selected -----------------------------------------------------------------------------
def fetch(r: Reader) -> Fetch:
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


def store(r: Reader) -> Store:
    r.sp()
    seq = r.sequence_set()
    r.sp()
    unchanged_since = None
    if r.peek() == b"(":
        unchanged_since = _modifier(r, b"UNCHANGEDSINCE")
        r.sp()
    mode = FlagMode.SET
    if r.peek() in (b"+", b"-"):
        mode = FlagMode.ADD if r.peek() == b"+" else FlagMode.REMOVE
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


def copy_move(r: Reader) -> CopyMove:
    r.sp()
    seq = r.sequence_set()
    r.sp()
    name = r.mailbox()
    r.end()
    return CopyMove(seq, name)


def search(r: Reader) -> SearchArgs:
    r.sp()
    return search_args(r)


#: More tags than live results can exist only repeat them; a bound keeps the line cheap.
MAX_CANCEL_TAGS = 64


def cancelupdate(r: Reader) -> CancelUpdate:
    """RFC 5267 §5: command-select =/ "CANCELUPDATE" 1*(SP quoted)."""
    tags: list[str] = []
    while True:
        r.sp()
        tags.append(r.quoted().decode("utf-8", "replace"))
        if len(tags) > MAX_CANCEL_TAGS:
            raise r.error(f"more than {MAX_CANCEL_TAGS} tags")
        if not r.more():
            break
    r.end()
    return CancelUpdate(tuple(tags))


def uid_expunge(r: Reader) -> UidExpunge:
    r.sp()
    seq = r.sequence_set()
    r.end()
    return UidExpunge(seq)


def parse_tag(data: bytes) -> str | None:
    """The tag of a frame, if it has a valid one (used to address a BAD)."""
    r = Reader(data)
    try:
        tag = r.tag_token()
    except ParseError:
        return None
    return tag if r.peek() in (b" ", b"") else None


def parse_command(
    data: bytes, grammars: Mapping[str, Grammar[Any]], *, utf8: bool = False,
    aside: Mapping[int, AsideLiteral] | None = None,
) -> Command[Any]:
    """One frame -> Command, with the grammar ``grammars`` names for the command;
    ParseError (carrying the tag when known) on any syntax error or unknown command.
    ``aside`` holds the literals the session spooled (receiver.Frame)."""
    r = Reader(data, utf8=utf8, aside=aside)
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
    grammar = grammars.get(name)
    if grammar is None:
        raise r.error(f"unknown command {name[:40]}")
    try:
        args = grammar(r)
    except ParseError as exc:
        exc.command = name  # a known command with bad arguments, not a stray line
        raise
    return Command(tag, name, args)
