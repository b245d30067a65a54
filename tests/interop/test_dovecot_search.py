"""Differential test: SEARCH answers against Dovecot's on the same messages.

The messages are the 19 that James's SearchAtoms script appends (a mix of simple, multipart,
nested message/rfc822, group addresses, Resent-* fields and 8-bit text) plus one message per
kind of attachment. The search programs are every plain ``SEARCH`` line of that script
(no RETURN options, which Dovecot 2.3 partly lacks) and a few for the attachments. Both servers
get the messages in the same order, so sequence numbers line up and the untagged ``SEARCH``
answers must be equal word for word.

mailstead answers text keys from its full-text index where it can (decision 0027); the
messages and programs of ``INDEX_*`` probe that index's edges (needles under three
characters, non-ASCII case, encoded-words, transfer encodings, HTML-only mail, parts of
addresses), and Dovecot runs with its default configuration (no FTS plugin).

Where James's own expectations differ from both (one BODY line), see
docs/imap-compatibility.md. The messages all carry a Date: field: without one, Dovecot takes
1970 as the sent date and mailstead the INTERNALDATE (RFC 5256 §2.2).
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator

import pytest
from dovecot import Dovecot, IMAPWire, dovecot_binary

from mailstead.testing.paths import SHARED
from mailstead.testing.server import ServerThread

SEARCH_ATOMS = (
    SHARED / "conformance/james-mpt/mpt/impl/imap-mailbox/core/src/main/resources/org/apache"
    "/james/imap/scripts/SearchAtoms.test"
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
    pytest.mark.skipif(not SEARCH_ATOMS.is_file(), reason="James's scripts are not present"),
]

_LITERAL = re.compile(r"\{(\d+)\+?\}$")
_SEARCH = re.compile(r"^C: \S+ SEARCH (.*)$")
#: CONDSTORE keys: both servers' mod-sequences are their own.
_SKIP = re.compile(r"\b(RETURN|MODSEQ|SAVED\w*)\b", re.IGNORECASE)


def _appended(script: list[str]) -> list[bytes]:
    """The literal of every APPEND in a James script, as the wire carries it (CRLF)."""
    messages = []
    for i, line in enumerate(script):
        if not re.match(r"C: \S+ APPEND ", line):
            continue
        m = _LITERAL.search(line)
        assert m is not None, line
        size, data, k = int(m.group(1)), b"", i + 1
        while len(data) < size:
            data += script[k][3:].encode() + b"\r\n"
            k += 1
        messages.append(data[:size])
    return messages


def _attachment(content_type: str, encoding: str, text: str) -> bytes:
    body = base64.b64encode(text.encode()).decode() if encoding == "base64" else text
    return (
        "From: a@example.org\r\nSubject: attachment\r\nDate: Sun, 1 Jun 2025 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
        f"--B\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
        f"{body}\r\n--B--\r\n"
    ).encode()


ATTACHMENTS = [
    _attachment(content_type, encoding, "the zebra runs")
    for content_type, encoding in (
        ("text/plain", "base64"),
        ("text/html", "base64"),
        ("application/octet-stream", "base64"),
        ("image/gif", "base64"),
        ("application/xhtml+xml", "7bit"),
        ("application/pdf", "7bit"),
    )
]
EXTRA_PROGRAMS = ["BODY zebra", "TEXT zebra", 'TEXT "Content-Type: image/gif"', "BODY attachment"]

#: Messages for the full-text index's edges (decision 0027): an HTML-only message (searched
#: as written, tags included), RFC 2047 encoded-word headers in two charsets, a
#: quoted-printable UTF-8 body and a base64 ISO-8859-1 one.
INDEX_MESSAGES = [
    b"From: Web Team <news@letters.example.com>\r\nTo: reader@example.org\r\n"
    b"Subject: weekly digest\r\nDate: Sun, 1 Jun 2025 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html><body><p class="note">The <b>walrus</b> caf&eacute; is open</p></body></html>\r\n',
    b"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <joerg@mail.example.com>\r\n"
    b"To: =?utf-8?b?w4VzYQ==?= <asa@example.net>\r\n"
    b"Subject: =?utf-8?q?Stra=C3=9Fe_und_Caf=C3=A9?=\r\n"
    b"Date: Sun, 1 Jun 2025 11:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\nGr=C3=BC=C3=9Fe aus M=C3=BCnchen, =\r\nsoft break\r\n",
    b"From: Ana <ana@sub.example.org>\r\nSubject: latin\r\n"
    b"Date: Sun, 1 Jun 2025 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes("Señor Niño paga el café".encode("latin-1")) + b"\r\n",
]


def _utf8(key: str, text: str) -> str:
    """A program whose string is UTF-8, sent as a non-synchronizing literal (RFC 7888)."""
    return f"CHARSET UTF-8 {key} {{{len(text.encode())}+}}\r\n{text}"


INDEX_PROGRAMS = [
    # HTML-only mail: text, markup and entities as written
    "BODY walrus", "TEXT walrus", "BODY class", 'BODY "<b>walrus</b>"', "BODY caf&eacute;",
    # a part of an address: local part, domain, across the @
    "FROM xample.co", "FROM mail.ex", "FROM rg@ma", "FROM letters", "TO xample.ne",
    "CC example", "BCC example",
    # two characters and one: below the index's trigrams
    "BODY ze", "SUBJECT di", "FROM an", "TEXT q", "BODY wa",
    # encoded-words and charsets, decoded
    _utf8("FROM", "jörg"), _utf8("FROM", "MÜLLER"), _utf8("TO", "åsa"),
    _utf8("SUBJECT", "straße"), _utf8("SUBJECT", "café"), _utf8("BODY", "grüße"),
    _utf8("BODY", "MÜNCHEN"), _utf8("BODY", "señor niño"), _utf8("TEXT", "ñ"),
    _utf8("HEADER Subject", "und caf"), _utf8("BODY", "münchen, soft"),
    "HEADER From joerg@", 'HEADER Subject "=?utf-8"', "SUBJECT Stra",
]


def _messages_and_programs() -> tuple[list[bytes], list[str]]:
    script = SEARCH_ATOMS.read_text(encoding="utf-8").splitlines()
    programs = [
        m.group(1) for line in script if (m := _SEARCH.match(line)) and not _SKIP.search(line)
    ]
    messages = _appended(script) + ATTACHMENTS + INDEX_MESSAGES
    return messages, programs + EXTRA_PROGRAMS + INDEX_PROGRAMS


def _answer(lines: list[bytes]) -> str:
    found = [line for line in lines if line.startswith(b"* SEARCH")]
    assert len(found) == 1, lines
    return found[0].decode().removeprefix("* SEARCH").strip()


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    """program -> (mailstead's answer, Dovecot's answer)."""
    messages, programs = _messages_and_programs()
    theirs: dict[str, str] = {}
    with Dovecot() as dovecot:
        dovecot.deliver(messages)
        with dovecot.connect() as wire:
            wire.command("SELECT INBOX")
            for program in programs:
                theirs[program] = _answer(wire.command(f"SEARCH {program}"))
    config = {"auth": {"allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("search"), config) as server:
        user = server.add_user("searcher@example.org", "pw")
        for message in messages:
            server.deliver(user.id, message)
        ours = {}
        with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=60) as sock:
            wire = IMAPWire(sock)
            wire.read_response()  # greeting
            wire.command("LOGIN searcher@example.org pw")
            wire.command("SELECT INBOX")
            for program in programs:
                ours[program] = _answer(wire.command(f"SEARCH {program}"))
    yield {p: (ours[p], theirs[p]) for p in programs}


def _programs() -> list[str]:
    return _messages_and_programs()[1] if SEARCH_ATOMS.is_file() else []


@pytest.mark.parametrize("program", _programs())
def test_search_same_as_dovecot(program: str, answers: dict[str, tuple[str, str]]) -> None:
    ours, theirs = answers[program]
    assert ours == theirs, f"SEARCH {program}: mailstead {ours!r}, Dovecot {theirs!r}"


def test_every_program_ran(answers: dict[str, tuple[str, str]]) -> None:
    assert len(answers) > 100
    # Not a vacuous comparison: most programs find something.
    assert sum(1 for ours, _ in answers.values() if ours) > len(answers) // 2
