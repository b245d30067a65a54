"""Differential test: mailstead.mime's ENVELOPE, BODY and BODYSTRUCTURE against Dovecot's.

Issue 5 asks for byte-identical answers to Dovecot's (Debian's dovecot-imapd) for every
message in the shared corpus: every file under ``corpus/mime`` (the same selection as
``tests/unit/mime/test_mime_corpus.py``) and every 10th file of ``corpus/bulk`` (mbox
``From `` line stripped).

Line endings: each message is converted to CRLF (bare LF -> CRLF) before it is given to
*both* sides. That is what real delivery produces (SMTP DATA and IMAP APPEND carry CRLF), and
it is the only form in which the two can agree: Dovecot reports sizes of the CRLF ("virtual")
form while mailstead reports the octets it stored.

Dovecot runs once per module as an unprivileged instance on 127.0.0.1 (see ``dovecot.py``);
messages go straight into its Maildir and one ``FETCH 1:*`` fetches everything. Mismatches
show a unified diff of the two wire strings.

Where Dovecot departs from RFC 9051 §7.5.2 / RFC 3501 §7.4.2, mailstead follows the RFC and
the case is listed in ``KNOWN_DIFFERENCES`` (documented in ``docs/imap-compatibility.md``).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot import Dovecot, dovecot_binary

from mailstead.mime import parse_message
from mailstead.mime.imap_views import wire_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "mime"))
from test_mime_corpus import (  # noqa: E402 - the corpus selection is shared on purpose
    BULK_FILES,
    CORPUS,
    MIME_FILES,
    _strip_mbox_from,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
    pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present"),
]

ITEMS = ("ENVELOPE", "BODY", "BODYSTRUCTURE")

#: (corpus path, item) -> why mailstead deliberately differs (Dovecot is wrong by the RFC).
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}

#: (corpus path, item) -> a real mailstead difference not fixed yet. xfail(strict=True): the
#: test starts failing when it is fixed, so the entry must then be removed.
PENDING: dict[tuple[str, str], str] = {}

FILES = MIME_FILES + BULK_FILES


def _name(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def as_delivered(path: Path) -> bytes:
    """The message as SMTP/IMAP delivery would store it: mbox line gone, CRLF endings."""
    raw = _strip_mbox_from(path.read_bytes())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.fixture(scope="module")
def dovecot_answers() -> Iterator[dict[str, dict[str, bytes]]]:
    """corpus path -> {item: Dovecot's wire octets}, from one Dovecot and one FETCH."""
    with Dovecot() as dovecot:
        names = dovecot.deliver([as_delivered(p) for p in FILES])
        try:
            fetched = dovecot.fetch_items(ITEMS)
        except Exception as exc:  # pragma: no cover - diagnostics for a broken set-up
            raise RuntimeError(f"{exc}\n--- dovecot log ---\n{dovecot.log()}") from exc
        yield {_name(p): fetched[n] for p, n in zip(FILES, names, strict=True) if n in fetched}


def _diff(ours: bytes, theirs: bytes) -> str:
    """A unified diff of two wire strings, one list element per line for readability."""

    def lines(b: bytes) -> list[str]:
        text = b.decode("utf-8", "backslashreplace").replace("\r\n", "\\r\\n")
        return text.replace(")(", ")\n(").replace(" (", "\n(").splitlines()

    return "\n".join(
        difflib.unified_diff(lines(theirs), lines(ours), "dovecot", "mailstead", lineterm="")
    )


def _cases() -> list[object]:
    cases: list[object] = []
    for path in FILES:
        for item in ITEMS:
            key = (_name(path), item)
            marks = []
            if key in PENDING:
                marks.append(pytest.mark.xfail(reason=PENDING[key], strict=True))
            cases.append(pytest.param(path, item, id=f"{key[0]}:{item}", marks=marks))
    return cases


@pytest.mark.parametrize(("path", "item"), _cases())
def test_same_as_dovecot(
    path: Path, item: str, dovecot_answers: dict[str, dict[str, bytes]]
) -> None:
    name = _name(path)
    assert name in dovecot_answers, f"Dovecot did not return {name}"
    theirs = dovecot_answers[name][item]
    parsed = parse_message(as_delivered(path))
    ours = wire_bytes({"ENVELOPE": parsed.envelope, "BODY": parsed.body,
                       "BODYSTRUCTURE": parsed.bodystructure}[item])
    if (name, item) in KNOWN_DIFFERENCES:
        assert ours != theirs, (
            f"{name} {item} now equals Dovecot's: remove it from KNOWN_DIFFERENCES"
        )
        return
    assert ours == theirs, f"{name} {item} differs from Dovecot:\n{_diff(ours, theirs)}"


def test_corpus_was_compared(dovecot_answers: dict[str, dict[str, bytes]]) -> None:
    assert len(dovecot_answers) == len(FILES) > 800
