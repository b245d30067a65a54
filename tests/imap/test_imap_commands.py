"""Every command and response code over a real socket, with imaplib and a raw client."""

from __future__ import annotations

import base64
import imaplib
import re
from collections.abc import Callable

import pytest

from mailstead.auth.throttle import Throttle
from mailstead.testing.server import ServerThread
from tests.imap.conftest import (
    MULTIPART_MESSAGE,
    SIMPLE_MESSAGE,
    Raw,
    append,
    connect,
    status_of,
)

REQUIRED_CAPS = {
    "IMAP4REV1", "IMAP4REV2", "LITERAL+", "SASL-IR", "ENABLE", "ID", "IDLE", "NAMESPACE",
    "UNSELECT", "UIDPLUS", "MOVE", "ESEARCH", "SEARCHRES", "SPECIAL-USE",
    "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "CHILDREN", "STATUS=SIZE",
    "UTF8=ACCEPT", "BINARY", "AUTH=PLAIN", "AUTH=LOGIN", "STARTTLS",
}


def test_capability_greeting_and_after_login(server: ServerThread, account: str) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    assert set(c.capabilities) >= REQUIRED_CAPS
    assert any(cap.startswith("APPENDLIMIT=") for cap in c.capabilities)
    typ, data = c.login(account, "correct horse")
    assert typ == "OK" and b"[CAPABILITY IMAP4rev1 IMAP4rev2" in data[0]
    assert b"AUTH=PLAIN" not in data[0] and b"STARTTLS" not in data[0]
    assert c.noop()[0] == "OK"
    assert c.logout()[0] == "BYE"


@pytest.mark.usefixtures("own_throttle")
def test_login_failure_and_state_errors(server: ServerThread, account: str) -> None:
    r = Raw(server.port("imap"))
    assert status_of(r.command("SELECT INBOX")) == b"NO"  # well-formed, wrong state
    lines = r.command(f'LOGIN {account} "wrong"')
    assert lines[-1].startswith(b"t2 NO [AUTHENTICATIONFAILED]")
    assert status_of(r.command(f'LOGIN {account} "correct horse"')) == b"OK"
    assert status_of(r.command(f'LOGIN {account} "correct horse"')) == b"NO"
    assert status_of(r.command("FETCH 1 FLAGS")) == b"NO"  # not selected
    r.close()


def test_authenticate_plain_sasl_ir_and_login_mechanism(
    server: ServerThread, account: str
) -> None:
    import base64

    r = Raw(server.port("imap"))
    ir = base64.b64encode(f"\0{account}\0correct horse".encode()).decode()
    lines = r.command(f"AUTHENTICATE PLAIN {ir}")
    assert lines[-1].startswith(b"t1 OK [CAPABILITY")
    r.close()

    r = Raw(server.port("imap"))
    r.send("a AUTHENTICATE LOGIN\r\n")
    assert r.readline() == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    r.send(base64.b64encode(account.encode()) + b"\r\n")
    assert r.readline() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    r.send(base64.b64encode(b"correct horse") + b"\r\n")
    assert r.readline().startswith(b"a OK")
    r.close()

    r = Raw(server.port("imap"))
    r.send("b AUTHENTICATE PLAIN\r\n")
    assert r.readline() == b"+ \r\n"
    r.send("*\r\n")
    assert r.readline().startswith(b"b BAD")
    assert status_of(r.command("AUTHENTICATE CRAM-MD5")) == b"NO"
    r.close()


def test_select_examine_responses(raw: Raw, client: imaplib.IMAP4) -> None:
    append(client, flags="(\\Seen)")
    append(client)
    lines = raw.command("SELECT INBOX")
    text = b"".join(lines)
    assert b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen)" in text
    assert b"* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen \\*)]" in text
    assert b"* 2 EXISTS" in text and b"* 2 RECENT" in text
    assert b"* OK [UNSEEN 2]" in text
    assert re.search(rb"\* OK \[UIDVALIDITY \d+\]", text)
    assert b"* OK [UIDNEXT 3]" in text
    assert lines[-1].startswith(b"t2 OK [READ-WRITE]")
    lines = raw.command("EXAMINE INBOX")
    text = b"".join(lines)
    # The same mailbox again: this session keeps the \Recent it was given (RFC 3501 §2.3.2).
    assert b"[PERMANENTFLAGS ()]" in text and b"* 2 RECENT" in text
    assert lines[-1].startswith(b"t3 OK [READ-ONLY]")
    assert b"[READ-ONLY]" in raw.command("STORE 1 +FLAGS (\\Flagged)")[-1]
    assert status_of(raw.command("SELECT Nope")) == b"NO"
    assert status_of(raw.command("FETCH 1 FLAGS")) == b"NO"  # failed SELECT deselects


def _recent(c: imaplib.IMAP4) -> int:
    return int(c.untagged_responses.pop("RECENT")[-1])


def test_recent_lasts_while_the_session_works_with_the_mailbox(
    server: ServerThread, account: str
) -> None:
    """RFC 3501 §2.3.2, "session" read as Dovecot and James do: \\Recent stays with the
    session through a SELECT or EXAMINE of the same mailbox (even after a failed SELECT in
    between) and ends with CLOSE, UNSELECT or opening another mailbox."""
    c = connect(server, account)
    for _ in range(2):
        append(c)
    assert c.select("INBOX")[0] == "OK" and _recent(c) == 2
    assert c.select("INBOX")[0] == "OK" and _recent(c) == 2
    assert c.select("INBOX", readonly=True)[0] == "OK" and _recent(c) == 2
    assert c.fetch("2", "(FLAGS)")[1] == [b"2 (FLAGS (\\Recent))"]
    assert c.select("Nope")[0] == "NO"
    assert c.select("INBOX")[0] == "OK" and _recent(c) == 2
    c.close()
    assert c.select("INBOX")[0] == "OK" and _recent(c) == 0

    append(c)  # seen by this session while INBOX is selected: \Recent here
    c.noop()
    assert _recent(c) == 1
    assert c.select("Sent")[0] == "OK"
    assert c.select("INBOX")[0] == "OK" and _recent(c) == 0
    c.unselect()
    c.logout()


def test_examine_shows_unclaimed_recent_without_taking_it(
    server: ServerThread, account: str
) -> None:
    reader = connect(server, account)
    append(reader)
    assert reader.select("INBOX", readonly=True)[0] == "OK" and _recent(reader) == 1
    assert reader.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]
    writer = connect(server, account)
    assert writer.select("INBOX")[0] == "OK" and _recent(writer) == 1
    reader.logout()
    writer.logout()


def test_rev2_select_and_search(raw: Raw, client: imaplib.IMAP4) -> None:
    append(client)
    assert raw.command("ENABLE IMAP4rev2 UTF8=ACCEPT")[0] == b"* ENABLED IMAP4rev2 UTF8=ACCEPT\r\n"
    text = b"".join(raw.command("SELECT INBOX"))
    assert b"RECENT" not in text and b"UNSEEN" not in text
    assert b'* LIST () "/" "INBOX"' in text
    lines = raw.command("SEARCH ALL", tag="s1")
    assert lines[0] == b'* ESEARCH (TAG "s1") ALL 1\r\n'
    text = b"".join(raw.command("SELECT Sent"))
    assert b"* OK [CLOSED]" in text
    assert status_of(raw.command("ENABLE IMAP4rev2")) == b"NO"  # not in selected state


def test_new_mailbox_names_are_limited_to_200_characters(client: imaplib.IMAP4) -> None:
    """As James: a longer CREATE or RENAME target is no valid name, so BAD, and nothing
    is created."""
    assert client.create("n" * 200)[0] == "OK"
    with pytest.raises(imaplib.IMAP4.error, match="longer than 200"):
        client.create("x" * 201)
    with pytest.raises(imaplib.IMAP4.error, match="longer than 200"):
        client.rename("n" * 200, "y" * 201)
    names = b" ".join(client.list()[1])
    assert b"x" * 201 not in names and b"y" * 201 not in names and b"n" * 200 in names
    assert client.rename("n" * 200, "m" * 200)[0] == "OK"
    assert client.noop()[0] == "OK"


def test_create_delete_rename_list(client: imaplib.IMAP4) -> None:
    assert client.create("Projects/2024/Q1")[0] == "OK"
    assert client.create("Projects")[1][0].startswith(b"[ALREADYEXISTS]")
    assert client.create("INBOX")[0] == "NO"
    typ, data = client.list('""', "Projects*")
    assert data == [
        b'(\\HasChildren) "/" "Projects"',
        b'(\\HasChildren) "/" "Projects/2024"',
        b'(\\HasNoChildren) "/" "Projects/2024/Q1"',
    ]
    assert client.list('""', "%")[1][0] == b'(\\HasNoChildren) "/" "INBOX"'
    assert client.list("Projects/", "%")[1] == [b'(\\HasChildren) "/" "Projects/2024"']
    assert client.list('""', "inbox")[1] == [b'(\\HasNoChildren) "/" "INBOX"']
    assert client.list('""', '""')[1] == [b'(\\Noselect) "/" ""']
    assert client.rename("Projects/2024", "Archive/2024")[0] == "OK"
    assert client.list('""', "Archive/*")[1] == [
        b'(\\HasChildren) "/" "Archive/2024"',
        b'(\\HasNoChildren) "/" "Archive/2024/Q1"',
    ]
    typ, data = client.rename("Nope", "Other")
    assert typ == "NO" and data[0].startswith(b"[NONEXISTENT]")
    assert client.delete("Archive/2024")[0] == "OK"  # has children: stays as \\Noselect
    assert client.delete("Archive/2024")[1][0].startswith(b"[INUSE]")
    assert client.delete("Archive/2024/Q1")[0] == "OK"
    assert client.delete("INBOX")[0] == "NO"
    assert client.delete("Nope")[1][0].startswith(b"[NONEXISTENT]")


def test_a_mailbox_name_starting_with_tilde(client: imaplib.IMAP4) -> None:
    """RFC 9051 §9: "~" is an ordinary atom character (only "~{" starts a literal8), so
    imaplib sends these names unquoted and they must work as any other name."""
    assert client.create("~foo")[0] == "OK"
    assert client.create("~foo/~bar")[0] == "OK"
    typ, data = client.list('""', "~foo")
    assert (typ, data) == ("OK", [b'(\\HasChildren) "/" "~foo"'])
    assert client.list("~foo/", "%")[1] == [b'(\\HasNoChildren) "/" "~foo/~bar"']
    append(client, mailbox="~foo")
    assert client.select("~foo") == ("OK", [b"1"])
    assert client.status("~foo/~bar", "(MESSAGES)")[1] == [b'"~foo/~bar" (MESSAGES 0)']


def test_rename_inbox(server: ServerThread, account: str, client: imaplib.IMAP4) -> None:
    """RFC 9051 §6.3.6: the messages move to the new name, INBOX is left empty with UIDNEXT 1
    and a greater UIDVALIDITY (§2.3.1.1). A session that had INBOX selected goes on with the
    same mailbox under its new name; new mail lands in the new INBOX."""
    append(client)
    append(client)
    before = client.status("INBOX", "(UIDVALIDITY)")[1][0]
    m = re.search(rb"UIDVALIDITY (\d+)", before)
    assert m is not None
    old_validity = int(m.group(1))
    other = Raw(server.port("imap"), login=account)
    try:
        assert status_of(other.command("SELECT INBOX")) == b"OK"
        assert client.rename("INBOX", '"Old Inbox"')[0] == "OK"
        assert client.select("INBOX") == ("OK", [b"0"])
        assert client.response("UIDNEXT") == ("UIDNEXT", [b"1"])
        _, data = client.response("UIDVALIDITY")
        assert data[0] is not None and int(data[0]) > old_validity
        _, data = client.status('"Old Inbox"', "(MESSAGES UIDNEXT UIDVALIDITY)")
        assert data[0] == f'"Old Inbox" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY {old_validity})'.encode()
        lines = other.command("NOOP")  # a rename expunges nothing and announces nothing
        assert len(lines) == 1 and status_of(lines) == b"OK", lines
        lines = other.command("UID STORE 2 +FLAGS.SILENT (\\Flagged)")
        assert status_of(lines) == b"OK", lines
        lines = other.command("UID FETCH 1:* (UID FLAGS)")
        assert lines[:-1] == [
            b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n",
            b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n",
        ], lines
        user = server.call(server.store.find_user(account))
        assert user is not None
        server.deliver(user.id, SIMPLE_MESSAGE)
        assert server.inbox_count(user.id) == 1
        assert client.noop()[0] == "OK" and client.response("EXISTS")[1][-1] == b"1"
        lines = other.command("NOOP")  # the delivery went to the new INBOX, not here
        assert len(lines) == 1 and status_of(lines) == b"OK", lines
        lines = other.command("UID FETCH 1:* (UID)")
        assert sum(b"FETCH (UID" in ln for ln in lines) == 2, lines
        assert client.rename('"Old Inbox"', "INBOX")[1][0].startswith(b"[ALREADYEXISTS]")
    finally:
        other.close()


def test_mutf7_and_utf8_names(raw: Raw) -> None:
    assert status_of(raw.command("CREATE Entw&APw-rfe")) == b"OK"
    assert b'"Entw&APw-rfe"' in b"".join(raw.command('LIST "" Entw*'))
    assert status_of(raw.command("SELECT Entw&APw-rfe")) == b"OK"
    assert status_of(raw.command("CREATE &Jjo")) == b"BAD"
    raw.command("UNSELECT")
    raw.command("ENABLE UTF8=ACCEPT")
    assert "Entwürfe".encode() in b"".join(raw.command('LIST "" Entw*'))
    assert status_of(raw.command('STATUS "Entwürfe" (MESSAGES)'.encode())) == b"OK"


def test_special_use_and_list_extended(raw: Raw) -> None:
    assert status_of(raw.command("CREATE Receipts (USE (\\Archive))")) == b"OK"
    assert b"[USEATTR]" in raw.command("CREATE Bogus (USE (\\Bogus))")[-1]
    text = b"".join(raw.command('LIST (SPECIAL-USE) "" *'))
    for use in (b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive"):
        assert use in text
    assert b'"INBOX"' not in text and b'"Receipts"' in text
    raw.command("SUBSCRIBE Receipts")
    raw.command("CREATE Lists/python")
    raw.command("SUBSCRIBE Lists/python")
    lines = raw.command('LIST (SUBSCRIBED) "" *')
    assert b'"Receipts"' in b"".join(lines) and b'"Lists/python"' in b"".join(lines)
    assert b'"Lists"' not in b"".join(lines)
    assert all(b"\\Subscribed" in line for line in lines[:-1])
    lines = raw.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
    assert b'"Lists" ("CHILDINFO" ("SUBSCRIBED"))' in b"".join(lines)
    lines = raw.command('LIST "" ("INBOX" "Sent") RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES))')
    text = b"".join(lines)
    assert b'* STATUS "INBOX" (MESSAGES 0)' in text and b'* STATUS "Sent" (MESSAGES 0)' in text
    lines = raw.command('LSUB "" *')
    assert b'* LSUB () "/" "Lists/python"\r\n' in lines
    assert b'* LSUB () "/" "Receipts"\r\n' in lines
    assert b'* LSUB (\\Noselect) "/" "Lists"\r\n' in raw.command('LSUB "" %')
    raw.command("UNSUBSCRIBE Receipts")
    assert b"Receipts" not in b"".join(raw.command('LSUB "" *'))


def test_lsub_shows_a_subscribed_name_that_does_not_exist_plainly(
    client: imaplib.IMAP4,
) -> None:
    """In LSUB, \\Noselect means "shown only for subscribed children" (RFC 3501 §6.3.9), so
    a subscribed name with no mailbox gets () as in Dovecot and James; LIST (SUBSCRIBED)
    is where \\NonExistent tells it is gone."""
    assert client.subscribe("Ghost")[0] == "OK"
    assert client.lsub('""', "Ghost")[1] == [b'() "/" "Ghost"']
    assert client._simple_command("LIST", '(SUBSCRIBED) "" Ghost')[0] == "OK"
    listed = client.untagged_responses.pop("LIST")
    assert listed == [b'(\\NonExistent \\Subscribed) "/" "Ghost"']


def test_trailing_spaces_after_a_command_are_tolerated(raw: Raw) -> None:
    """As Dovecot and James: a client that pads its line with spaces is not refused."""
    assert status_of(raw.command("NOOP   ")) == b"OK"
    assert status_of(raw.command('LSUB "" "%"    ')) == b"OK"
    assert status_of(raw.command("SELECT INBOX  ")) == b"OK"
    assert status_of(raw.command("SEARCH ALL  ")) == b"OK"


def test_status_items(client: imaplib.IMAP4) -> None:
    append(client, flags="(\\Seen \\Deleted)")
    append(client)
    typ, data = client.status(
        "INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT APPENDLIMIT)"
    )
    size = 2 * len(SIMPLE_MESSAGE)
    # One fixed order whatever the order asked (docs/imap.md).
    assert re.fullmatch(
        rf'"INBOX" \(APPENDLIMIT \d+ MESSAGES 2 SIZE {size} DELETED 1 RECENT 2 UIDNEXT 3 '
        r"UIDVALIDITY \d+ UNSEEN 1\)",
        data[0].decode(),
    )
    typ, data = client.status("Nope", "(MESSAGES)")
    assert typ == "NO" and data[0].startswith(b"[NONEXISTENT]")


def test_append_variants(raw: Raw, client: imaplib.IMAP4) -> None:
    lines = raw.command(
        b'APPEND Drafts (\\Draft $Label) "05-Mar-2024 10:11:12 +0100" {%d+}\r\n%s'
        % (len(SIMPLE_MESSAGE), SIMPLE_MESSAGE)
    )
    assert re.match(rb"t\d+ OK \[APPENDUID \d+ 1\]", lines[-1])
    raw.command("SELECT Drafts")
    text = b"".join(raw.command("FETCH 1 (FLAGS INTERNALDATE)"))
    assert b'INTERNALDATE "05-Mar-2024 09:11:12 +0000"' in text  # the instant, in UTC
    assert b"\\Draft" in text and b"$Label" in text
    lines = raw.command("APPEND Nope {3+}\r\nabc")
    assert b"[TRYCREATE]" in lines[-1]
    # Synchronising literal beyond APPENDLIMIT: refused before the continuation.
    raw.send(b"big APPEND INBOX {999999999999}\r\n")
    line = raw.readline()
    assert line.startswith(b"big NO [TOOBIG]")
    assert status_of(raw.command("NOOP")) == b"OK"
    # Synchronising literal within limits gets "+ " first.
    raw.send(b"s APPEND INBOX {%d}\r\n" % len(SIMPLE_MESSAGE))
    assert raw.readline().startswith(b"+ ")
    raw.send(SIMPLE_MESSAGE + b"\r\n")
    assert raw.read_until_tag("s")[-1].startswith(b"s OK [APPENDUID")
    # Appending to the selected mailbox announces EXISTS before the tagged OK.
    lines = raw.command(b"APPEND Drafts {%d+}\r\n%s" % (len(SIMPLE_MESSAGE), SIMPLE_MESSAGE))
    assert lines[0] == b"* 2 EXISTS\r\n"


def test_internaldate_is_reported_in_utc(raw: Raw) -> None:
    """An APPEND date keeps its instant but not its zone (as Dovecot on a UTC server), and
    SEARCH BEFORE/ON/SINCE compare that UTC date, disregarding time (RFC 9051 §6.4.4)."""
    for date in ("17-Jul-1996 02:44:25 -0700", " 1-Mar-2024 23:30:00 -0700"):
        lines = raw.command(
            b'APPEND INBOX "%s" {%d+}\r\n%s' % (date.encode(), len(SIMPLE_MESSAGE), SIMPLE_MESSAGE)
        )
        assert status_of(lines) == b"OK", lines
    raw.command("SELECT INBOX")
    lines = raw.command("FETCH 1:2 (INTERNALDATE)")
    assert lines[:-1] == [
        b'* 1 FETCH (INTERNALDATE "17-Jul-1996 09:44:25 +0000")\r\n',
        b'* 2 FETCH (INTERNALDATE "02-Mar-2024 06:30:00 +0000")\r\n',
    ], lines
    for criteria, found in [
        ("ON 17-Jul-1996", b"* SEARCH 1"),
        ("ON 2-Mar-2024", b"* SEARCH 2"),
        ("ON 1-Mar-2024", b"* SEARCH"),
        ("BEFORE 2-Mar-2024", b"* SEARCH 1"),
        ("SINCE 2-Mar-2024", b"* SEARCH 2"),
    ]:
        assert raw.command(f"SEARCH {criteria}")[0] == found + b"\r\n", criteria


def test_fetch_items_and_seen(raw: Raw, client: imaplib.IMAP4) -> None:
    append(client)
    append(client, MULTIPART_MESSAGE)
    raw.command("SELECT INBOX")
    text = b"".join(raw.command("FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] FLAGS)"))
    assert b"BODY[HEADER.FIELDS (Subject)] {24}\r\nSubject: lunch plans\r\n\r\n" in text
    assert b"\\Seen" not in text
    text = b"".join(raw.command("FETCH 1 BODY[TEXT]<6.4>"))
    assert b"BODY[TEXT]<6> {4}\r\nwe m" in text and b"FLAGS (\\Recent \\Seen)" in text
    text = b"".join(raw.command("FETCH 1 (ENVELOPE RFC822.SIZE UID)"))
    assert b'ENVELOPE ("Mon, 7 Feb 2022 21:52:25 -0800" "lunch plans" (("Alice Example"' in text
    assert b"RFC822.SIZE %d UID 1" % len(SIMPLE_MESSAGE) in text
    text = b"".join(raw.command("UID FETCH 2 (BODYSTRUCTURE BODY[1] BINARY[1] BINARY.SIZE[2])"))
    # The implicit UID goes after the requested items (RFC 9051 §6.4.9; order is free).
    assert text.startswith(b"* 2 FETCH (FLAGS (\\Recent \\Seen) BODYSTRUCTURE ((\"text\"")
    assert text.endswith(b" BINARY.SIZE[2] 5 UID 2)\r\nt6 OK UID FETCH completed\r\n")
    assert b"BODY[1] {29}\r\nThe caf=C3=A9 numbers are in. " in text
    assert "BINARY[1] {25}\r\nThe café numbers are in. ".encode() in text
    assert b"BINARY.SIZE[2] 5" in text
    text = b"".join(raw.command("FETCH 2 BINARY.PEEK[2]"))
    assert b"BINARY[2] ~{5}\r\n\x00\x01\x02\x03\x04" in text
    text = b"".join(raw.command("FETCH 2 (BODY.PEEK[2.MIME] BODY.PEEK[HEADER] RFC822.HEADER)"))
    assert b"BODY[2.MIME] {" in text and b"Content-Type: application/octet-stream" in text
    text = b"".join(raw.command("FETCH 1:2 (RFC822)"))
    assert text.count(b"RFC822 {") == 2
    lines = raw.command("FETCH 1 FAST")
    assert re.match(rb'\* 1 FETCH \(FLAGS \(.*\) INTERNALDATE ".*" RFC822.SIZE \d+\)', lines[0])
    assert status_of(raw.command("FETCH 3 FLAGS")) == b"BAD"  # beyond EXISTS
    assert raw.command("UID FETCH 3:5 FLAGS")[0].startswith(b"t")  # unknown UIDs: nothing


BASE64_MESSAGE = (
    b"From: Alice Example <alice@example.org>\r\n"
    b"Subject: encoded\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"content-transfer-encoding: 7bit\r\n"
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
    b"aGVsbG8gd29ybGQK\r\n"
)


def test_binary_with_an_empty_section_is_the_whole_message(client: imaplib.IMAP4) -> None:
    """RFC 3516 reuses RFC 9051 §6.4.5's section grammar: BINARY[] and BINARY.SIZE[] cover
    the whole message, header included. A single-part message's body is decoded and its
    header says "binary" (as Dovecot's does); a multipart is sent as it is."""
    append(client)
    append(client, MULTIPART_MESSAGE)
    append(client, BASE64_MESSAGE)
    client.select("INBOX")
    typ, data = client.fetch("1:3", "(BINARY.PEEK[])")
    assert typ == "OK"
    decoded = (b"From: Alice Example <alice@example.org>\r\n"
               b"Subject: encoded\r\n"
               b"Content-Transfer-Encoding: binary\r\n"
               b"MIME-Version: 1.0\r\n"
               b"\r\n"
               b"hello world\n")
    expected = [SIMPLE_MESSAGE, MULTIPART_MESSAGE, decoded]
    assert [part[1] for part in data if isinstance(part, tuple)] == expected
    typ, data = client.fetch("1:3", "(BINARY.SIZE[])")
    assert data == [b"%d (BINARY.SIZE[] %d)" % (n, len(m)) for n, m in enumerate(expected, 1)]
    typ, data = client.fetch("3", "(BINARY.PEEK[]<60.30>)")
    assert typ == "OK" and data[0][1] == decoded[60:90]  # type: ignore[index]


BINARY_PART = bytes(range(200))
BINARY_MESSAGE = (
    b"From: a@example.org\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY_PART + b"\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnul \x00 in text\r\n"
    b"--XX--\r\n"
)
# BINARY_MESSAGE as BODY sections present it: each binary part in base64, 76 per line.
BINARY_SHOWN = (
    b"From: a@example.org\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(BINARY_PART).rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nbnVsIAAgaW4gdGV4dA==\r\n"
    b"--XX--\r\n"
)


def test_binary_parts_are_presented_in_base64_by_body_sections(raw: Raw) -> None:
    """RFC 3516 §6 and RFC 9051 §4.3: a message APPENDed in a literal8 with binary parts
    (Content-Transfer-Encoding binary, or a NUL) keeps its octets for BINARY, while BODY[],
    BODY[n], RFC822 and BODYSTRUCTURE present those parts in base64 (as Dovecot does), so
    no ordinary literal carries a NUL."""
    raw.send(b"a1 APPEND INBOX ~{%d}\r\n" % len(BINARY_MESSAGE))
    assert raw.readline().startswith(b"+ ")
    raw.send(BINARY_MESSAGE + b"\r\n")
    assert status_of(raw.read_until_tag("a1")) == b"OK"
    raw.command("SELECT INBOX")
    text = b"".join(raw.command("FETCH 1 (BODYSTRUCTURE BODY)"))
    assert (b'("application" "octet-stream" NIL NIL NIL "base64" 274 NIL NIL NIL NIL)'
            b'("text" "plain" ("charset" "utf-8") NIL NIL "base64" 20 0 NIL NIL NIL NIL)'
            in text), text
    assert b'"binary"' not in text
    lines = raw.command("FETCH 1 (BODY.PEEK[] RFC822 BODY.PEEK[2] BODY.PEEK[3.MIME] "
                        "BODY.PEEK[TEXT]<0.10> RFC822.TEXT)")
    text = b"".join(lines)
    assert b"BODY[] {%d}\r\n" % len(BINARY_SHOWN) + BINARY_SHOWN in text
    assert b"RFC822 {%d}\r\n" % len(BINARY_SHOWN) + BINARY_SHOWN in text
    body_start = BINARY_SHOWN.index(b"\r\n\r\n") + 4
    assert b"RFC822.TEXT {%d}\r\n" % (len(BINARY_SHOWN) - body_start) in text
    assert b"BODY[2] {274}\r\nAAECAwQF" in text
    assert (b"BODY[3.MIME] {78}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n") in text
    assert b"\x00" not in text and b"~{" not in text
    text = b"".join(raw.command("FETCH 1 (BINARY.PEEK[2] BINARY.PEEK[3] BINARY.PEEK[])"))
    assert b"BINARY[2] ~{200}\r\n" + BINARY_PART in text
    assert b"BINARY[3] ~{13}\r\nnul \x00 in text" in text
    assert b"BINARY[] ~{%d}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE in text


FORWARDED_MESSAGE = (
    b"From: Dave <dave@example.net>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: fwd\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"see below\r\n"
    b"--B\r\n"
    b"Content-Type: image/gif\r\n"
    b"Content-Description: Holiday picture\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"R0lGODlh\r\n"
    b"--B\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: Erin <erin@example.org>\r\n"
    b"Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n"
    b"\r\n"
    b"attached words\r\n"
    b"--B--\r\n"
)


def test_search_text_covers_every_header_body_does_not(
    raw: Raw, client: imaplib.IMAP4
) -> None:
    """TEXT reaches the MIME header of each part and the header of an attached message
    (RFC 9051 §6.4.4 "including MIME header fields"; Dovecot too); BODY stays with the
    decoded part contents, as Dovecot's does."""
    append(client, FORWARDED_MESSAGE)
    append(client)
    raw.command("SELECT INBOX")

    search = _searcher(raw)

    assert search('TEXT "holiday picture"') == b"* SEARCH 1"
    assert search("TEXT erin@example") == b"* SEARCH 1"
    assert search('CHARSET UTF-8 TEXT "résumé"') == b"* SEARCH 1"
    assert search("TEXT attached") == b"* SEARCH 1"
    assert search("BODY attached") == b"* SEARCH 1"
    assert search("BODY erin") == b"* SEARCH"
    assert search('BODY "holiday"') == b"* SEARCH"
    # Fields are searched one by one: no match across the end of one field.
    assert search('TEXT "fwdcontent"') == b"* SEARCH"
    assert search("TEXT noon") == b"* SEARCH 2"


def test_search_address_keys_match_group_names(raw: Raw, client: imaplib.IMAP4) -> None:
    """A group's display name is in the envelope's address list (RFC 9051 §7.5.2), so
    FROM/TO/CC/BCC find it (RFC 9051 §6.4.4; Dovecot and James too)."""
    append(
        client,
        b"From: Tim <tim@example.org>\r\n"
        b"To: Alpha Group:John Smith <john@example.org>, sid@example.org;\r\n"
        b"Cc: Undisclosed recipients:;\r\n"
        b"Subject: groups\r\n"
        b"\r\n"
        b"hello\r\n",
    )
    append(client)
    raw.command("SELECT INBOX")

    search = _searcher(raw)

    assert search("CC undisclosed") == b"* SEARCH 1"
    assert search('TO "alpha group"') == b"* SEARCH 1"
    assert search("TO sid@example.org") == b"* SEARCH 1"
    assert search("TO john") == b"* SEARCH 1"
    assert search("TO bob@example.com") == b"* SEARCH 2"
    assert search("BCC undisclosed") == b"* SEARCH"


def test_search_sent_date_without_date_field_is_the_internaldate(
    raw: Raw, client: imaplib.IMAP4
) -> None:
    """RFC 5256 §2.2: a message with no readable Date: was sent on its INTERNALDATE."""
    undated = b"From: a@example.org\r\nSubject: no date\r\n\r\nhi\r\n"
    client.append("INBOX", None, '"14-Mar-2023 09:00:00 +0000"', undated)
    client.append("INBOX", None, '"14-Mar-2023 09:00:00 +0000"', SIMPLE_MESSAGE)
    raw.command("SELECT INBOX")
    lines = raw.command("SEARCH SENTON 14-Mar-2023")
    assert lines[0] == b"* SEARCH 1\r\n"
    lines = raw.command("SEARCH SENTBEFORE 1-Jan-2000")
    assert lines[0] == b"* SEARCH\r\n"
    lines = raw.command("SEARCH SENTSINCE 1-Jan-2023")
    assert lines[0] == b"* SEARCH 1\r\n"


def test_store_flags(raw: Raw, client: imaplib.IMAP4) -> None:
    for _ in range(3):
        append(client)
    raw.command("SELECT INBOX")
    lines = raw.command("STORE 1:2 +FLAGS (\\Flagged $Work)")
    assert lines[0] == b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Work)\r\n"
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft")
    assert lines[2] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n"
    lines = raw.command("STORE 2 -FLAGS.SILENT ($Work)")
    assert len(lines) == 1 and status_of(lines) == b"OK"
    lines = raw.command("UID STORE 3 FLAGS (\\Answered)")
    assert lines[0] == b"* 3 FETCH (FLAGS (\\Answered \\Recent) UID 3)\r\n"
    lines = raw.command("FETCH 1:* FLAGS")
    assert lines[:3] == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n",
        b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n",
        b"* 3 FETCH (FLAGS (\\Answered \\Recent))\r\n",
    ]


def _searcher(raw: Raw) -> Callable[[str], bytes]:
    """SEARCH with the given criteria in the selected mailbox; the untagged answer."""

    def search(criteria: str) -> bytes:
        lines = raw.command(f"SEARCH {criteria}")
        assert status_of(lines) == b"OK", lines
        return lines[0].rstrip()

    return search


def test_search_keys(raw: Raw, client: imaplib.IMAP4) -> None:
    append(client, flags="(\\Seen)")
    append(client, MULTIPART_MESSAGE, flags="(\\Flagged)")
    append(client, SIMPLE_MESSAGE.replace(b"lunch", b"dinner"))
    raw.command("SELECT INBOX")

    search = _searcher(raw)

    assert search("ALL") == b"* SEARCH 1 2 3"
    assert search("SEEN") == b"* SEARCH 1"
    assert search("UNSEEN FLAGGED") == b"* SEARCH 2"
    assert search("OR SEEN FLAGGED") == b"* SEARCH 1 2"
    assert search("NOT SEEN") == b"* SEARCH 2 3"
    assert search("SUBJECT LUNCH") == b"* SEARCH 1"
    assert search('SUBJECT "café"') == b"* SEARCH 2"
    assert search("FROM carol") == b"* SEARCH 2"
    assert search("TO bob@example.com") == b"* SEARCH 1 2 3"
    assert search("BODY numbers") == b"* SEARCH 2"
    assert search("TEXT dinner") == b"* SEARCH 3"
    assert search("HEADER Message-ID m1@example") == b"* SEARCH 1 3"
    assert search('HEADER MIME-Version ""') == b"* SEARCH 2"
    assert search(f"LARGER {len(SIMPLE_MESSAGE)}") == b"* SEARCH 2 3"
    assert search(f"SMALLER {len(SIMPLE_MESSAGE) + 1}") == b"* SEARCH 1"
    assert search("SENTBEFORE 8-Feb-2022") == b"* SEARCH 1 3"
    assert search("SENTON 8-Feb-2022") == b"* SEARCH 2"
    assert search("SINCE 1-Jan-2000 BEFORE 1-Jan-2200") == b"* SEARCH 1 2 3"
    assert search("2:*") == b"* SEARCH 2 3"
    assert search("UID 1,3") == b"* SEARCH 1 3"
    assert search("RECENT NEW") == b"* SEARCH 2 3"
    assert search("OLD") == b"* SEARCH"
    assert search("KEYWORD $Nope") == b"* SEARCH"
    assert search("CHARSET UTF-8 SUBJECT report") == b"* SEARCH 2"
    lines = raw.command("SEARCH CHARSET KOI8-R ALL")
    assert b"[BADCHARSET (UTF-8 US-ASCII)]" in lines[-1]
    lines = raw.command("UID SEARCH RETURN (MIN MAX COUNT ALL) NOT SEEN", tag="e1")
    assert lines[0] == b'* ESEARCH (TAG "e1") UID MIN 2 MAX 3 ALL 2:3 COUNT 2\r\n'
    lines = raw.command("SEARCH RETURN () SEEN", tag="e2")
    assert lines[0] == b'* ESEARCH (TAG "e2") ALL 1\r\n'
    lines = raw.command("SEARCH RETURN (COUNT) DELETED", tag="e3")
    assert lines[0] == b'* ESEARCH (TAG "e3") COUNT 0\r\n'
    # SEARCHRES: SAVE alone answers nothing; $ then names the result.
    lines = raw.command("SEARCH RETURN (SAVE) UNSEEN")
    assert len(lines) == 1
    assert b"* 2 FETCH (UID 2)" in b"".join(raw.command("FETCH $ UID"))
    assert search("$") == b"* SEARCH 2 3"
    lines = raw.command("UID SEARCH RETURN (SAVE MIN) ALL")
    assert len(lines) == 2  # MIN answered, $ holds only the minimum
    assert search("$") == b"* SEARCH 1"


def test_copy_move_uidplus(raw: Raw, client: imaplib.IMAP4) -> None:
    for _ in range(3):
        append(client)
    raw.command("SELECT INBOX")
    lines = raw.command("COPY 1:2 Archive")
    assert re.match(rb"t\d+ OK \[COPYUID \d+ 1:2 1:2\]", lines[-1])
    assert b"[TRYCREATE]" in raw.command("COPY 1 Nope")[-1]
    lines = raw.command("UID MOVE 2:3 Trash")
    assert re.match(rb"\* OK \[COPYUID \d+ 2:3 1:2\]", lines[0])
    assert lines[1:3] == [b"* 2 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    lines = raw.command("MOVE 1 Archive")
    assert lines[1] == b"* 1 EXPUNGE\r\n"
    assert b"(MESSAGES 3)" in raw.command("STATUS Archive (MESSAGES)")[0]
    assert status_of(raw.command("UID COPY 99 Archive")) == b"OK"


def test_expunge_close_unselect(raw: Raw, client: imaplib.IMAP4) -> None:
    for _ in range(4):
        append(client)
    raw.command("SELECT INBOX")
    raw.command("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    lines = raw.command("EXPUNGE")
    assert lines[:2] == [b"* 1 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    raw.command("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    lines = raw.command("UID EXPUNGE 4")
    assert lines[:2] == [b"* 2 EXPUNGE\r\n", b"* 1 RECENT\r\n"] and len(lines) == 3
    lines = raw.command("CLOSE")
    assert len(lines) == 1 and status_of(lines) == b"OK"  # silent expunge of UID 2
    assert b"(MESSAGES 0)" in raw.command("STATUS INBOX (MESSAGES)")[0]
    raw.command("SELECT INBOX")
    assert status_of(raw.command("UNSELECT")) == b"OK"
    assert status_of(raw.command("UNSELECT")) == b"NO"


def test_namespace_id_enable_check(raw: Raw) -> None:
    assert raw.command("NAMESPACE")[0] == b'* NAMESPACE (("" "/")) (("Other Users/" "/")) NIL\r\n'
    lines = raw.command('ID ("name" "test")', tag="i1")
    assert lines == [b"* ID NIL\r\n", b"i1 OK ID completed\r\n"]
    assert status_of(raw.command("ID NIL")) == b"OK"
    assert raw.command("ENABLE X-UNKNOWN")[0] == b"* ENABLED\r\n"  # not advertised: ignored
    raw.command("SELECT INBOX")
    assert status_of(raw.command("CHECK")) == b"OK"


def test_id_reveals_nothing_and_tolerates_sloppy_clients(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 2971 §3.1 allows NIL: no software name or version to fingerprint, before or
    after login; commas and bare atoms from real clients are accepted (only logged)."""
    monkeypatch.setitem(imaplib.Commands, "ID", ("NONAUTH", "AUTH", "SELECTED"))
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    for args in ('("name" "imaplib")', '("vendor", "x", "version", "3.7.0")',
                 '("name" "Thunderbird" "version" 102.7.1)', "NIL"):
        typ, data = c.xatom("ID", args)
        assert typ == "OK", data
        assert c.untagged_responses.pop("ID") == [b"NIL"]
    c.logout()


def test_imaps_listener(server: ServerThread, account: str) -> None:
    c = imaplib.IMAP4_SSL(
        "127.0.0.1", server.port("imaps"), ssl_context=_client_context(server)
    )
    assert "STARTTLS" not in c.capabilities and "AUTH=PLAIN" in c.capabilities
    assert c.login(account, "correct horse")[0] == "OK"
    c.logout()


def _client_context(server: ServerThread):  # type: ignore[no-untyped-def]
    ctx = server.client_ssl_context()
    ctx.check_hostname = False
    return ctx


@pytest.mark.usefixtures("own_throttle")
def test_three_failed_logins_end_the_connection(server: ServerThread, account: str) -> None:
    """The third failure is answered by BYE alone (RFC 9051 §7.1.5), as James does."""
    r = Raw(server.port("imap"))
    for _ in range(2):
        assert b"[AUTHENTICATIONFAILED]" in r.command(f'LOGIN {account} "nope"')[-1]
    r.send(f't3 LOGIN {account} "nope"\r\n')
    assert r.readline().startswith(b"* BYE")
    with pytest.raises(ConnectionError):
        r.readline()
    r.close()


@pytest.mark.usefixtures("own_throttle")
def test_third_failed_login_is_bye_with_imaplib(server: ServerThread, account: str) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            c.login(account, "nope")
    with pytest.raises(imaplib.IMAP4.abort, match="too many"):
        c.login(account, "nope")
    c.shutdown()


def test_lenient_spacing_and_new_keyword_on_append(raw: Raw, client: imaplib.IMAP4) -> None:
    append(client)
    raw.command("SELECT INBOX")
    assert status_of(raw.command("STATUS INBOX (  MESSAGES  UNSEEN )")) == b"OK"
    assert raw.command("SEARCH ( SUBJECT lunch  ALL )")[0] == b"* SEARCH 1\r\n"
    assert raw.command("FETCH 1 ()")[0] == b"* 1 FETCH ()\r\n"
    lines = raw.command(
        b"APPEND INBOX ($Important) {%d+}\r\n%s" % (len(SIMPLE_MESSAGE), SIMPLE_MESSAGE)
    )
    # EXISTS first, then the FLAGS that the new message's keyword needs (RFC 9051 §7.3.5).
    assert lines[0] == b"* 2 EXISTS\r\n"
    assert b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Important)\r\n" in lines[1:]


def test_new_keyword_from_another_session_is_announced(
    raw: Raw, client: imaplib.IMAP4
) -> None:
    """An EXISTS event carries the new messages' flags: a keyword this session never saw
    arrives as untagged FLAGS (and PERMANENTFLAGS) after the EXISTS, once."""
    append(client)
    raw.command("SELECT INBOX")
    append(client, flags="($Label1 \\Seen)")
    lines = raw.command("NOOP")
    assert lines[0] == b"* 2 EXISTS\r\n"
    flags = [line for line in lines if line.startswith(b"* FLAGS ")]
    assert flags == [b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Label1)\r\n"]
    assert any(line.startswith(b"* OK [PERMANENTFLAGS (") and b"$Label1 \\*)]" in line
               for line in lines)
    append(client, flags="($Label1)")  # already announced: no FLAGS again
    lines = raw.command("NOOP")
    assert lines[0] == b"* 3 EXISTS\r\n"
    assert not any(line.startswith(b"* FLAGS ") for line in lines)


def test_a_hostile_list_pattern_is_answered_and_freezes_no_one(
        server: ServerThread, raw: Raw, account: str) -> None:
    """``%*%*…z`` once took time exponential in its length on the event loop: 53 bytes
    stalled every protocol for 52 s, 101 bytes until SIGKILL. Now both sessions answer at
    once; under the old code this test runs into the suite's timeout."""
    raw.command("CREATE Archive/" + "x" * 100)
    other = Raw(server.port("imap"), login=account)
    try:
        raw.send("h LIST \"\" \"" + "%*" * 50 + "z\"\r\n")
        assert status_of(other.command("NOOP")) == b"OK"
        lines = raw.read_until_tag("h")
        assert lines[-1].startswith(b"h OK") and len(lines) == 1
    finally:
        other.close()


def test_a_login_with_a_password_that_is_not_utf8_is_a_counted_failure(
        server: ServerThread, account: str, own_throttle: Throttle) -> None:
    """It was ``NO [SERVERBUG]`` and went uncounted by the throttle: a free guess."""
    r = Raw(server.port("imap"))
    try:
        lines = r.command(f'LOGIN {account} "pass\xe9word"'.encode("latin-1"))
        assert b"[AUTHENTICATIONFAILED]" in lines[-1]
        assert own_throttle.entry_count == 2  # the account and the address
        lines = r.command(b'LOGIN "\xff\xfe@example.com" secret')
        assert b"[AUTHENTICATIONFAILED]" in lines[-1]
        assert own_throttle.entry_count == 3
    finally:
        r.close()


def test_8bit_keywords_and_modifiers_are_bad_not_a_server_bug(raw: Raw) -> None:
    """An 8-bit keyword in STORE or APPEND was ``NO [SERVERBUG]`` with a traceback in the
    log; an 8-bit STORE modifier dropped the connection. RFC 9051 §9: atoms are 7-bit."""
    raw.command("SELECT INBOX")
    store = raw.command(b"STORE 1:* +FLAGS (caf\xc3\xa9)")
    assert status_of(store) == b"BAD" and b"7-bit" in store[-1]
    modifier = raw.command(b"STORE 1:* (UNCHANGED\xffSINCE 5) +FLAGS (x)")
    assert status_of(modifier) == b"BAD"
    raw.send(b"ap APPEND INBOX (\\Seen k\xe9y) {4}\r\n")
    reply = raw.readline()
    if reply.startswith(b"+"):
        raw.send(b"ab\r\n\r\n")
        reply = raw.read_until_tag("ap")[-1]
    assert reply.startswith(b"ap BAD")
    assert status_of(raw.command("NOOP")) == b"OK"  # the session goes on
