"""What the full-text index can say about a SEARCH program's text keys (decision 0027).

Each BODY, TEXT, SUBJECT, FROM, TO, CC, BCC and HEADER key whose folded needle has at least
three characters becomes one index query. The index holds exactly the folded text the scan
in :mod:`mailstead.imap.search` compares with, so for a message with a complete index row:

- a miss is a definite "no" (every field is a substring of the column the index holds);
- a hit is a definite "yes" for SUBJECT, BODY and TEXT (the column is that very string) and
  for an address key whose needle has no line feed (addresses are joined by one); HEADER
  hits are checked by the scan, since the column holds every field's value, not only the
  named one's.

Everything else (a shorter needle, a message not indexed yet, a miss in a row cut to the
indexed-text limit) is answered None: the scan decides, so the answers stay those of the
scan alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mailstead.imap.parse.search import Header, SearchKey, Text, TextField, walk
from mailstead.mime.searchtext import fold
from mailstead.store.interfaces import Messages
from mailstead.store.models import TextQuery

#: The shortest needle the trigram index can look up.
MIN_NEEDLE = 3
#: The most of a needle the index is asked for (its first characters).
MAX_NEEDLE = 256

_COLUMNS = {
    TextField.SUBJECT: ("subject",),
    TextField.FROM: ("addr_from",),
    TextField.TO: ("addr_to",),
    TextField.CC: ("addr_cc",),
    TextField.BCC: ("addr_bcc",),
    TextField.BODY: ("body",),
    TextField.TEXT: ("headers", "body"),
}
_ADDRESSES = frozenset({TextField.FROM, TextField.TO, TextField.CC, TextField.BCC})


def _query(key: SearchKey) -> tuple[TextQuery, bool] | None:
    """The index query of a text key and whether its hits are definite; None when the
    index cannot look the needle up."""
    match key:
        case Text(field=text_field, text=text):
            columns, needle = _COLUMNS[text_field], fold(text)
            exact = text_field not in _ADDRESSES or "\n" not in needle
        case Header(text=text):
            columns, needle, exact = ("hvalues",), fold(text), False
        case _:
            return None
    if len(needle) < MIN_NEEDLE or not _encodable(needle):
        return None
    if len(needle) > MAX_NEEDLE:
        # A needle of up to 1 MiB (a literal) would be as many trigram lookups: its first
        # characters narrow as well, a miss of them is a miss of the whole, a hit is checked.
        needle, exact = needle[:MAX_NEEDLE], False
    return TextQuery(columns, needle), exact


def _encodable(needle: str) -> bool:
    """SQLite takes UTF-8 text: a lone surrogate (from a client's stray bytes) cannot go."""
    try:
        needle.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_keys(program: SearchKey) -> list[SearchKey]:
    """The program's text keys, each once."""
    return list(dict.fromkeys(k for k in walk(program) if isinstance(k, Text | Header)))


@dataclass(slots=True)
class IndexAnswers:
    """The index's answers for one program over one mailbox."""

    #: Per indexable key: the UIDs whose row holds the needle, and whether a hit is final.
    hits: dict[SearchKey, tuple[frozenset[int], bool]] = field(default_factory=dict)
    #: Messages for which a miss proves nothing (no row, or a cut one).
    unsure: frozenset[int] = frozenset()
    #: Text keys the index cannot look up at all (short needles).
    unanswerable: frozenset[SearchKey] = frozenset()

    def answer(self, key: SearchKey, uid: int) -> bool | None:
        """True or False when the index settles ``key`` for the message, None when the
        scan has to."""
        found = self.hits.get(key)
        if found is None:
            return None
        hits, exact = found
        if uid in hits:
            return True if exact else None
        return None if uid in self.unsure else False

    def settles(self, keys: Sequence[SearchKey], uid: int) -> bool:
        """Whether every text key of the program is settled for the message, so that it
        need not be read."""
        return all(self.answer(k, uid) is not None for k in keys)


async def ask(store: Messages, mailbox_id: int, program: SearchKey) -> IndexAnswers | None:
    """The index's answers for the program's text keys; None when it has none to ask."""
    keys = text_keys(program)
    asked: list[tuple[SearchKey, TextQuery, bool]] = []
    unanswerable = set()
    for key in keys:
        made = _query(key)
        if made is None:
            unanswerable.add(key)
        else:
            asked.append((key, *made))
    if not asked:
        return None
    matches = await store.search_text(mailbox_id, [q for _, q, _ in asked])
    hits = {key: (found, exact) for (key, _, exact), found in zip(asked, matches.hits, strict=True)}
    return IndexAnswers(hits, matches.unindexed | matches.incomplete, frozenset(unanswerable))
