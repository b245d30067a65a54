"""SORT and THREAD grammar (RFC 5256 §4): sort criteria or a threading algorithm, a
charset, and a search program (the SEARCH grammar's keys); SORT's ``RETURN (...)`` options
of ESORT and CONTEXT=SORT (RFC 5267 §3, §4, §5)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailstead.imap.parse.primitives import PartialRange, Reader
from mailstead.imap.parse.search import (
    ReturnOption,
    SearchKey,
    return_options,
    search_program,
)

#: More criteria than keys exist only repeat one; a bound keeps a line of them cheap.
MAX_CRITERIA = 16


class SortKey(StrEnum):
    """The sort keys of RFC 5256 §3."""

    ARRIVAL = "ARRIVAL"
    CC = "CC"
    DATE = "DATE"
    FROM = "FROM"
    SIZE = "SIZE"
    SUBJECT = "SUBJECT"
    TO = "TO"


class ThreadAlgorithm(StrEnum):
    """The threading algorithms of RFC 5256 §3, each advertised as ``THREAD=<name>``."""

    ORDEREDSUBJECT = "ORDEREDSUBJECT"
    REFERENCES = "REFERENCES"


#: The capabilities THREAD is announced with (RFC 5256 §3), one per algorithm served.
THREAD_CAPABILITIES: tuple[str, ...] = tuple(f"THREAD={a}" for a in ThreadAlgorithm)


@dataclass(frozen=True, slots=True)
class Criterion:
    """One sort criterion: a key, in reverse order when ``reverse`` (RFC 5256 §3)."""

    key: SortKey
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class SortArgs:
    """SORT and UID SORT: criteria, the search charset, the search program, and the
    ``RETURN`` options of an extended SORT (None: a plain SORT, answered ``* SORT``)."""

    criteria: tuple[Criterion, ...]
    charset: str
    key: SearchKey
    return_opts: tuple[ReturnOption, ...] | None = None
    partial: PartialRange | None = None


@dataclass(frozen=True, slots=True)
class ThreadArgs:
    """THREAD and UID THREAD: the algorithm, the search charset, the search program."""

    algorithm: ThreadAlgorithm
    charset: str
    key: SearchKey


def _program(r: Reader) -> tuple[str, SearchKey]:
    """``SP search-charset 1*(SP search-key)`` (RFC 5256 §4): the charset is required."""
    r.sp()
    charset = r.text_astring("a charset").upper()
    r.sp()
    return charset, search_program(r)


def sort(r: Reader) -> SortArgs:
    """RFC 5256 §4: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria;
    sort-criteria = "(" sort-criterion *(SP sort-criterion) ")";
    sort-criterion = ["REVERSE" SP] sort-key. RFC 5267 §5: extended-sort = ["UID" SP]
    "SORT" search-return-opts SP sort-criteria SP search-criteria."""
    r.sp()
    return_opts: tuple[ReturnOption, ...] | None = None
    partial: PartialRange | None = None
    if r.skip(b"RETURN "):
        given = return_options(r)
        return_opts, partial = given.options, given.partial
        r.sp()
    r.open_paren()
    criteria: list[Criterion] = []
    while True:
        word = r.atom("a sort key").upper()
        reverse = word == "REVERSE"
        if reverse:
            r.sp()
            word = r.atom("a sort key").upper()
        if word not in SortKey.__members__:
            raise r.error(f"unknown sort key {word[:40]}")
        criteria.append(Criterion(SortKey(word), reverse))
        if len(criteria) > MAX_CRITERIA:
            raise r.error(f"more than {MAX_CRITERIA} sort criteria")
        if not r.more_in_list():
            break
    r.close_paren()
    charset, key = _program(r)
    return SortArgs(tuple(criteria), charset, key, return_opts, partial)


def thread(r: Reader) -> ThreadArgs:
    """RFC 5256 §4: thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria."""
    r.sp()
    name = r.atom("a threading algorithm").upper()
    if name not in ThreadAlgorithm.__members__:
        raise r.error(f"unknown threading algorithm {name[:40]}")
    charset, key = _program(r)
    return ThreadArgs(ThreadAlgorithm(name), charset, key)
