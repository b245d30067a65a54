"""Differential test: FETCH PREVIEW (RFC 8970) against Dovecot's.

RFC 8970 leaves the preview algorithm to the server, so previews legitimately differ; what
is compared is what should agree:

- On the wire, for messages where both algorithms pick the same text: the exact FETCH
  responses of both servers (quoted string or literal, the empty string for a message
  without text). LAZY differs by design and is compared as such: Dovecot answers NIL until
  it has cached a preview, mailstead made every preview at delivery and never answers NIL
  for a message stored since.
- Over the shared corpus (the selection of ``tests/unit/mime/test_mime_corpus.py``): after
  both are normalised (runs of white space, no-break spaces included, as one space), Dovecot's
  preview, which it cuts at 200 characters, is where mailstead's 256 begin. Messages where the
  two algorithms choose differently are listed in ``KNOWN_DIFFERENCES`` with the reason, and
  each must still differ (a strict expectation: an entry that starts to agree must go).
  ``docs/imap-compatibility.md`` lists the differences.
"""

from __future__ import annotations

import imaplib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot import PASSWORD, USER, Dovecot, dovecot_binary

from mailstead.mime import parse_message
from mailstead.testing.server import ServerThread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "mime"))
from test_mime_corpus import CORPUS, MIME_FILES  # the corpus selection is shared on purpose

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
]

#: Messages both algorithms read the same way: plain text, charsets and transfer encodings,
#: multipart/alternative, HTML without a head, no text at all.
WIRE_MESSAGES = (
    b"From: a@example.org\r\nSubject: plain\r\n\r\nHello   there,\r\n\r\n  this is\ta test.\r\n",
    b"From: a@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me soft=\r\nbreak\r\n",
    b"From: a@example.org\r\nSubject: b64\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"SGVsbG8gd29ybGQg4pyU\r\n",
    b"From: a@example.org\r\nSubject: alt\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nplain part\r\n--b--\r\n",
    b"From: a@example.org\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><body><p>Hi &amp; welcome caf\xc3\xa9</p><div>Second</div></body></html>\r\n",
    b"From: a@example.org\r\nSubject: img\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n",
    b"From: a@example.org\r\nSubject: empty\r\n\r\n",
)

_QUOTED = "Dovecot leaves out lines quoted with '>'; mailstead has no quoted-text heuristics"
_TITLE = "Dovecot keeps the HTML <title> (and other head text); mailstead shows body text only"
_SUBTYPE = ("Dovecot takes the first text/* part of any subtype (text/html, text/x-myown);"
            " mailstead the first text/plain anywhere, else the first text/html")
_ATTACHED = ("Dovecot reads a text part marked as an attachment, or an attached message with "
             "its header; mailstead passes both over")
_CHARSET = ("undecodable octets: Dovecot and Python's codecs replace different runs of them "
            "with U+FFFD")
_CONTROLS = ("control characters (C0, C1) in the text: Dovecot sends them, mailstead drops "
             "them")
_MARKUP = "broken HTML ('<' runs, '<?>'): the two read different pieces of it as markup"
_INLINE_TAGS = ("a tag inside a word: Dovecot separates the pieces with a space, mailstead "
                "joins them (inline tags such as <b> and <font> do not break words)")
_MALFORMED = "malformed boundaries: the two MIME parsers end the text part differently"

KNOWN_DIFFERENCES: dict[str, str] = {
    "mime/apache-james-mime4j/core/src/test/resources/testmsgs/"
    "multipartdigestnestedemptyparts.msg": _ATTACHED,
    "mime/apache-james-mime4j/core/src/test/resources/testmsgs/russian-headers.msg": _ATTACHED,
    "mime/apache-james-mime4j/mbox/src/test/resources/test-1/mbox.rlug-1": _QUOTED,
    "mime/apache-james-mime4j/mbox/src/test/resources/test-1/mbox.rlug-3": _QUOTED,
    "mime/apache-spamassassin-tdata/t/data/nice/002": _QUOTED,
    "mime/apache-spamassassin-tdata/t/data/nice/base64.txt": _QUOTED,
    "mime/apache-spamassassin-tdata/t/data/nice/cjk/big5-base64.1": _TITLE,
    "mime/apache-spamassassin-tdata/t/data/nice/cjk/iso-2022-jp.2": _QUOTED,
    "mime/apache-spamassassin-tdata/t/data/spam/006": _TITLE,
    "mime/apache-spamassassin-tdata/t/data/spam/008": _CHARSET,
    "mime/apache-spamassassin-tdata/t/data/spam/009": _INLINE_TAGS,
    "mime/apache-spamassassin-tdata/t/data/spam/011": _INLINE_TAGS,
    "mime/apache-spamassassin-tdata/t/data/spam/bsmtp": _INLINE_TAGS,
    "mime/cpython-test_email/Lib/test/test_email/data/msg_30.txt": _ATTACHED,
    "mime/cpython-test_email/Lib/test/test_email/data/msg_37.txt": _SUBTYPE,
    "mime/enmime/testdata/mail/attachment-only-text-attachment.raw": _ATTACHED,
    "mime/enmime/testdata/mail/mime-bad-content-transfer-encoding.raw": _CONTROLS,
    "mime/enmime/testdata/mail/non-mime-html-charset-header-only.raw": _TITLE,
    "mime/enmime/testdata/mail/non-mime-html.raw": _TITLE,
    "mime/enmime/testdata/mail/non-mime-missing-charset.raw": _CONTROLS,
    "mime/enmime/testdata/parts/chardet-fail.raw": _CONTROLS,
    "mime/enmime/testdata/parts/chardet-success-big-5.raw": _CHARSET,
    "mime/mailgun-flanker/tests/fixtures/messages/from-encoding.eml": _QUOTED,
    "mime/mimekit/UnitTests/TestData/messages/body.9.txt": _SUBTYPE,
    "mime/mimekit/UnitTests/TestData/messages/epilogue.txt": _QUOTED,
    "mime/nodemailer-mailparser/test/fixtures/htmllargecallstack.eml": _MARKUP,
    "mime/nodemailer-mailparser/test/fixtures/outofmemory.eml": _MARKUP,
    "mime/nodemailer-mailparser/test/fixtures/spam.eml": _INLINE_TAGS,
    "mime/stalwart-mail-parser/resources/eml/thirdparty/005.eml": _CHARSET,
    "mime/stalwart-mail-parser/resources/eml/thirdparty/007.eml": _ATTACHED,
    "mime/stalwart-mail-parser/resources/eml/thirdparty/008.eml": _SUBTYPE,
    "mime/stalwart-mail-parser/resources/eml/thirdparty/012.eml": _SUBTYPE,
}


def _name(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def as_delivered(path: Path) -> bytes:
    """CRLF line endings, as SMTP and IMAP deliver (and as Dovecot counts)."""
    raw = path.read_bytes()
    if raw.startswith(b"From "):
        raw = raw[raw.find(b"\n") + 1 :]
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _text(value: bytes) -> str | None:
    """A PREVIEW value's text: NIL, a quoted string or a literal."""
    if value == b"NIL":
        return None
    if value.startswith(b'"'):
        return re.sub(rb"\\(.)", rb"\1", value[1:-1]).decode("utf-8", "replace")
    return value[value.index(b"\n") + 1 :].decode("utf-8", "replace")


def _normal(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot() as server:
        yield server


@pytest.fixture(scope="module")
def corpus_previews(dovecot: Dovecot) -> dict[str, bytes]:
    """corpus path -> Dovecot's PREVIEW value, from one FETCH of its INBOX."""
    files = [p for p in MIME_FILES if p.stat().st_size < 2_000_000]
    names = dovecot.deliver([as_delivered(p) for p in files], user=USER)
    fetched = dovecot.fetch_items(["PREVIEW"])
    return {_name(p): fetched[n]["PREVIEW"] for p, n in zip(files, names, strict=True)
            if n in fetched}


def _fetch_lines(port: int, user: str, password: str, command: str) -> list[bytes]:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        client.login(user, password)
        client.create("Wire")  # NO [ALREADYEXISTS] the second time: the same on both
        for message in WIRE_MESSAGES:
            assert client.append("Wire", None, None, message)[0] == "OK"
        client.select("Wire", readonly=True)
        tag = client._new_tag()  # imaplib parses literals away: the lines as sent are wanted
        client.send(tag + b" " + command.encode() + b"\r\n")
        lines = []
        while True:
            line = client._get_line()
            literal = re.search(rb"\{(\d+)\}$", line)
            if literal is not None:
                line += b"\r\n" + client.read(int(literal.group(1))) + client._get_line()
            if line.startswith(tag):
                assert line.split()[1] == b"OK", line
                return lines
            lines.append(line)
    finally:
        client.logout()


def test_same_wire_answers_as_dovecot(dovecot: Dovecot, tmp_path: Path) -> None:
    with ServerThread(tmp_path, {"auth": {"allow_plaintext": True}}) as ours:
        address = "preview@example.com"
        ours.add_user(address, PASSWORD)
        ours_lazy = _fetch_lines(ours.port("imap"), address, PASSWORD, "FETCH 1:* PREVIEW (LAZY)")
        ours_lines = _fetch_lines(ours.port("imap"), address, PASSWORD, "FETCH 1:* PREVIEW")
    theirs_lazy = _fetch_lines(dovecot.port, USER, PASSWORD, "FETCH 1:* PREVIEW (LAZY)")
    theirs_lines = _fetch_lines(dovecot.port, USER, PASSWORD, "FETCH 1:* PREVIEW")
    # The second session's APPENDs doubled each mailbox: both halves answer the same.
    assert ours_lines == theirs_lines
    assert len(ours_lines) == 2 * len(WIRE_MESSAGES)
    assert b'* 1 FETCH (PREVIEW "Hello there, this is a test.")' in ours_lines
    assert "* 3 FETCH (PREVIEW {15}\r\nHello world ✔)".encode() in ours_lines
    assert b'* 6 FETCH (PREVIEW "")' in ours_lines
    # LAZY: Dovecot had no preview cached for the messages just appended; mailstead has one
    # for every message it stored.
    assert theirs_lazy == [b"* %d FETCH (PREVIEW NIL)" % n for n in range(1, 8)]
    assert ours_lazy == ours_lines[: len(WIRE_MESSAGES)]


def _corpus_cases() -> list[object]:
    return [
        pytest.param(p, id=_name(p), marks=[pytest.mark.xfail(
            reason=KNOWN_DIFFERENCES[_name(p)], strict=True)] if _name(p) in KNOWN_DIFFERENCES
            else [])
        for p in MIME_FILES if p.stat().st_size < 2_000_000
    ]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
@pytest.mark.parametrize("path", _corpus_cases())
def test_corpus_preview_begins_as_dovecots(path: Path, corpus_previews: dict[str, bytes]) -> None:
    theirs = _text(corpus_previews[_name(path)])
    ours = parse_message(as_delivered(path)).preview
    assert theirs is not None and ours is not None
    theirs, ours = _normal(theirs), _normal(ours)
    assert ours[: len(theirs)] == theirs, f"\ndovecot:   {theirs!r}\nmailstead: {ours!r}"
