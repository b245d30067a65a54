"""StoredStructure's fast read of ENVELOPE/BODY/BODYSTRUCTURE agrees with a full JSON decode."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.structure import StoredStructure, read_head
from mailstead.mime.parse import parse_message
from mailstead.testing.paths import SHARED

MIME = SHARED / "corpus" / "mime"
MESSAGES = sorted(p for p in MIME.rglob("*") if p.is_file()) if MIME.is_dir() else []


def _expected(stored: bytes) -> tuple[str, str, str]:
    doc = json.loads(stored)
    return doc["envelope"], doc["body"], doc["bodystructure"]


@pytest.mark.skipif(not MESSAGES, reason="shared/corpus/mime not present")
def test_every_corpus_message() -> None:
    for path in MESSAGES:
        stored = parse_message(path.read_bytes()).to_json()
        assert read_head(stored.decode("ascii")) is not None, path
        s = StoredStructure(stored)
        assert (s.envelope, s.body, s.bodystructure) == _expected(stored), path
        fresh = StoredStructure(stored)
        assert fresh.header_end == fresh.parsed.root.header_end, path
        assert fresh.top_headers == [list(h) for h in fresh.parsed.root.headers], path


@given(subject=st.text(), name=st.text(max_size=30))
def test_any_header_text(subject: str, name: str) -> None:
    """Quotes, backslashes, control characters and surrogate escapes in the strings."""
    raw = (f'From: "{name}" <a@example.org>\r\nSubject: {subject}\r\n\r\nbody\r\n'
           .encode("utf-8", "surrogateescape"))
    stored = parse_message(raw).to_json()
    s = StoredStructure(stored)
    assert (s.envelope, s.body, s.bodystructure) == _expected(stored)
    assert s.header_end == StoredStructure(stored).parsed.root.header_end


def test_other_layouts_fall_back_to_a_full_decode() -> None:
    doc = {"body": "B", "envelope": "E", "bodystructure": "S", "size": 1, "v": 1}
    stored = json.dumps(doc).encode()
    assert read_head(stored.decode()) is None
    s = StoredStructure(stored)
    assert (s.envelope, s.body, s.bodystructure) == ("E", "B", "S")
