"""Third-party IMAP client libraries from PyPI against mailstead over IMAPS.

imapclient (synchronous, on imaplib, with its own response parser for ENVELOPE and
BODYSTRUCTURE) and aioimaplib (asyncio): log in over TLS trusting the test server's
self-signed certificate, select, search, fetch ENVELOPE/BODYSTRUCTURE, IDLE until a new
message is pushed as EXISTS, APPEND, and MOVE.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest

from mailstead.store.models import Recipient
from mailstead.store.models import User as StoreUser
from mailstead.testing.server import ServerThread

aioimaplib = pytest.importorskip("aioimaplib")
imapclient = pytest.importorskip("imapclient")

pytestmark = pytest.mark.interop

PASSWORD = "libraries welcome"

PLAIN = (
    b"From: Alice Example <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>, carol@example.net\r\n"
    b"Subject: quarterly numbers\r\n"
    b"Date: Mon, 7 Feb 2022 21:52:25 -0800\r\n"
    b"Message-ID: <q1@example.org>\r\n"
    b"\r\n"
    b"The numbers are fine.\r\n"
)

MULTIPART = (
    b"From: Carol <carol@example.net>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9_photos?=\r\n"
    b"Date: Tue, 8 Feb 2022 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Photos attached, caf=C3=A9.\r\n"
    b"--XX\r\n"
    b"Content-Type: image/png; name=a.png\r\n"
    b"Content-Disposition: attachment; filename=a.png\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"iVBORw0KGgo=\r\n"
    b"--XX--\r\n"
)

PUSHED = (
    b"From: Dave <dave@example.net>\r\nTo: bob@example.com\r\nSubject: pushed while idle\r\n"
    b"Message-ID: <idle@example.net>\r\n\r\nwake up\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(tmp_path_factory.mktemp("imap-clients")) as srv:
        yield srv


_accounts = iter(range(1, 1000))


@pytest.fixture
def account(server: ServerThread) -> tuple[str, StoreUser]:
    """A fresh account holding PLAIN (uid 1) and MULTIPART (uid 2) in INBOX."""
    address = f"lib{next(_accounts)}@example.com"
    user = server.add_user(address, PASSWORD)
    for raw in (PLAIN, MULTIPART):
        server.call(server.store.deliver(raw, [Recipient(user.id)]))
    return address, user


def deliver_later(server: ServerThread, user: StoreUser, delay: float = 0.3) -> threading.Timer:
    """Deliver PUSHED from another thread once the client is idling."""
    timer = threading.Timer(
        delay, lambda: server.call(server.store.deliver(PUSHED, [Recipient(user.id)]))
    )
    timer.start()
    return timer


def mailbox_subjects(server: ServerThread, user: StoreUser, name: str) -> int:
    async def count() -> int:
        box = await server.store.get_mailbox(user.id, name)
        return len(await server.store.list_messages(box.id))

    return server.call(count())


# -- imapclient -----------------------------------------------------------------------------


@pytest.fixture
def imapclient_session(
    server: ServerThread, account: tuple[str, StoreUser]
) -> Iterator[imapclient.IMAPClient]:
    client = imapclient.IMAPClient(
        "127.0.0.1", port=server.port("imaps"), ssl=True,
        ssl_context=server.client_ssl_context(), timeout=30,
    )
    client.login(account[0], PASSWORD)
    yield client
    client.logout()


def test_imapclient_select_search_fetch(imapclient_session: imapclient.IMAPClient) -> None:
    c = imapclient_session
    assert b"IMAP4REV2" in c.capabilities() or b"IMAP4rev2" in c.capabilities()
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 2
    assert info[b"UIDVALIDITY"] > 0
    assert c.search(["SUBJECT", "quarterly"]) == [1]
    assert c.search(["FROM", "carol"]) == [2]
    assert sorted(c.search("ALL")) == [1, 2]

    data = c.fetch([1, 2], ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "FLAGS"])
    env = data[1][b"ENVELOPE"]
    assert env.subject == b"quarterly numbers"
    # imapclient gives the Date header's instant as a naive local time.
    sent = datetime.fromisoformat("2022-02-07T21:52:25-08:00")
    assert env.date == sent.astimezone().replace(tzinfo=None)
    assert [(a.mailbox, a.host) for a in env.to] == [(b"bob", b"example.com"),
                                                     (b"carol", b"example.net")]
    assert env.from_[0].name == b"Alice Example"
    assert env.message_id == b"<q1@example.org>"
    assert data[1][b"RFC822.SIZE"] == len(PLAIN)
    body = data[2][b"BODYSTRUCTURE"]
    assert body.is_multipart
    parts, subtype = body[0], body[1]
    # MIME type names are case-insensitive (RFC 2045 §5.1); mailstead keeps Dovecot's case.
    assert subtype.upper() == b"MIXED"
    assert [p[0].upper() for p in parts] == [b"TEXT", b"IMAGE"]
    assert parts[1][1].upper() == b"PNG"
    assert data[2][b"ENVELOPE"].subject == b"=?utf-8?q?caf=C3=A9_photos?="


def test_imapclient_idle_receives_exists(
    server: ServerThread, account: tuple[str, StoreUser],
    imapclient_session: imapclient.IMAPClient,
) -> None:
    c = imapclient_session
    c.select_folder("INBOX")
    c.idle()
    timer = deliver_later(server, account[1])
    try:
        pushed: list[object] = []
        for _ in range(20):  # up to ~10 s, returning as soon as EXISTS arrives
            pushed += c.idle_check(timeout=0.5)
            if (3, b"EXISTS") in pushed:
                break
    finally:
        timer.join()
        c.idle_done()
    assert (3, b"EXISTS") in pushed
    assert c.search(["SUBJECT", "pushed while idle"]) == [3]


def test_imapclient_append_and_move(
    server: ServerThread, account: tuple[str, StoreUser],
    imapclient_session: imapclient.IMAPClient,
) -> None:
    c = imapclient_session
    c.create_folder("Projects")
    reply = c.append("INBOX", PUSHED, flags=[imapclient.SEEN])
    assert re.search(rb"\[APPENDUID \d+ 3\]", reply)
    c.select_folder("INBOX")
    # imapclient stays IMAP4rev1, so \\Recent is shown too (RFC 3501 §2.3.2).
    assert set(c.get_flags([3])[3]) == {imapclient.SEEN, imapclient.RECENT}
    c.move([1, 3], "Projects")
    assert c.search("ALL") == [2]
    assert mailbox_subjects(server, account[1], "Projects") == 2
    archive = c.select_folder("Projects", readonly=True)
    assert archive[b"EXISTS"] == 2
    envelopes = c.fetch(c.search("ALL"), ["ENVELOPE"])
    assert sorted(e[b"ENVELOPE"].subject for e in envelopes.values()) == [
        b"pushed while idle", b"quarterly numbers"
    ]


# -- aioimaplib -----------------------------------------------------------------------------


async def _aioimaplib_connect(server: ServerThread, address: str) -> aioimaplib.IMAP4_SSL:
    client = aioimaplib.IMAP4_SSL(
        "127.0.0.1", server.port("imaps"), ssl_context=server.client_ssl_context(), timeout=30
    )
    await client.wait_hello_from_server()
    result = await client.login(address, PASSWORD)
    assert result.result == "OK", result
    return client


def test_aioimaplib_select_search_fetch_append_move(
    server: ServerThread, account: tuple[str, StoreUser]
) -> None:
    async def scenario() -> None:
        client = await _aioimaplib_connect(server, account[0])
        try:
            selected = await client.select("INBOX")
            assert selected.result == "OK"
            assert b"2 EXISTS" in selected.lines
            found = await client.uid_search("SUBJECT", '"quarterly"')
            assert found.result == "OK" and found.lines[0] == b"1"
            fetched = await client.uid("fetch", "1:2", "(ENVELOPE BODYSTRUCTURE)")
            assert fetched.result == "OK"
            wire = b"".join(line for line in fetched.lines if isinstance(line, bytes))
            assert b'"quarterly numbers"' in wire
            assert b'("IMAGE" "PNG"' in wire.upper()
            appended = await client.append(PUSHED, mailbox="INBOX", flags="(\\Seen)")
            assert appended.result == "OK", appended
            created = await client.create("Projects")
            assert created.result == "OK", created
            moved = await client.uid("move", "1", "Projects")
            assert moved.result == "OK", moved
            remaining = await client.uid_search("ALL")
            assert remaining.lines[0].split() == [b"2", b"3"]
            status = await client.status("Projects", "(MESSAGES)")
            assert b"MESSAGES 1" in status.lines[0]
        finally:
            await client.logout()

    asyncio.run(scenario())


def test_aioimaplib_idle_receives_exists(
    server: ServerThread, account: tuple[str, StoreUser]
) -> None:
    async def scenario() -> list[bytes]:
        client = await _aioimaplib_connect(server, account[0])
        try:
            await client.select("INBOX")
            idle = await client.idle_start(timeout=30)
            timer = deliver_later(server, account[1])
            pushed: list[bytes] = []
            try:
                while not any(line.endswith(b"EXISTS") for line in pushed):
                    pushed += await asyncio.wait_for(client.wait_server_push(), 10)
            finally:
                client.idle_done()
                await asyncio.wait_for(idle, 10)
                timer.join()
            return pushed
        finally:
            await client.logout()

    pushed = asyncio.run(scenario())
    assert b"3 EXISTS" in pushed
