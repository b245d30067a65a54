"""SMTP sessions as transcripts: a real session on an in-memory connection, a script for
the client. No sockets, no threads, no sleeps: each read waits for the session's output.

Each test reads top to bottom as the conversation it checks: ``transact(code, line)``
sends a command and returns the text of the reply it must get. TLS cannot be negotiated in
memory; STARTTLS itself, implicit TLS and crashes are tested on real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mailstead.auth.authenticator import Authenticator
from mailstead.auth.passwords import hash_password
from mailstead.auth.throttle import Throttle
from mailstead.core.types import TLSMode
from mailstead.delivery.deliver import Deliverer
from mailstead.delivery.router import Router
from mailstead.net.stream import Stream
from mailstead.net.tls import TLSContexts, ensure_self_signed
from mailstead.smtp.session import Session, SessionConfig
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import TEST_PASSWORD_POLICY
from mailstead.testing.transport import ScriptedPeer, SMTPTranscript, memory_connection, serve
from tests.smtp.conftest import strip_trace

PASSWORD = "correct horse battery staple"
HOST = "mx.example.org"
MX = SessionConfig(
    hostname=HOST,
    submission=False,
    tls_mode=TLSMode.STARTTLS,
    plaintext_auth=False,
    max_message_size=10_000,
    max_recipients=100,
    max_line_length=512,
    idle_timeout=300.0,
    max_errors=10,
    max_commands=1000,
    reject_bare_lf=True,
)
SUBMISSION = replace(MX, submission=True)

#: The reply to the end of a message: its id, as Postfix gives it.
QUEUED = re.compile(r"250 2\.0\.0 OK: queued as [0-9a-f]{16}")


@dataclass
class Mailstore:
    """What a session needs behind it: a store with two accounts, delivery and login."""

    store: SQLiteStore
    deliverer: Deliverer
    authenticator: Authenticator
    tls: TLSContexts

    async def inbox(self, address: str) -> list[bytes]:
        """The messages in the account's INBOX, without the trace headers."""
        user = await self.store.find_user(address)
        assert user is not None
        box = await self.store.get_mailbox(user.id, "INBOX")
        return [strip_trace(await self.store.read_blob(m.blob_id))
                for m in await self.store.list_messages(box.id)]


@pytest.fixture
async def mailstore(tmp_path: Path) -> AsyncIterator[Mailstore]:
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    try:
        await store.add_domain("example.org")
        for address in ("alice@example.org", "bob@example.org"):
            await store.add_user(address, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        ensure_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", HOST)
        yield Mailstore(
            store,
            Deliverer(store, Router(store)),
            Authenticator(store, Throttle(), TEST_PASSWORD_POLICY),
            TLSContexts(tmp_path / "cert.pem", tmp_path / "key.pem"),
        )
    finally:
        await store.close()


class Client(SMTPTranscript):
    """The script's side of one session."""

    def send(self, data: bytes | str) -> None:
        """Bytes exactly as given: pipelined commands, chunks, message data."""
        self.peer.send(data)

    async def replies(self, count: int) -> list[str]:
        """The next ``count`` replies, as ``"code text"`` (first line of each)."""
        out = []
        for _ in range(count):
            line = (await self.peer.readline()).decode().rstrip("\r\n")
            while line[3:4] == "-":
                line = (await self.peer.readline()).decode().rstrip("\r\n")
            out.append(line)
        return out


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connect(mailstore: Mailstore) -> AsyncIterator[Connect]:
    """``await connect(config)``: a greeted session on an in-memory connection."""
    running: list[tuple[ScriptedPeer, asyncio.Task[None]]] = []

    async def start(config: SessionConfig = MX, **changes: Any) -> Client:
        config = replace(config, **changes)
        stream, peer = memory_connection(local=("192.0.2.1", 25))

        async def handle(stream: Stream) -> None:
            session = Session(stream, config, mailstore.deliverer, mailstore.authenticator,
                              mailstore.tls)
            await session.run()

        running.append((peer, asyncio.create_task(serve(handle, stream))))
        client = Client(peer)
        assert await client.greeting() == [f"{HOST} ESMTP mailstead"]
        return client

    yield start
    for peer, task in running:
        peer.hang_up()
        await asyncio.wait_for(task, 5)


def plain(user: str, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# -- sequencing ------------------------------------------------------------------------------


async def test_commands_out_of_sequence_get_503_with_what_is_missing(connect: Connect) -> None:
    smtp = await connect()
    assert await smtp.transact(503, "MAIL FROM:<a@remote.example>") == [
        "5.5.1 Send EHLO first, or RSET to end the current transaction"]
    await smtp.transact(503, "RCPT TO:<alice@example.org>")
    await smtp.transact(250, "EHLO client.example")
    assert await smtp.transact(503, "RCPT TO:<alice@example.org>") == [
        "5.5.1 Need MAIL before RCPT"]
    assert await smtp.transact(503, "DATA") == ["5.5.1 Need MAIL and RCPT before DATA"]
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    assert await smtp.transact(503, "MAIL FROM:<b@remote.example>") == [
        "5.5.1 Send EHLO first, or RSET to end the current transaction"]
    assert await smtp.transact(503, "STARTTLS") == [
        "5.5.1 STARTTLS must follow EHLO, outside a mail transaction"]
    assert await smtp.transact(503, "AUTH PLAIN") == [
        "5.5.1 AUTH must follow EHLO, outside a mail transaction"]
    # The state is checked before the argument is read: a 503, not a 501.
    assert await smtp.transact(503, "MAIL FROM:no brackets") == [
        "5.5.1 Send EHLO first, or RSET to end the current transaction"]


async def test_data_after_every_recipient_failed_is_554(connect: Connect) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    await smtp.transact(550, "RCPT TO:<nobody@example.org>")
    assert await smtp.transact(501, "DATA now") == ["5.5.4 DATA takes no arguments"]
    # RFC 2920 §3.1: the client pipelined DATA behind the RCPTs; it is refused, and the
    # transaction is over.
    assert await smtp.transact(554, "DATA") == ["5.5.1 No valid recipients"]
    await smtp.transact(503, "RCPT TO:<alice@example.org>")


async def test_rset(connect: Connect, mailstore: Mailstore) -> None:
    smtp = await connect()
    assert await smtp.transact(250, "RSET") == ["2.0.0 OK"]
    await smtp.transact(503, "MAIL FROM:<a@remote.example>")  # RSET is not a greeting
    await smtp.transact(250, "EHLO client.example")
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    await smtp.transact(250, "RCPT TO:<alice@example.org>")
    assert await smtp.transact(501, "RSET now") == ["5.5.4 RSET takes no arguments"]
    await smtp.transact(250, "RCPT TO:<bob@example.org>")  # the 501 ended nothing
    await smtp.transact(250, "RSET")
    await smtp.transact(503, "RCPT TO:<alice@example.org>")  # the transaction is gone
    await smtp.transact(503, "DATA")
    await smtp.transact(250, "MAIL FROM:<b@remote.example>")  # EHLO is still in force
    await smtp.transact(250, "RCPT TO:<bob@example.org>")
    await smtp.transact(354, "DATA")
    smtp.send("after RSET\r\n.\r\n")
    await smtp.reply(250)
    assert await mailstore.inbox("alice@example.org") == []
    assert await mailstore.inbox("bob@example.org") == [b"after RSET\r\n"]


async def test_helo_and_ehlo(connect: Connect) -> None:
    smtp = await connect()
    assert await smtp.transact(501, "EHLO") == ["5.5.4 Syntax: EHLO hostname"]
    assert await smtp.transact(250, "HELO old.example") == [HOST]  # no extensions
    assert await smtp.transact(250, "EHLO new.example") == [
        f"{HOST} Hello new.example", "PIPELINING", "SIZE 10000", "8BITMIME", "SMTPUTF8",
        "ENHANCEDSTATUSCODES", "CHUNKING", "DSN", "STARTTLS", "HELP",
    ]
    # EHLO again mid-transaction starts over (RFC 5321 §4.1.4).
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    await smtp.transact(250, "EHLO again.example")
    await smtp.transact(503, "RCPT TO:<alice@example.org>")


# -- pipelining and chunking -----------------------------------------------------------------


async def test_pipelined_commands_are_answered_in_order(
    connect: Connect, mailstore: Mailstore
) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    smtp.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
              "RCPT TO:<nobody@example.org>\r\nRCPT TO:<x@remote.example>\r\n"
              "RCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert await smtp.replies(6) == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "550 5.1.1 No such user here",
        "554 5.7.1 Relay access denied", "250 2.1.5 Recipient OK",
        "354 Start mail input; end with <CRLF>.<CRLF>",
    ]
    # The next transaction rides right behind the end of the data.
    smtp.send("first\r\n.\r\nMAIL FROM:<b@remote.example>\r\nRCPT TO:<bob@example.org>\r\n"
              "DATA\r\n")
    first = await smtp.replies(4)
    assert QUEUED.fullmatch(first[0]), first
    assert first[1:] == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK",
        "354 Start mail input; end with <CRLF>.<CRLF>",
    ]
    smtp.send("second\r\n.\r\nQUIT\r\n")
    second = await smtp.replies(2)
    assert QUEUED.fullmatch(second[0]) and second[0] != first[0]  # one id per message
    assert second[1] == f"221 2.0.0 {HOST} closing connection"
    await smtp.peer.wait_closed()
    assert await mailstore.inbox("alice@example.org") == [b"first\r\n"]
    assert await mailstore.inbox("bob@example.org") == [b"first\r\n", b"second\r\n"]


async def test_bdat_chunks(connect: Connect, mailstore: Mailstore) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    await smtp.transact(250, "RCPT TO:<alice@example.org>")
    smtp.send("BDAT 6\r\nHello,")
    assert await smtp.reply(250) == ["2.0.0 6 octets received"]
    # Inside the chunk sequence, DATA (and all but BDAT, RSET, NOOP, QUIT) is out of order.
    assert await smtp.transact(503, "DATA") == ["5.5.1 Need MAIL and RCPT before DATA"]
    await smtp.transact(503, "EHLO client.example")
    await smtp.transact(250, "NOOP")
    # The commit's reply keeps its place ahead of the NOOP pipelined behind it, though
    # the NOOP is answered first (RFC 2920 §3.1).
    smtp.send("BDAT 9 LAST\r\n world.\r\nNOOP\r\n")
    committed, noop = await smtp.replies(2)
    assert QUEUED.fullmatch(committed) and noop == "250 2.0.0 OK"
    assert await mailstore.inbox("alice@example.org") == [b"Hello, world.\r\n"]
    await smtp.transact(503, "BDAT 0 LAST")  # the transaction ended with LAST


async def test_bdat_out_of_sequence_still_consumes_its_chunk(connect: Connect) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    # The chunk reads like commands; it must be swallowed, not run.
    smtp.send("BDAT 12 LAST\r\nRSET\r\nQUIT\r\nNOOP\r\n")
    assert await smtp.replies(2) == ["503 5.5.1 Need MAIL and RCPT before BDAT", "250 2.0.0 OK"]
    # After MAIL whose every RCPT failed, BDAT gets 554 (and its chunk is still eaten).
    smtp.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<nobody@example.org>\r\n"
              "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
    assert await smtp.replies(4) == ["250 2.1.0 Sender OK", "550 5.1.1 No such user here",
                                     "554 5.5.1 No valid recipients", "250 2.0.0 OK"]
    await smtp.transact(503, "RCPT TO:<alice@example.org>")  # that transaction is over


async def test_bdat_without_a_size_ends_the_session(connect: Connect) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    # Where the next command starts cannot be known: there is no going on.
    assert await smtp.transact(501, "BDAT lots") == ["5.5.4 Syntax: BDAT size [LAST]"]
    await smtp.peer.wait_closed()


async def test_bdat_over_the_size_limit(connect: Connect, mailstore: Mailstore) -> None:
    smtp = await connect(max_message_size=10)
    await smtp.transact(250, "EHLO client.example")
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    await smtp.transact(250, "RCPT TO:<alice@example.org>")
    smtp.send("BDAT 6\r\n123456")
    await smtp.reply(250)
    smtp.send("BDAT 6 LAST\r\n789012NOOP\r\n")
    assert await smtp.replies(2) == [
        "552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 OK"]
    smtp.send("BDAT 1 LAST\r\nx")  # the transaction is gone
    assert await smtp.reply(503) == ["5.5.1 Need MAIL and RCPT before BDAT"]
    assert await mailstore.inbox("alice@example.org") == []


# -- limits in the read loop -----------------------------------------------------------------


async def test_error_budget_ends_with_421(connect: Connect) -> None:
    smtp = await connect(max_errors=3)
    assert await smtp.transact(500, "BOGUS") == ["5.5.1 Command unrecognized"]
    await smtp.transact(501, "EHLO")
    await smtp.transact(250, "NOOP")  # successes do not pay back errors
    smtp.send("MAIL FROM:<a@remote.example>\r\nNOOP\r\n")
    assert await smtp.replies(2) == ["503 5.5.1 Send EHLO first, or RSET to end the current "
                                     "transaction", "421 4.7.0 Too many errors, closing connection"]
    await smtp.peer.wait_closed()
    assert smtp.peer.pending() == b""  # the pipelined NOOP was never answered


async def test_command_budget_ends_with_421(connect: Connect) -> None:
    smtp = await connect(max_commands=2)
    smtp.send("NOOP\r\nNOOP\r\nNOOP\r\n")
    assert await smtp.replies(3) == ["250 2.0.0 OK", "250 2.0.0 OK",
                                     "421 4.7.0 Too many commands, closing connection"]
    await smtp.peer.wait_closed()


async def test_line_too_long(connect: Connect) -> None:
    smtp = await connect(max_line_length=100)
    assert await smtp.transact(500, "NOOP " + "x" * 200) == ["5.5.2 Line too long"]
    await smtp.transact(250, "NOOP " + "x" * 80)  # the rest of the long line was dropped


async def test_idle_timeout_says_421(connect: Connect) -> None:
    smtp = await connect(idle_timeout=0.05)
    # The read waits for the session (up to its own deadline); nothing is sent meanwhile.
    assert await smtp.reply(421) == ["4.4.2 Timeout exceeded, closing connection"]
    await smtp.peer.wait_closed()


# -- what the server tells ------------------------------------------------------------------


async def test_vrfy_expn_help(connect: Connect) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    answer = ["2.5.0 Cannot VRFY user, but will accept message and attempt delivery"]
    assert await smtp.transact(252, "VRFY alice@example.org") == answer
    assert await smtp.transact(252, "VRFY nobody@example.org") == answer  # no difference
    assert await smtp.transact(501, "VRFY") == ["5.5.4 Syntax: VRFY address"]
    assert await smtp.transact(502, "EXPN staff") == ["5.5.1 EXPN is not available"]
    assert await smtp.transact(214, "HELP MAIL") == [
        "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
        "2.0.0 See RFC 5321",
    ]


async def test_quit_closes(connect: Connect) -> None:
    smtp = await connect()
    await smtp.transact(250, "EHLO client.example")
    await smtp.transact(250, "MAIL FROM:<a@remote.example>")
    assert await smtp.transact(221, "QUIT") == [f"2.0.0 {HOST} closing connection"]
    await smtp.peer.wait_closed()


# -- submission ------------------------------------------------------------------------------


async def test_submission_refuses_auth_without_tls(connect: Connect) -> None:
    smtp = await connect(SUBMISSION)
    ehlo = await smtp.transact(250, "EHLO laptop.example")
    assert "STARTTLS" in ehlo
    assert not any(line.startswith("AUTH") for line in ehlo)
    # RFC 4954 §4: no AUTH in the clear, whatever the mechanism or its syntax.
    for line in (f"AUTH PLAIN {plain('alice@example.org')}", "AUTH BOGUS", "AUTH"):
        assert await smtp.transact(538, line) == [
            "5.7.11 Encryption required for requested authentication mechanism"]


async def test_submission_refuses_mail_before_auth(connect: Connect) -> None:
    smtp = await connect(SUBMISSION)
    await smtp.transact(250, "EHLO laptop.example")
    # TLS is offered and not started: that is what to do first. Asked before the argument
    # is read: even a malformed MAIL learns nothing else.
    for line in ("MAIL FROM:<alice@example.org>", "MAIL FROM:garbage"):
        assert await smtp.transact(530, line) == ["5.7.0 Must issue a STARTTLS command first"]
    await smtp.transact(503, "RCPT TO:<bob@example.org>")


async def test_submission_with_plaintext_auth_allowed(
    connect: Connect, mailstore: Mailstore
) -> None:
    smtp = await connect(SUBMISSION, plaintext_auth=True, tls_mode=TLSMode.NONE)
    ehlo = await smtp.transact(250, "EHLO laptop.example")
    assert "AUTH PLAIN LOGIN" in ehlo and "STARTTLS" not in ehlo
    assert await smtp.transact(530, "MAIL FROM:<alice@example.org>") == [
        "5.7.0 Authentication required"]
    assert await smtp.transact(535, f"AUTH PLAIN {plain('alice@example.org', 'wrong')}") == [
        "5.7.8 Authentication credentials invalid"]
    assert await smtp.transact(235, f"AUTH PLAIN {plain('alice@example.org')}") == [
        "2.7.0 Authentication successful"]
    assert await smtp.transact(503, "AUTH PLAIN") == ["5.5.1 Already authenticated"]
    # The login is Alice's: her address only (the login outlives a second EHLO).
    await smtp.transact(250, "EHLO laptop.example")
    assert await smtp.transact(553, "MAIL FROM:<bob@example.org>") == [
        "5.7.1 Sender address not owned by the authenticated user"]
    await smtp.transact(250, "MAIL FROM:<alice@example.org>")
    await smtp.transact(250, "RCPT TO:<bob@example.org>")
    await smtp.transact(354, "DATA")
    smtp.send("no header at all\r\n.\r\n")
    assert await smtp.reply(550) == ["5.7.1 Message must have exactly one From: header field"]
    await smtp.transact(250, "MAIL FROM:<alice@example.org>")
    await smtp.transact(250, "RCPT TO:<bob@example.org>")
    await smtp.transact(354, "DATA")
    smtp.send("From: alice@example.org\r\n\r\nfrom Alice\r\n.\r\n")
    await smtp.reply(250)
    [stored] = await mailstore.inbox("bob@example.org")
    assert stored == b"From: alice@example.org\r\n\r\nfrom Alice\r\n"
