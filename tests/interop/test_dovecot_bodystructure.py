"""Differential test: mailstead.mime's ENVELOPE, BODY and BODYSTRUCTURE against Dovecot's.

mailstead's answers must be byte-identical to Dovecot's (Debian's dovecot-imapd) for every
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
from test_mime_corpus import (  # the corpus selection is shared on purpose
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


def _expand(reason: str, items: tuple[str, ...], paths: list[str]) -> dict[tuple[str, str], str]:
    return {(path, item): reason for path in paths for item in items}


BOTH = ("BODY", "BODYSTRUCTURE")

_RFC822_CRLF = (
    "RFC 2046 §5.1.1: the CRLF before a boundary belongs to the boundary; Dovecot counts it "
    "in a message/rfc822 part's size and lines (2 octets, 1 line more)"
)
_LONG = (
    'RFC 2046 §5.1.1: a boundary delimiter line is "--" plus the whole boundary (then only '
    "transport padding); for boundaries longer than 70 characters Dovecot compares only a "
    "truncated prefix, so near-miss lines and longer nested boundaries split parts there; "
    "mailstead compares the full boundary"
)
_CTYPE = (
    'RFC 2045 §5.2: a syntactically invalid Content-Type (no subtype, no "/", junk after '
    'the subtype) is taken as text/plain; charset=us-ascii; Dovecot answers "" "" with no '
    "parameters and no line count"
)
_PARAM_MIXED = (
    "RFC 2231 §4.1/§7: in a continuation mixing extended and plain segments, mailstead "
    "%-encodes the plain segment when joining under name*, so the value stays a valid "
    "extended-value; Dovecot appends it raw (' and space are not allowed there)"
)
_NUL = (
    "RFC 9051 §4.3: no NUL in a literal; RFC 3516 §6: BODY presents such a part in an "
    "allowed encoding. A part whose body holds NUL octets (here UTF-16 text labelled binary) "
    "is presented in base64 with that size and line count; Dovecot leaves a delivered "
    "message's part as it is and sends its NULs as 0x80 (decision 0017)"
)
_PARAM_BOUNDARY = (
    "RFC 2231 §3-4 apply to every parameter: mailstead reads boundary* (charset''value) as "
    "the boundary and splits the multipart/signed; Dovecot looks only for a plain boundary "
    "and reports an empty multipart"
)
_TORT = (
    "the message/rfc822 CRLF accounting above (RFC 2046 §5.1.1) in several nested messages, "
    "plus a syntactically invalid Content-Type: BINARY (RFC 2045 §5.2, see _CTYPE)"
)

#: (corpus path, item) -> why mailstead deliberately differs (Dovecot is wrong by the RFC).
#: (corpus path, item) -> why mailstead deliberately differs (Dovecot is wrong by the RFC);
#: each is described in docs/imap-compatibility.md.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    **_expand(
        _RFC822_CRLF,
        BOTH,
        [
            "mime/mailgun-flanker/tests/fixtures/messages/enclosed-bad-encoding.eml",
            "mime/mailgun-flanker/tests/fixtures/messages/enclosed-broken-body.eml",
            "mime/mailgun-flanker/tests/fixtures/messages/enclosed-endless.eml",
            "mime/mailgun-flanker/tests/fixtures/messages/enclosed.eml",
            "mime/mailgun-flanker/tests/fixtures/messages/torture-part.eml",
            "mime/mimekit/UnitTests/TestData/messages/rfc2060.txt",
            "mime/stalwart-mail-parser/resources/eml/malformed/022.eml",
            "mime/stalwart-mail-parser/resources/eml/rfc/008.eml",
            "mime/stalwart-mail-parser/resources/eml/thirdparty/007.eml",
            "mime/stalwart-mail-parser/resources/eml/thirdparty/015.eml",
        ],
    ),
    **_expand(_NUL, BOTH, ["mime/stalwart-mail-parser/resources/eml/thirdparty/005.eml"]),
    **_expand(_PARAM_MIXED, BOTH, ["mime/cpython-test_email/Lib/test/test_email/data/msg_29.txt"]),
    **_expand(
        _PARAM_BOUNDARY, BOTH, ["mime/cpython-test_email/Lib/test/test_email/data/msg_33.txt"]
    ),
    **_expand(
        _LONG,
        BOTH,
        [
            "mime/apache-james-mime4j/core/src/test/resources/testmsgs/very-long-boundary.msg",
            "mime/apache-james-mime4j/core/src/test/resources/testmsgs/very-very-long-boundary.msg",
            "mime/stalwart-mail-parser/resources/eml/malformed/016.eml",
        ],
    ),
    **_expand(
        _TORT,
        BOTH,
        [
            "mime/mailgun-flanker/tests/fixtures/messages/torture.eml",
        ],
    ),
    **_expand(
        _CTYPE,
        BOTH,
        [
            "mime/apache-spamassassin-tdata/t/data/nice/mime8",
            "mime/apache-spamassassin-tdata/t/data/spam/badctype1",
            "mime/cpython-test_email/Lib/test/test_email/data/msg_14.txt",
            "mime/enmime/testdata/mail/mime-bad-content-type.raw",
            "mime/enmime/testdata/mail/mime-blank-media-name.raw",
            "mime/enmime/testdata/parts/ctype-invalid-characters.raw",
            "mime/mimekit/Benchmarks/TestData/messages/startrek.eml",
            "mime/mimekit/UnitTests/TestData/mbox/content-length-summary.txt",
            "mime/mimekit/UnitTests/TestData/mbox/issue1189-summary.txt",
            "mime/mimekit/UnitTests/TestData/messages/missing-subtype.txt",
            "mime/stalwart-mail-parser/resources/eml/malformed/017.eml",
            "mime/enmime/testdata/parts/barren-content-type.raw",
            "mime/enmime/testdata/parts/empty-ctype-bad-content.raw",
            "mime/mailgun-flanker/tests/fixtures/messages/spam/broken-ctype.eml",
        ],
    ),
}

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
    ours = wire_bytes(
        {"ENVELOPE": parsed.envelope, "BODY": parsed.body, "BODYSTRUCTURE": parsed.bodystructure}[
            item
        ]
    )
    if (name, item) in KNOWN_DIFFERENCES:
        assert ours != theirs, (
            f"{name} {item} now equals Dovecot's: remove it from KNOWN_DIFFERENCES"
        )
        return
    assert ours == theirs, f"{name} {item} differs from Dovecot:\n{_diff(ours, theirs)}"


def test_corpus_was_compared(dovecot_answers: dict[str, dict[str, bytes]]) -> None:
    assert len(dovecot_answers) == len(FILES) > 800
