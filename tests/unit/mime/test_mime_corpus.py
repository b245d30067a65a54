"""Every corpus message parses, with consistent offsets, balanced IMAP syntax and a stored
form that reads back; and the part offsets agree with Stalwart's mail-parser wherever both
read a structure the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mime_checks import check_message

from mailstead.mime import Part, parse_message
from mailstead.testing.paths import SHARED

CORPUS = SHARED / "corpus"
MIME = CORPUS / "mime"
BULK = CORPUS / "bulk" / "spamassassin-public-corpus"
STALWART = MIME / "stalwart-mail-parser" / "resources" / "eml"

_SKIP_NAMES = {"SOURCE.txt", "LICENSE", "NOTICE", "COPYING", "README", "README.md"}
_SKIP_SUFFIXES = {".json", ".xml", ".png", ".golden", ".bin", ".out"}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")


def _mime_files() -> list[Path]:
    if not MIME.is_dir():
        return []
    return sorted(
        p
        for p in MIME.rglob("*")
        if p.is_file()
        and p.name not in _SKIP_NAMES
        and p.suffix not in _SKIP_SUFFIXES
        and "LICENSES" not in p.parts
    )


def _bulk_sample() -> list[Path]:
    if not BULK.is_dir():
        return []
    return sorted(p for p in BULK.rglob("*") if p.is_file() and p.name not in _SKIP_NAMES)[::10]


def _strip_mbox_from(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return raw[nl + 1 :] if nl >= 0 else b""
    return raw


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CORPUS)) for p in paths]


MIME_FILES = _mime_files()
BULK_FILES = _bulk_sample()


@pytest.mark.parametrize("path", MIME_FILES, ids=_ids(MIME_FILES))
def test_mime_corpus_message(path: Path) -> None:
    raw = path.read_bytes()
    check_message(raw, parse_message(raw))


@pytest.mark.parametrize("path", BULK_FILES, ids=_ids(BULK_FILES))
def test_bulk_corpus_message(path: Path) -> None:
    raw = _strip_mbox_from(path.read_bytes())
    check_message(raw, parse_message(raw))


def test_corpus_was_found() -> None:
    assert len(MIME_FILES) > 400
    assert len(BULK_FILES) > 400


# --- stalwart mail-parser expectations -------------------------------------------------------
#
# mail-parser's test suite stores, for each of its messages, the part tree it reads: every
# part's header and body offsets, and for message/rfc822 parts the embedded message's own
# parts. Where both parsers read a structure the same way the offsets must agree exactly.
# Where they read it differently on purpose (we follow Dovecot, and BODYSTRUCTURE is compared
# with Dovecot's in tests/interop/test_dovecot_bodystructure.py), the case is listed in
# STALWART_DIFFERENCES and expected to fail, strictly: a new difference fails, and so does a
# listed one that stops differing, until its entry is removed.


def _stalwart_cases() -> list[tuple[Path, Path, bool]]:
    cases = []
    for eml in sorted(STALWART.rglob("*.eml")) if STALWART.is_dir() else []:
        for expected, crlf in (
            (eml.with_suffix(".json"), False),
            (eml.with_suffix(".crlf.json"), True),
        ):
            if expected.is_file():
                cases.append((eml, expected, crlf))
    return cases


_BOUNDARY_MID_LINE = (
    "a boundary line with more after the boundary ('--ab' for boundary a): like Dovecot we "
    "start the part on the next line; mail-parser starts it right after '--a', mid-line"
)
_LONGEST_BOUNDARY = (
    "'--ab' is the outer boundary ab, not the inner a and a stray 'b': the longest active "
    "boundary wins (Dovecot's reading of RFC 2046 §5.1.1), which ends the inner multipart; "
    "mail-parser takes the inner '--a' and starts a part mid-line"
)
_OUTER_ENDS_INNER = (
    "RFC 2046 §5.1.2: the outer boundary '--1' also ends the inner multipart, which has no "
    "close delimiter, and opens a third outer part (as Dovecot reads it); mail-parser looks "
    "only for the inner boundary there, so the inner multipart's last part runs to the end"
)
_EMPTY_LAST_PART = (
    "a boundary line at the very end of the input opens one more, empty body part, as Dovecot "
    "counts it; mail-parser ignores a delimiter with nothing after it"
)
_TWO_CONTENT_TYPES = (
    "a part header with two Content-Type fields (multipart/alternative, then text/plain): "
    "the first wins for us, as for Dovecot, so the part is a multipart with two parts; "
    "mail-parser takes the last and keeps one text part"
)

#: Stalwart file (under resources/eml) -> why mail-parser's tree differs from ours. Both the
#: LF and the CRLF variant of each file are expected to fail.
STALWART_DIFFERENCES: dict[str, str] = {
    "malformed/000.eml": (
        "no part header ends in a blank line: we read four body parts, each header ended by "
        "the next boundary line, as Dovecot does; mail-parser reports no body part at all"
    ),
    "malformed/001.eml": _LONGEST_BOUNDARY,
    "malformed/002.eml": (
        "a multipart whose body holds no boundary line: it stays a multipart with no parts "
        "(BODYSTRUCTURE shows one empty text part, as Dovecot's does); mail-parser turns it "
        "into a text part"
    ),
    "malformed/004.eml": _BOUNDARY_MID_LINE,
    "malformed/007.eml": (
        "a part header ended by a boundary line instead of a blank line: we end the header "
        "there, as Dovecot does, so the inner multipart never opens and '--ab' is the outer "
        "boundary a; mail-parser reads the boundary line as a header field, runs the header "
        "to the next blank line and starts a part mid-line"
    ),
    "malformed/008.eml": _LONGEST_BOUNDARY,
    "malformed/009.eml": _OUTER_ENDS_INNER,
    "malformed/011.eml": _OUTER_ENDS_INNER,
    "malformed/012.eml": _OUTER_ENDS_INNER + " (here the parts are message/rfc822)",
    "malformed/013.eml": _EMPTY_LAST_PART,
    "malformed/014.eml": _EMPTY_LAST_PART,
    "malformed/016.eml": (
        "nested boundaries over 70 characters, each a prefix of the enclosing one: we compare "
        "whole boundaries and the longest active one wins, so the outer delimiter ends both "
        "inner multiparts; mail-parser matches an inner boundary as a prefix and starts parts "
        "mid-line (Dovecot, comparing a truncated prefix, differs from both: see "
        "KNOWN_DIFFERENCES in tests/interop/test_dovecot_bodystructure.py)"
    ),
    "malformed/017.eml": (
        "'multipart/mixed' folded straight into 'boundary=' with no ';' is an invalid "
        "Content-Type, taken as text/plain (RFC 2045 §5.2), so the message is one text part; "
        "mail-parser reads a multipart with that boundary (Dovecot answers \"\" \"\": see "
        "KNOWN_DIFFERENCES in tests/interop/test_dovecot_bodystructure.py)"
    ),
    "malformed/020.eml": _TWO_CONTENT_TYPES,
    "malformed/021.eml": _TWO_CONTENT_TYPES,
    "malformed/022.eml": (
        "a message/rfc822 part whose body has no header block: we parse it as a message "
        "whose header is that one line, as Dovecot does; mail-parser keeps a text part that "
        "runs to the end of the input, over the close delimiter"
    ),
    "rfc/008.eml": (
        "a base64 message/rfc822 (RFC 2046 §5.2.1 allows only 7bit, 8bit and binary): "
        "mail-parser decodes it and gives the embedded parts offsets into the decoded octets; "
        "we index the stored octets and, as Dovecot does, read the encoded text as the "
        "embedded message's header"
    ),
    "thirdparty/005.eml": (
        "mail-parser accepts 'invalid--1--' as the close delimiter; a boundary counts only at "
        "the start of a line (RFC 2046 §5.1.1), so for us, as for Dovecot, the last part runs "
        "to the end"
    ),
    "thirdparty/015.eml": (
        "three message/rfc822 attachments whose embedded messages stop after a multipart "
        "Content-Type with no blank line before the next outer boundary: we end each embedded "
        "header at that boundary and keep three attachments, as Dovecot does; mail-parser "
        "nests the second and third inside the first, which runs to the end"
    ),
}


def _stalwart_params() -> list[object]:
    params: list[object] = []
    for eml, expected, crlf in STALWART_CASES:
        name = str(eml.relative_to(STALWART))
        marks = []
        if name in STALWART_DIFFERENCES:
            marks.append(pytest.mark.xfail(reason=STALWART_DIFFERENCES[name], strict=True))
        ident = name + (" crlf" if crlf else "")
        params.append(pytest.param(eml, expected, crlf, id=ident, marks=marks))
    return params


STALWART_CASES = _stalwart_cases()


def _as_mail_parser_read(eml: Path, crlf: bool) -> bytes:
    """The input mail-parser's expectations were made from: its test suite strips every CR
    for the LF variant and adds one before every bare LF for the CRLF variant."""
    raw = eml.read_bytes()
    if crlf:
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw.replace(b"\r", b"")


#: One part as both sides are compared: (header offset, body offset, end offset of a leaf or
#: None for a container, "multipart" / "message" / "leaf").
_Shape = tuple[int, int, int | None, str]


def _our_shapes(part: Part, out: list[_Shape]) -> list[_Shape]:
    """Depth first, an embedded message's parts right after its message/rfc822 part."""
    if part.multipart:
        out.append((part.header_start, part.body_start, None, "multipart"))
    elif part.children:
        out.append((part.header_start, part.body_start, None, "message"))
    else:
        out.append((part.header_start, part.body_start, part.body_end, "leaf"))
    for child in part.children:
        _our_shapes(child, out)
    return out


def _their_shapes(parts: list[dict[str, Any]], out: list[_Shape]) -> list[_Shape]:
    """mail-parser's parts in the same order: its JSON keeps an embedded message's parts
    in a nested list under the message/rfc822 part's body."""
    for p in parts:
        body = p["body"]
        kind = next(iter(body)) if isinstance(body, dict) else body
        if kind == "Multipart":
            out.append((p["offset_header"], p["offset_body"], None, "multipart"))
        elif kind == "Message":
            out.append((p["offset_header"], p["offset_body"], None, "message"))
        else:
            out.append((p["offset_header"], p["offset_body"], p["offset_end"], "leaf"))
        if kind == "Message":
            _their_shapes(body["Message"]["parts"], out)
    return out


@pytest.mark.parametrize(("eml", "expected", "crlf"), _stalwart_params())
def test_stalwart_tree(eml: Path, expected: Path, crlf: bool) -> None:
    """Part offsets agree with mail-parser's, part for part, embedded messages included."""
    raw = _as_mail_parser_read(eml, crlf)
    theirs = _their_shapes(json.loads(expected.read_bytes())["parts"], [])
    assert _our_shapes(parse_message(raw).root, []) == theirs


@pytest.mark.parametrize(
    ("eml", "crlf"),
    [(e, c) for e, _, c in STALWART_CASES],
    ids=[str(e.relative_to(STALWART)) + (" crlf" if c else "") for e, _, c in STALWART_CASES],
)
def test_stalwart_input_parses_consistently(eml: Path, crlf: bool) -> None:
    """The inputs test_stalwart_tree compares, apart from its expected failures."""
    raw = _as_mail_parser_read(eml, crlf)
    check_message(raw, parse_message(raw))


def test_every_stalwart_difference_names_a_case() -> None:
    names = {str(eml.relative_to(STALWART)) for eml, _, _ in STALWART_CASES}
    assert len(STALWART_CASES) > 100
    assert set(STALWART_DIFFERENCES) <= names
