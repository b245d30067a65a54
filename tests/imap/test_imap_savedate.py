"""SAVEDATE (RFC 8514) against the real server: the FETCH item and the SAVED* search keys.
The save date is when the message entered the mailbox, not the internal date APPEND gave."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mailstead.testing.server import ServerThread
from tests.imap.conftest import SIMPLE_MESSAGE, Raw, status_of

_OLD = "01-Feb-2001 10:00:00 +0000"


def _append(raw: Raw, mailbox: str = "INBOX", date: str | None = None) -> None:
    when = f' "{date}"' if date else ""
    raw.send(f"a APPEND {mailbox}{when} {{{len(SIMPLE_MESSAGE)}+}}\r\n".encode()
             + SIMPLE_MESSAGE + b"\r\n")
    assert status_of(raw.read_until_tag("a")) == b"OK"


def _imap_date(day: datetime) -> str:
    return day.strftime("%d-%b-%Y")


def test_capability_fetch_and_search(server: ServerThread, account: str) -> None:
    raw = Raw(server.port("imap"), login=account)
    assert b" SAVEDATE" in raw.command("CAPABILITY")[0]
    _append(raw, date=_OLD)
    raw.command("SELECT INBOX")
    lines = raw.command("FETCH 1 (INTERNALDATE SAVEDATE)")
    m = re.match(rb'\* 1 FETCH \(INTERNALDATE "([^"]+)" SAVEDATE "([^"]+)"\)', lines[0])
    assert m is not None, lines
    assert m.group(1).decode() == _OLD
    saved = datetime.strptime(m.group(2).decode(), "%d-%b-%Y %H:%M:%S %z")
    assert abs(saved - datetime.now(UTC)) < timedelta(minutes=5)

    today = datetime.now(UTC)
    assert raw.command(f"SEARCH SAVEDON {_imap_date(saved)}")[0] == b"* SEARCH 1\r\n"
    assert raw.command(f"SEARCH SAVEDSINCE {_imap_date(today - timedelta(days=2))}")[0] == (
        b"* SEARCH 1\r\n"
    )
    assert raw.command(f"SEARCH SAVEDBEFORE {_imap_date(today - timedelta(days=2))}")[0] == (
        b"* SEARCH\r\n"
    )
    # The internal date is another thing: BEFORE finds the old one, SAVEDBEFORE does not.
    assert raw.command("SEARCH BEFORE 1-Jan-2002")[0] == b"* SEARCH 1\r\n"
    assert raw.command("SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1\r\n"
    assert raw.command("SEARCH NOT SAVEDATESUPPORTED")[0] == b"* SEARCH\r\n"
    assert status_of(raw.command("SEARCH SAVEDON yesterday")) == b"BAD"
    raw.close()


def test_copy_is_saved_anew(server: ServerThread, account: str) -> None:
    raw = Raw(server.port("imap"), login=account)
    _append(raw, date=_OLD)
    assert status_of(raw.command("CREATE Kept")) == b"OK"
    raw.command("SELECT INBOX")
    assert status_of(raw.command("COPY 1 Kept")) == b"OK"
    raw.command("SELECT Kept")
    lines = raw.command("UID FETCH 1:* (SAVEDATE INTERNALDATE)")
    expected = rb'\* 1 FETCH \(SAVEDATE "[^"]+" INTERNALDATE "%s" UID 1\)' % re.escape(
        _OLD.encode()
    )
    assert re.match(expected, lines[0]), lines
    assert b"2001" not in lines[0].split(b"INTERNALDATE")[0]
    raw.close()
