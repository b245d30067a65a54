"""Every corpus message parses, with consistent offsets, balanced IMAP syntax and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mime_checks import check_message

from mailstead.mime import parse_message
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


STALWART_CASES = _stalwart_cases()
# Deliberate differences: we follow Dovecot (a boundary only counts at the start of a line).
_STALWART_DIFFERENT = {
    "thirdparty/005.eml": "mail-parser accepts 'invalid--1--' (a boundary in mid-line)",
}


def _flatten(part, out: list) -> None:  # type: ignore[no-untyped-def]
    out.append(part)
    for child in part.children:
        _flatten(child, out)


@pytest.mark.parametrize(
    ("eml", "expected", "crlf"),
    STALWART_CASES,
    ids=[str(e.relative_to(STALWART)) + (" crlf" if c else "") for e, _, c in STALWART_CASES],
)
def test_stalwart_tree(eml: Path, expected: Path, crlf: bool) -> None:
    """Part offsets agree with mail-parser where both read the structure the same way."""
    name = str(eml.relative_to(STALWART))
    if name in _STALWART_DIFFERENT:
        pytest.skip(_STALWART_DIFFERENT[name])
    raw = eml.read_bytes()
    if not crlf and b"\r" in raw:
        pytest.skip("mail-parser's LF expectations were made from a CR-stripped copy")
    if crlf:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    want = json.loads(expected.read_bytes())["parts"]
    parsed = parse_message(raw)
    check_message(raw, parsed)
    ours: list = []
    _flatten(parsed.root, ours)
    # mail-parser numbers parts depth first like we do, but it decodes some entities we
    # keep opaque (and vice versa) so only compare when the trees have the same shape.
    if len(ours) != len(want):
        pytest.skip(f"tree shape differs: {len(ours)} vs {len(want)} parts")
    shapes = [("Multipart" in p["body"], "Message" in p["body"]) for p in want]
    if shapes != [(p.multipart, bool(p.children) and not p.multipart) for p in ours]:
        pytest.skip("part kinds differ")
    for theirs in want:
        at = theirs["offset_header"]
        if at > 0 and raw[at - 1 : at] != b"\n":
            # mail-parser starts a part right after "--boundary" even when the boundary
            # line continues; we skip the rest of the line as Dovecot does.
            pytest.skip("boundary line with trailing text")
    for mine, theirs in zip(ours, want, strict=True):
        assert mine.header_start == theirs["offset_header"]
        assert mine.body_start == theirs["offset_body"]
        if not mine.children:
            assert mine.body_end == theirs["offset_end"]
