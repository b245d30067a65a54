"""Pure parser tests: framing split at every byte, grammars, sequence sets, errors."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstead.core.types import FlagMode
from mailstead.imap.commands import GRAMMARS
from mailstead.imap.mutf7 import MUTF7Error, decode_mutf7, encode_mutf7
from mailstead.imap.parse.commands import (
    Append,
    Command,
    CopyMove,
    Create,
    Fetch,
    GetQuota,
    Id,
    ListArgs,
    Login,
    MailboxArg,
    Rename,
    Select,
    SetQuota,
    Status,
    StatusItem,
    Store,
    parse_command,
    parse_tag,
)
from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.fetch import FetchItem
from mailstead.imap.parse.primitives import PartialRange, Reader, SequenceSet
from mailstead.imap.parse.receiver import Frame, FrameError, NeedLiteral, NeedMore, Receiver
from mailstead.imap.parse.search import (
    And,
    Flag,
    ModSeq,
    Numbers,
    Or,
    SearchArgs,
    Text,
    TextField,
)
from mailstead.imap.selected import InvalidSequence, SelectedMailbox
from mailstead.mime.sections import Section, SectionText
from mailstead.store.models import Mailbox


def parse(data: bytes, *, utf8: bool = False) -> Command[Any]:
    """One frame through the grammars of the command table, as the session parses it."""
    return parse_command(data, GRAMMARS, utf8=utf8)


def drive(rx: Receiver, data: bytes, split: list[int]) -> list[object]:
    """Feed ``data`` in pieces cut at ``split`` and collect every event but NeedMore."""
    events: list[object] = []
    cuts = [0, *sorted(set(split)), len(data)]
    for a, b in itertools.pairwise(cuts):
        rx.feed(data[a:b])
        while True:
            ev = rx.next()
            if isinstance(ev, NeedMore):
                break
            events.append(ev)
    return events


WIRE = (
    b"a1 LOGIN {3}\r\nbob {6+}\r\nsecret\r\n"
    b"a2 APPEND INBOX (\\Seen) {5}\r\nhello\r\n"
    b"a3 NOOP\r\n"
    b"a4 APPEND INBOX ~{4}\r\n\x00\x01\x02\x03\r\n"
)
FRAMES = [
    Frame(b"a1 LOGIN {3}\r\nbob {6}\r\nsecret"),
    Frame(b"a2 APPEND INBOX (\\Seen) {5}\r\nhello"),
    Frame(b"a3 NOOP"),
    Frame(b"a4 APPEND INBOX ~{4}\r\n\x00\x01\x02\x03"),
]


def test_receiver_whole_input() -> None:
    events = drive(Receiver(), WIRE, [])
    assert [e for e in events if isinstance(e, Frame)] == FRAMES
    lits = [e for e in events if isinstance(e, NeedLiteral)]
    assert [(lit.size, lit.synchronizing, lit.binary) for lit in lits] == [
        (3, True, False), (6, False, False), (5, True, False), (4, True, True),
    ]
    assert lits[2].command == "APPEND" and lits[2].tag == "a2"


def test_receiver_split_at_every_byte() -> None:
    for i in range(len(WIRE) + 1):
        events = drive(Receiver(), WIRE, [i])
        assert [e for e in events if isinstance(e, Frame)] == FRAMES, i


@given(st.lists(st.integers(min_value=0, max_value=len(WIRE)), max_size=12))
@settings(max_examples=200, deadline=None)
def test_receiver_any_split(split: list[int]) -> None:
    events = drive(Receiver(), WIRE, split)
    assert [e for e in events if isinstance(e, Frame)] == FRAMES


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=6))
@settings(max_examples=200, deadline=None)
def test_receiver_never_crashes(data: bytes, split: list[int]) -> None:
    """Any bytes, cut anywhere: frames within the limits, or FrameError, never another
    exception."""
    rx = Receiver(max_line=100, max_command=200)
    events: list[object] = []
    with contextlib.suppress(FrameError):
        events = drive(rx, data, [s for s in split if s <= len(data)])
    for event in events:
        if isinstance(event, Frame):
            assert len(event.data) <= 200
            assert not event.data.endswith(b"\n")


def test_receiver_long_line_is_discarded_then_recovers() -> None:
    rx = Receiver(max_line=50)
    rx.feed(b"a1 NOOP " + b"x" * 100)
    assert isinstance(rx.next(), NeedMore)
    rx.feed(b"yyy\r\na2 NOOP\r\n")
    with pytest.raises(FrameError) as err:
        rx.next()
    assert "too long" in err.value.reason
    assert rx.next() == Frame(b"a2 NOOP")


def test_receiver_command_too_large() -> None:
    rx = Receiver(max_command=100)
    rx.feed(b"a1 APPEND INBOX {1000}\r\n")
    with pytest.raises(FrameError) as err:
        rx.next()
    assert err.value.tag == "a1" and not err.value.fatal
    rx.feed(b"a1 APPEND INBOX {1000+}\r\n")
    with pytest.raises(FrameError) as err:
        rx.next()
    assert err.value.fatal


def test_receiver_reject_literal_resets() -> None:
    rx = Receiver()
    rx.feed(b"a1 APPEND INBOX {99999}\r\n")
    lit = rx.next()
    assert isinstance(lit, NeedLiteral) and lit.synchronizing
    rx.reject_literal()
    rx.feed(b"a2 NOOP\r\n")
    assert rx.next() == Frame(b"a2 NOOP")


# -- sequence sets ----------------------------------------------------------------------
def seqset(text: str) -> SequenceSet:
    return Reader(text.encode()).sequence_set()


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("1", ((1, 1),)),
        ("1:5", ((1, 5),)),
        ("5:1", ((5, 1),)),
        ("*", ((None, None),)),
        ("3:*", ((3, None),)),
        ("*:3", ((None, 3),)),
        ("1,3:4,9:*", ((1, 1), (3, 4), (9, None))),
    ],
)
def test_sequence_set_grammar(text: str, ranges: tuple[object, ...]) -> None:
    assert seqset(text).ranges == ranges


def test_sequence_set_dollar_and_errors() -> None:
    assert seqset("$").saved
    for bad in ("0", "1:0", ",1", "a", "4294967296"):
        with pytest.raises(ParseError):
            r = Reader(bad.encode())
            r.sequence_set()
            r.end()


def _view(uids: list[int]) -> SelectedMailbox:
    from datetime import UTC, datetime

    from mailstead.core.types import UID, ModSeq
    from mailstead.store.models import MessageMeta

    box = Mailbox(1, 1, "INBOX", 7, max(uids, default=0) + 1, 1, None, False)
    metas = [
        MessageMeta(1, UID(u), ModSeq(1), frozenset(), datetime.now(UTC), 1, "b") for u in uids
    ]
    return SelectedMailbox(box, metas, readonly=False)


@given(
    st.lists(st.integers(min_value=1, max_value=60), unique=True, max_size=30).map(sorted),
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(min_value=1, max_value=70)),
            st.one_of(st.none(), st.integers(min_value=1, max_value=70)),
        ),
        min_size=1,
        max_size=4,
    ),
)
@settings(max_examples=300, deadline=None)
def test_uid_resolution_matches_definition(uids: list[int], ranges: list[tuple]) -> None:
    """RFC 9051 §9: ``*`` is the largest UID in use; a:b == b:a; unknown UIDs are ignored."""
    view = _view(uids)
    text = ",".join(
        f"{'*' if a is None else a}:{'*' if b is None else b}" for a, b in ranges
    )
    got = view.resolve(seqset(text), uid=True)
    top = max(uids, default=0)
    expected: set[int] = set()
    if uids:
        for a, b in ranges:
            lo, hi = sorted((top if a is None else a, top if b is None else b))
            expected |= {u for u in uids if lo <= u <= hi}
    assert got == sorted(expected)


def test_sequence_number_resolution() -> None:
    view = _view([3, 7, 9, 20])
    assert view.resolve(seqset("2:*"), uid=False) == [7, 9, 20]
    assert view.resolve(seqset("*:2"), uid=False) == [7, 9, 20]
    assert view.resolve(seqset("1,4"), uid=False) == [3, 20]
    with pytest.raises(InvalidSequence):
        view.resolve(seqset("5"), uid=False)
    assert view.resolve(seqset("15:*"), uid=True) == [20]
    assert view.resolve(seqset("100:*"), uid=True) == [20]  # * is 20: 20:100
    assert _view([]).resolve(seqset("1:*"), uid=True) == []
    view.saved = [7, 20, 99]
    assert view.resolve(SequenceSet(saved=True), uid=False) == [7, 20]


# -- command grammars --------------------------------------------------------------------
def test_login_with_literals_and_quoted() -> None:
    cmd = parse(b'a LOGIN {3}\r\nbob "p\\"w\\\\d"')
    assert cmd.args == Login("bob", 'p"w\\d')


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"a",
        b"a FOO",
        b"a LOGIN bob",
        b'a LOGIN "bob pass',
        b"a LOGIN bob pass extra",
        b"a FETCH 1 (FLAGS",
        b"a FETCH 0 FLAGS",
        b"a FETCH 1 BODY[HEADER.FIELDS]",
        b"a FETCH 1 BODY[1.]",
        b"a FETCH 1 BINARY[TEXT]",
        b"a STORE 1 +FLAGS (\\Recent)",
        b"a SEARCH FROOBLE",
        b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100,
        b"a SEARCH " + b"NOT " * 100 + b"ALL",
        b"a SELECT INBOX (QRESYNC (1))",
        b"a SELECT INBOX (QRESYNC (1 2 1:*))",
        b"a SELECT INBOX (QRESYNC (1 2 1:5 (1:2)))",
        b"a SELECT INBOX (CONDSTORE CONDSTORE)",
        b"a SELECT INBOX (CONDSTORE",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 0)",
        b"a FETCH 1 FLAGS (CHANGEDSINCE)",
        b"a FETCH 1 FLAGS (VANISHED)",
        b"a UID FETCH 1 FLAGS (CHANGEDSINCE 5 CHANGEDSINCE 6)",
        b"a STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)",
        b"a STORE 1 (CHANGEDSINCE 4) +FLAGS (\\Seen)",
        b"a SEARCH MODSEQ",
        b'a SEARCH MODSEQ "/flags/\\\\seen" mine 4',
        b"a LIST (BOGUS) \"\" *",
        b"a STATUS INBOX (MESSAGES BOGUS)",
        b"a APPEND INBOX {3}\r\nab",
        b"a LOGIN bo\x00b pass",
        b"a SELECT &Jjo",
        b"a CREATE " + b"x" * 201,
        b"a RENAME a " + b"x" * 201,
    ],
)
def test_syntax_errors_have_reasons(line: bytes) -> None:
    with pytest.raises(ParseError) as err:
        parse(line)
    assert err.value.reason
    if line.startswith(b"a ") and len(line) > 2:
        assert err.value.tag == "a"


def test_condstore_grammar() -> None:
    """RFC 7162 §3.1: SELECT (CONDSTORE), FETCH (CHANGEDSINCE), STORE (UNCHANGEDSINCE),
    SEARCH MODSEQ with and without the entry name, MODSEQ fetch item, STATUS item."""
    select = parse(b"a SELECT INBOX (CONDSTORE)").args
    assert isinstance(select, Select) and select.condstore and select.name == "INBOX"
    assert not parse(b"a EXAMINE INBOX ()").args.condstore  # type: ignore[attr-defined]
    fetch = parse(b"a UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345678901)").args
    assert isinstance(fetch, Fetch) and fetch.changed_since == 12345678901
    assert [i.item for i in fetch.items] == [FetchItem.FLAGS, FetchItem.MODSEQ]
    store = parse(b"a STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Deleted)").args
    assert isinstance(store, Store) and store.unchanged_since == 0 and store.silent
    assert parse(b"a STORE 1 FLAGS x").args.unchanged_since is None  # type: ignore[attr-defined]
    for line in (b"a SEARCH MODSEQ 7", b'a SEARCH MODSEQ "/flags/\\\\draft" all 7'):
        args = parse(line).args
        assert isinstance(args, SearchArgs) and args.key == ModSeq(7)
    qresync = parse(
        b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))"
    ).args
    assert isinstance(qresync, Select) and qresync.qresync is not None
    assert qresync.qresync.uidvalidity == 67890007 and qresync.qresync.modseq == 90060115194045000
    assert qresync.qresync.known_uids is not None and qresync.qresync.seq_match is None
    full = parse(
        b"a EXAMINE INBOX (CONDSTORE QRESYNC (1 2 1:9 (1,3:5 2,7:9)))"
    ).args
    assert isinstance(full, Select) and full.condstore and full.qresync is not None
    assert full.qresync.seq_match is not None
    only_match = parse(b"a SELECT INBOX (QRESYNC (1 2 (1 7)))").args
    assert isinstance(only_match, Select) and only_match.qresync is not None
    assert only_match.qresync.known_uids is None and only_match.qresync.seq_match is not None
    vanished = parse(b"a UID FETCH 1:* FLAGS (CHANGEDSINCE 9 VANISHED)").args
    assert isinstance(vanished, Fetch) and vanished.vanished and vanished.changed_since == 9
    status = parse(b"a STATUS INBOX (HIGHESTMODSEQ)").args
    assert isinstance(status, Status) and status.items == (StatusItem.HIGHESTMODSEQ,)


def test_fetch_items() -> None:
    cmd = parse(
        b"a UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From to)]<0.10> BINARY[2] "
        b"BINARY.SIZE[1] RFC822.SIZE)"
    )
    assert cmd.name == "UID FETCH"
    args = cmd.args
    assert isinstance(args, Fetch)
    names = [i.response_name() for i in args.items]
    assert names == [
        "FLAGS", "BODY[1.2.HEADER.FIELDS (From to)]<0>", "BINARY[2]", "BINARY.SIZE[1]",
        "RFC822.SIZE",
    ]
    assert args.items[1].peek and not args.items[1].sets_seen
    assert args.items[1].section == Section(
        (1, 2), SectionText.HEADER_FIELDS, ("From", "to")
    )
    assert args.items[1].section.field_names == {"from", "to"}
    assert args.items[2].section == Section((2,))
    assert parse(b"a FETCH 1 ALL").args.items[3].item is FetchItem.ENVELOPE
    assert parse(b"a FETCH 1 BODY[]").args.items[0].sets_seen


@pytest.mark.parametrize(
    ("line", "lazy", "changed_since"),
    [
        (b"a FETCH 1 PREVIEW", [False], None),
        (b"a FETCH 1 (PREVIEW (LAZY) UID)", [True, False], None),
        (b"a FETCH 1 preview (lazy)", [True], None),
        (b"a FETCH 1 (UID PREVIEW (LAZY LAZY))", [False, True], None),
        # Not a preview-mod: the command's own modifiers (RFC 4466 §2.4).
        (b"a FETCH 1 PREVIEW (CHANGEDSINCE 3)", [False], 3),
        (b"a FETCH 1 (PREVIEW (LAZY)) (CHANGEDSINCE 3)", [True], 3),
    ],
)
def test_fetch_preview(line: bytes, lazy: list[bool], changed_since: int | None) -> None:
    """RFC 8970 formal syntax: fetch-att =/ "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]."""
    args = parse(line).args
    assert isinstance(args, Fetch)
    assert [i.lazy for i in args.items] == lazy
    assert args.changed_since == changed_since
    preview = next(i for i in args.items if i.item is FetchItem.PREVIEW)
    assert preview.response_name() == "PREVIEW" and not preview.sets_seen


@pytest.mark.parametrize(
    "line", [b"a FETCH 1 (PREVIEW (LAZY FOO))", b"a FETCH 1 (PREVIEW (LAZYX))",
             b"a FETCH 1 (PREVIEW (LAZY)", b"a FETCH 1 (PREVIEW ())", b"a FETCH 1 PREVIEW[]"],
)
def test_fetch_preview_refused(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


def test_store_and_copy() -> None:
    args = parse(b"a STORE 2:4 -FLAGS.SILENT (\\seen $Junk)").args
    assert args == Store(SequenceSet(((2, 4),)), FlagMode.REMOVE, True, ("\\Seen", "$Junk"))
    args = parse(b"a UID MOVE $ Trash").args
    assert args == CopyMove(SequenceSet(saved=True), "Trash")


def test_search_program() -> None:
    args = parse(
        b'a UID SEARCH RETURN (MIN COUNT) CHARSET utf-8 OR FROM "x y" (UNSEEN 1:3) '
        b"NOT LARGER 100 SINCE 1-Feb-2024 HEADER X-Foo \"\""
    ).args
    assert isinstance(args, SearchArgs)
    assert args.charset == "UTF-8" and args.return_opts == ("MIN", "COUNT")
    assert isinstance(args.key, And)
    assert args.key.keys[0] == Or(
        Text(TextField.FROM, "x y"),
        And((Flag("\\Seen", False), Numbers(seqset("1:3"), uid=False))),
    )


# -- PARTIAL (RFC 9394) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "opts", "first", "last"),
    [
        (b"a UID SEARCH RETURN (PARTIAL 1:500) UNDELETED", ("PARTIAL",), 1, 500),
        (b"a UID SEARCH RETURN (PARTIAL -1:-100) UNDELETED", ("PARTIAL",), -1, -100),
        (b"a SEARCH RETURN (partial 500:400) ALL", ("PARTIAL",), 500, 400),  # kept as sent
        (b"a SEARCH RETURN (PARTIAL -500:-400) ALL", ("PARTIAL",), -500, -400),
        (b"a SEARCH RETURN (PARTIAL 7:7) ALL", ("PARTIAL",), 7, 7),
        (b"a SEARCH RETURN (PARTIAL 1:4294967295) ALL", ("PARTIAL",), 1, 4294967295),
        (
            b"a SEARCH RETURN (MIN PARTIAL -1:-10 MAX COUNT SAVE) ALL",
            ("MIN", "PARTIAL", "MAX", "COUNT", "SAVE"),
            -1,
            -10,
        ),
    ],
)
def test_search_partial_return_option(
    line: bytes, opts: tuple[str, ...], first: int, last: int
) -> None:
    """RFC 9394 §4: search-return-opt =/ modifier-partial; modifier-partial = "PARTIAL" SP
    partial-range, first:last or -first:-last; the range echoes back as sent (§3.1)."""
    args = parse(line).args
    assert isinstance(args, SearchArgs)
    assert args.return_opts == opts
    assert args.partial == PartialRange(first, last)
    assert str(args.partial) == f"{first}:{last}"
    assert parse(b"a SEARCH RETURN (MIN) ALL").args.partial is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"a SEARCH RETURN (PARTIAL) ALL", "a space"),
        (b"a SEARCH RETURN (PARTIAL 5) ALL", "partial range"),
        (b"a SEARCH RETURN (PARTIAL 1:*) ALL", "partial range"),  # §4: no "*"
        (b"a SEARCH RETURN (PARTIAL *:5) ALL", "partial range"),
        (b"a SEARCH RETURN (PARTIAL 0:5) ALL", "start at 1"),  # nz-number
        (b"a SEARCH RETURN (PARTIAL 1:0) ALL", "start at 1"),
        (b"a SEARCH RETURN (PARTIAL -0:-5) ALL", "start at 1"),
        (b"a SEARCH RETURN (PARTIAL 01:5) ALL", "start at 1"),  # digit-nz *DIGIT
        (b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL", "32-bit"),
        (b"a SEARCH RETURN (PARTIAL -1:5) ALL", "both ends negative"),
        (b"a SEARCH RETURN (PARTIAL 1:-5) ALL", "both ends negative"),
        (b'a SEARCH RETURN (PARTIAL "1:5") ALL', "partial range"),
        (b"a SEARCH RETURN (PARTIAL 1:5x) ALL", "a space"),
        (b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL", "PARTIAL or ALL"),  # §3.1 MUST NOT
        (b"a SEARCH RETURN (ALL PARTIAL 1:5) ALL", "PARTIAL or ALL"),
        (b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL", "PARTIAL or ALL"),
        (b"a SEARCH RETURN (ALL ALL) ALL", "PARTIAL or ALL"),
        (b"a FETCH 1:* FLAGS (PARTIAL)", "a space"),
        (b"a FETCH 1:* FLAGS (PARTIAL 1:*)", "partial range"),
        (b"a UID FETCH 1:* FLAGS (PARTIAL -1:5)", "both ends negative"),
        (b"a UID FETCH 1:* FLAGS (PARTIAL 0:5)", "start at 1"),
        (b"a UID FETCH 1:* FLAGS (PARTIAL 1:5 PARTIAL 1:5)", "repeated FETCH modifier"),
    ],
)
def test_partial_syntax_errors(line: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        parse(line)
    assert reason in err.value.reason and err.value.tag == "a"


def test_fetch_partial_modifier() -> None:
    """RFC 9394 §3.3, §4: fetch-modifier =/ modifier-partial, for UID FETCH and FETCH (RFC
    4466 §2.4 gives both the modifier list); §3.4: any order beside CHANGEDSINCE."""
    fetch = parse(b"a UID FETCH 1:* (UID FLAGS) (PARTIAL -1:-3)").args
    assert isinstance(fetch, Fetch) and fetch.partial == PartialRange(-1, -3)
    assert fetch.changed_since is None and not fetch.vanished
    plain = parse(b"a FETCH 2:5 (UID) (PARTIAL 2:3)").args
    assert isinstance(plain, Fetch) and plain.partial == PartialRange(2, 3)
    for line in (
        b"a UID FETCH 1:* FLAGS (PARTIAL -1:-30 CHANGEDSINCE 98305)",
        b"a UID FETCH 1:* FLAGS (CHANGEDSINCE 98305 partial -1:-30)",
        b"a UID FETCH 1:* FLAGS (CHANGEDSINCE 98305 PARTIAL -1:-30 VANISHED)",
    ):
        args = parse(line).args
        assert isinstance(args, Fetch), line
        assert args.partial == PartialRange(-1, -30) and args.changed_since == 98305
    assert parse(b"a FETCH 1 FLAGS").args.partial is None  # type: ignore[union-attr]


@given(
    st.lists(st.integers(), max_size=40),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=60),
    st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_partial_page_is_the_slice_the_rfc_describes(
    items: list[int], a: int, b: int, from_end: bool
) -> None:
    """RFC 9394 §3.1: result 1 is the first, -1 the last, -2 the one before; a:b equals b:a
    (§4); positions past either end are left out, the rest keep mailbox order."""
    sign = -1 if from_end else 1
    page = list(PartialRange(sign * a, sign * b).page(items))
    low, high = min(a, b), max(a, b)
    n = len(items)
    positions = range(low, high + 1)
    if from_end:  # position -p is index n - p
        expected = [items[n - p] for p in reversed(positions) if p <= n]
    else:
        expected = [items[p - 1] for p in positions if p <= n]
    assert page == expected
    # ... which is Python's own slice: 1-based positions, or negative indices from the end.
    assert page == (items[-high : (-low + 1) or None] if from_end else items[low - 1 : high])


def test_append_with_flags_date_and_utf8() -> None:
    args = parse(
        b'a APPEND Drafts (\\Draft) " 5-Mar-2024 10:11:12 +0100" {2}\r\nhi'
    ).args
    assert isinstance(args, Append)
    assert args.flags == ("\\Draft",) and args.message == b"hi"
    assert args.date is not None and args.date.utcoffset().total_seconds() == 3600  # type: ignore[union-attr]
    args = parse(b"a APPEND INBOX UTF8 (~{2}\r\nhi)").args
    assert isinstance(args, Append) and args.message == b"hi"


def test_tilde_is_an_atom_char_and_only_tilde_brace_is_a_literal8() -> None:
    # RFC 9051 §9: "~" is an ATOM-CHAR; only "~{" announces a literal8 (RFC 3516 §4.2).
    select = parse(b"a SELECT ~foo").args
    assert isinstance(select, Select) and select.name == "~foo"
    create = parse(b"a CREATE ~foo/~bar~").args
    assert isinstance(create, Create) and create.name == "~foo/~bar~"
    listing = parse(b'a LIST "" ~foo').args
    assert isinstance(listing, ListArgs) and listing.patterns == ("~foo",)
    listing = parse(b"a LIST ~ ~*").args
    assert isinstance(listing, ListArgs)
    assert listing.reference == "~" and listing.patterns == ("~*",)
    login = parse(b"a LOGIN ~user ~pass").args
    assert isinstance(login, Login) and (login.username, login.password) == ("~user", "~pass")
    status = parse(b"a STATUS ~ (MESSAGES)").args
    assert isinstance(status, Status) and status.name == "~"
    # "~{" is still a literal8, which an astring does not allow ...
    with pytest.raises(ParseError, match="literal8 is not allowed here"):
        parse(b"a SELECT ~{3}\r\nfoo")
    # ... and APPEND's message still takes one.
    append = parse(b"a APPEND ~foo ~{2}\r\n\x00x").args
    assert isinstance(append, Append)
    assert append.name == "~foo" and append.message == b"\x00x"


def test_list_extended() -> None:
    args = parse(
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Sent/%") '
        b"RETURN (CHILDREN STATUS (MESSAGES UNSEEN))"
    ).args
    assert isinstance(args, ListArgs)
    assert args.selection == {"SUBSCRIBED", "RECURSIVEMATCH"}
    assert args.patterns == ("INBOX", "Sent/%")
    assert args.status_items == ("MESSAGES", "UNSEEN")
    plain = parse(b"a LIST \"\" %").args
    assert isinstance(plain, ListArgs) and not plain.extended


@pytest.mark.parametrize("options", [
    b"RECURSIVEMATCH", b"RECURSIVEMATCH REMOTE", b"REMOTE RECURSIVEMATCH",
    b"RECURSIVEMATCH RECURSIVEMATCH",
])
def test_list_recursivematch_needs_a_base_option(options: bytes) -> None:
    """RFC 5258 §3.1: RECURSIVEMATCH alone "(or only with REMOTE)" MUST be BAD."""
    with pytest.raises(ParseError, match="RECURSIVEMATCH needs"):
        parse(b'a LIST (' + options + b') "" %')
    for valid in (b"SUBSCRIBED REMOTE RECURSIVEMATCH", b"RECURSIVEMATCH SPECIAL-USE"):
        args = parse(b'a LIST (' + valid + b') "" %').args
        assert isinstance(args, ListArgs) and "RECURSIVEMATCH" in args.selection


def test_mailbox_names_mutf7_and_utf8() -> None:
    assert parse(b"a SELECT &AOk-t&AOk-").args.name == "été"  # type: ignore[union-attr]
    assert parse(b"a SELECT inbox").args.name == "INBOX"  # type: ignore[union-attr]
    utf8 = parse("a SELECT \"&été\"".encode(), utf8=True).args
    assert utf8.name == "&été"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "line",
    [b"a NOOP   ", b'a LSUB "" "%"    ', b"a SELECT INBOX  ", b"a CREATE foo  ",
     b"a STORE 1 +FLAGS \\Seen  ", b"a SEARCH ALL  ", b"a ENABLE IMAP4rev2  ",
     b'a LIST "" * ', b"a FETCH 1 FLAGS  ", b"a AUTHENTICATE PLAIN "],
)
def test_trailing_spaces_are_tolerated(line: bytes) -> None:
    assert parse(line) == parse(line.rstrip(b" "))


def test_trailing_spaces_of_a_final_literal_are_data() -> None:
    cmd = parse(b"a APPEND INBOX {4}\r\nab  ")
    assert isinstance(cmd.args, Append) and cmd.args.message == b"ab  "
    assert parse(b"a LOGIN bob {4}\r\npw  ").args == Login("bob", "pw  ")


def test_length_limit_is_for_new_names_only() -> None:
    assert parse(b"a CREATE " + b"x" * 200).args == Create("x" * 200, ())
    assert parse(b"a SELECT " + b"x" * 300).args == Select("x" * 300)
    assert parse(b"a RENAME " + b"x" * 300 + b" y").args == Rename("x" * 300, "y")


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"", None),
        (b"(((", None),
        (b"a", None),
        (b"a FOO", None),
        (b"GET / HTTP/1.1", None),
        (b"a UID BOGUS 1", None),
        (b"a LOGIN bob", "LOGIN"),
        (b"a LOGOUT extra", "LOGOUT"),
        (b"a UID FETCH x FLAGS", "UID FETCH"),
    ],
)
def test_syntax_error_says_whether_the_command_was_known(
    line: bytes, command: str | None
) -> None:
    """The session cuts off a stray line before login, but not a known command's bad
    arguments (ALPACA mitigation): the parser tells the two apart."""
    with pytest.raises(ParseError) as err:
        parse(line)
    assert err.value.command == command


@pytest.mark.parametrize(
    ("line", "params"),
    [
        (b"a ID NIL", None),
        (b"a ID ()", ()),
        (b'a ID ("name" "x" "version" NIL)', (("name", "x"), ("version", None))),
        (b'a ID ( "name" "x" )', (("name", "x"),)),
        (b'a ID ("vendor", "w", "version", "3.7.0")', (("vendor", "w"), ("version", "3.7.0"))),
        (b'a ID ("name" "Thunderbird" "version" 102.7.1)',
         (("name", "Thunderbird"), ("version", "102.7.1"))),
        (b'a ID ("name")', (("name", None),)),
    ],
)
def test_id_accepts_what_clients_send(
    line: bytes, params: tuple[tuple[str, str | None], ...] | None
) -> None:
    cmd = parse(line)
    assert cmd.args == Id(params)


@pytest.mark.parametrize(
    "line", [b"a ID", b"a ID (", b'a ID ("a" "b"', b"a ID x", b'a ID ("a" "b") x',
             b"a ID (" + b'"k" "v" ' * 31 + b")"],
)
def test_id_rejects_what_is_not_a_list(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b'a GETQUOTA "User quota"', GetQuota("User quota")),
        (b'a GETQUOTA ""', GetQuota("")),
        (b"a getquota {10}\r\nUser quota", GetQuota("User quota")),
        (b"a GETQUOTA #user/alice", GetQuota("#user/alice")),
        (b"a GETQUOTAROOT INBOX", MailboxArg("INBOX")),
        (b"a GETQUOTAROOT inbox", MailboxArg("INBOX")),
        (b"a GETQUOTAROOT &AOk-t&AOk-", MailboxArg("été")),
        (b'a SETQUOTA "User quota" ()', SetQuota("User quota", ())),
        (b'a SETQUOTA "" (STORAGE 512)', SetQuota("", (("STORAGE", 512),))),
        (b"a SETQUOTA root (storage 9223372036854775807 MESSAGE 0)",
         SetQuota("root", (("STORAGE", 2**63 - 1), ("MESSAGE", 0)))),
    ],
)
def test_quota_grammars(line: bytes, args: object) -> None:
    """RFC 9208 §7: getquota, getquotaroot, setquota (case-insensitive, astring roots)."""
    assert parse(line).args == args


@pytest.mark.parametrize(
    "line",
    [
        b"a GETQUOTA",
        b"a GETQUOTA (x)",
        b'a GETQUOTA "a" "b"',
        b"a GETQUOTAROOT",
        b"a GETQUOTAROOT INBOX Sent",
        b"a SETQUOTA root",
        b"a SETQUOTA root STORAGE 1",
        b"a SETQUOTA root (STORAGE)",
        b"a SETQUOTA root (STORAGE x)",
        b"a SETQUOTA root (STORAGE -1)",
        b"a SETQUOTA root (STORAGE 9223372036854775808)",
        b"a SETQUOTA root (STORAGE 1",
        b"a SETQUOTA root (STORAGE 1) (MESSAGE 2)",
        b"a STATUS INBOX (DELETED-STORAGES)",
    ],
)
def test_quota_syntax_errors(line: bytes) -> None:
    with pytest.raises(ParseError) as err:
        parse(line)
    assert err.value.reason and err.value.tag == "a" and err.value.command is not None


def test_status_deleted_storage_item() -> None:
    args = parse(b"a STATUS INBOX (DELETED DELETED-STORAGE)").args
    assert args == Status("INBOX", ("DELETED", "DELETED-STORAGE"))
    listed = parse(b'a LIST "" * RETURN (STATUS (deleted-storage))').args
    assert isinstance(listed, ListArgs) and listed.status_items == ("DELETED-STORAGE",)


def test_parse_tag() -> None:
    assert parse_tag(b"abc NOOP") == "abc"
    assert parse_tag(b"+abc") is None
    assert parse_tag(b"") is None


# -- modified UTF-7 ----------------------------------------------------------------------
@given(st.text(max_size=40))
def test_mutf7_round_trip(name: str) -> None:
    encoded = encode_mutf7(name)
    assert encoded.isascii()
    assert decode_mutf7(encoded) == name


@pytest.mark.parametrize(
    ("text", "name"),
    [("Entw&APw-rfe", "Entwürfe"), ("&-", "&"), ("&ZeVnLIqe-", "日本語"), ("a&-b", "a&b")],
)
def test_mutf7_examples(text: str, name: str) -> None:
    assert decode_mutf7(text) == name and encode_mutf7(name) == text


@pytest.mark.parametrize("bad", ["&", "&AGE-", "&Jjo!", "é", "&AOk"])
def test_mutf7_rejects(bad: str) -> None:
    with pytest.raises(MUTF7Error):
        decode_mutf7(bad)


_PREFIXES = [
    b"a SELECT INBOX ", b"a EXAMINE INBOX ", b"a FETCH 1:* FLAGS ", b"a UID FETCH 1:* (UID) ",
    b"a STORE 1 ", b"a UID STORE 1:3 ", b"a SEARCH ", b"a UID SEARCH RETURN ",
    b"a STATUS INBOX ", b"a GETQUOTAROOT ", b"a GETQUOTA ", b"a SETQUOTA ",
    b'a LIST "" * RETURN ', b"a ENABLE ",
]
_TOKENS = [
    "(", ")", " ", "1", "0", "42", "-3", "*", ":", ",", "$", '"', "\\", "{3}", "NIL",
    "CONDSTORE", "QRESYNC", "CHANGEDSINCE", "UNCHANGEDSINCE", "VANISHED", "PARTIAL", "MODSEQ",
    "+FLAGS", "FLAGS.SILENT", "\\Seen", "MIN", "MAX", "ALL", "COUNT", "SAVE", "EMAILID",
    "THREADID", "SAVEDON", "1-Jan-2020", "HIGHESTMODSEQ", "MAILBOXID", "DELETED-STORAGE",
    "STORAGE", "/flags/\\\\seen", "priv", "STATUS", "User quota",
]


@given(
    st.sampled_from(_PREFIXES),
    st.lists(st.sampled_from(_TOKENS), max_size=14),
)
@settings(max_examples=1500, deadline=None)
def test_extension_grammars_answer_parse_errors_only(prefix: bytes, tokens: list[str]) -> None:
    """Whatever follows the command name, the parser returns a command or raises ParseError
    with a reason: never another exception, which would reach the client as a crash."""
    line = prefix + "".join(tokens).encode()
    try:
        parse(line)
    except ParseError as exc:
        assert exc.reason
