"""The outbound SMTP client against a scripted remote server, as transcripts.

The client runs on a real :class:`~mailstead.net.stream.Stream` whose other end is a
script (:func:`mailstead.testing.transport.memory_connection`): each test says what the
client must send and answers as the remote would, byte for byte, including the broken
servers no real test server can be made to imitate (garbage, a dropped connection, a reply
that never ends). TLS needs real sockets: see test_outbound_client_servers.py.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from mailstead.delivery.remote import (
    ClientTLS,
    OutMessage,
    OutRecipient,
    RemoteError,
    RemoteSession,
    TLSPolicy,
)
from mailstead.testing.transport import ScriptedPeer, memory_connection

T = TypeVar("T")

EHLO = ("250-mx.b.test Hello", "250-PIPELINING", "250 8BITMIME")
EHLO_FULL = ("250-mx.b.test Hello", "250-PIPELINING", "250-SIZE 1000000", "250-8BITMIME",
             "250-SMTPUTF8", "250-DSN", "250 CHUNKING")
MESSAGE = b"Subject: hi\r\n\r\n.a line with a leading dot\r\nbye\r\n"


class Remote:
    """The remote server's side: the lines the client must send, and our answers."""

    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer

    async def expect(self, *lines: str) -> None:
        for line in lines:
            got = (await self.peer.readline()).decode("utf-8")
            assert got == line + "\r\n", f"client sent {got!r}, expected {line!r}"

    def say(self, *lines: str) -> None:
        self.peer.send("".join(line + "\r\n" for line in lines))

    async def transact(self, command: str, *reply: str) -> None:
        await self.expect(command)
        self.say(*reply)


def run(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """The client's side runs as a task while the test plays the server."""
    return asyncio.create_task(coro)


def greet(ehlo: tuple[str, ...] = EHLO, *, tls: ClientTLS = ClientTLS.NONE,
          auth: tuple[str, str] | None = None, data_timeout: float = 10,
          ) -> tuple[asyncio.Task[RemoteSession], Remote]:
    """Start a session; the test plays the greeting and everything after it."""
    stream, peer = memory_connection(peer=("192.0.2.25", 25), local=("192.0.2.1", 40000))
    task = run(RemoteSession.start(
        stream, "mx.b.test", "192.0.2.25", 25, helo="mx.a.test", tls=TLSPolicy(tls),
        auth=auth, command_timeout=10, data_timeout=data_timeout))
    return task, Remote(peer)


async def session_with(ehlo: tuple[str, ...] = EHLO, **kw: Any) -> tuple[RemoteSession, Remote]:
    """A session greeted by a remote that answers EHLO with ``ehlo``."""
    task, remote = greet(ehlo, **kw)
    remote.say("220 mx.b.test ESMTP")
    await remote.transact("EHLO mx.a.test", *ehlo)
    return await task, remote


def message(*rcpts: str, data: bytes = MESSAGE, **kw: Any) -> OutMessage:
    return OutMessage("alice@a.test", [OutRecipient(r) for r in rcpts], data, **kw)


# -- PIPELINING and CHUNKING -----------------------------------------------------------------


async def test_pipelining_sends_mail_rcpts_and_data_before_any_reply() -> None:
    """RFC 2920 §3.1: the script reads all four commands before it answers one; a client
    that waited for the MAIL reply would never send the RCPTs."""
    session, remote = await session_with(EHLO)
    sending = run(session.send(message("bob@b.test", "nobody@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>",
                        "RCPT TO:<nobody@b.test>", "DATA")
    remote.say("250 2.1.0 ok", "250 2.1.5 ok", "550 5.1.1 no such user", "354 go ahead")
    await remote.expect("Subject: hi", "", "..a line with a leading dot", "bye", ".")
    remote.say("250 2.0.0 queued as 1")
    result = await sending
    assert str(result.replies["bob@b.test"]) == "250 2.0.0 queued as 1"
    assert str(result.replies["nobody@b.test"]) == "550 5.1.1 no such user"
    assert session.usable and session.messages_sent == 1
    closing = run(session.close())
    await remote.transact("QUIT", "221 2.0.0 bye")
    await closing


async def test_chunking_sends_the_message_as_it_is_in_one_bdat_chunk() -> None:
    """RFC 3030 §2: BDAT <size> LAST, then exactly that many octets, no dot-stuffing."""
    session, remote = await session_with(EHLO_FULL)
    sending = run(session.send(message("bob@b.test")))
    await remote.expect(f"MAIL FROM:<alice@a.test> SIZE={len(MESSAGE)}", "RCPT TO:<bob@b.test>")
    remote.say("250 2.1.0 ok", "250 2.1.5 ok")
    await remote.expect(f"BDAT {len(MESSAGE)} LAST")
    assert await remote.peer.read_exactly(len(MESSAGE)) == MESSAGE
    remote.say("250 2.0.0 queued")
    result = await sending
    assert result.replies["bob@b.test"].is_positive and session.messages_sent == 1
    assert remote.peer.pending() == b""  # no final dot, nothing else


async def test_chunking_bodies_get_canonical_line_endings() -> None:
    session, remote = await session_with(EHLO_FULL)
    sending = run(session.send(message("bob@b.test", data=b"a\nb")))
    await remote.expect("MAIL FROM:<alice@a.test> SIZE=3", "RCPT TO:<bob@b.test>")
    remote.say("250 2.1.0 ok", "250 2.1.5 ok")
    await remote.expect("BDAT 6 LAST")
    assert await remote.peer.read_exactly(6) == b"a\r\nb\r\n"
    remote.say("250 2.0.0 queued")
    await sending


async def test_no_bdat_when_every_recipient_is_refused() -> None:
    session, remote = await session_with(EHLO_FULL)
    sending = run(session.send(message("nobody@b.test")))
    await remote.expect(f"MAIL FROM:<alice@a.test> SIZE={len(MESSAGE)}",
                        "RCPT TO:<nobody@b.test>")
    remote.say("250 2.1.0 ok", "550 5.1.1 no such user")
    await remote.transact("RSET", "250 2.0.0 ok")  # the message itself never went out
    result = await sending
    assert result.replies["nobody@b.test"].status == "5.1.1"
    assert session.usable


async def test_without_pipelining_each_command_waits_and_a_refused_sender_stops_it() -> None:
    session, remote = await session_with(("250-mx.b.test", "250 8BITMIME"))
    sending = run(session.send(message("bob@b.test")))
    await remote.transact("MAIL FROM:<alice@a.test>", "550 5.1.8 bad sender domain")
    await remote.transact("RSET", "250 2.0.0 ok")  # no RCPT, no DATA after that
    with pytest.raises(RemoteError) as info:
        await sending
    assert not info.value.temporary and info.value.status == "5.1.8"
    assert session.usable  # the next message may go over the same connection


async def test_without_pipelining_data_waits_for_an_accepted_recipient() -> None:
    session, remote = await session_with(("250-mx.b.test", "250 8BITMIME"))
    sending = run(session.send(message("nobody@b.test", "bob@b.test")))
    await remote.transact("MAIL FROM:<alice@a.test>", "250 2.1.0 ok")
    await remote.transact("RCPT TO:<nobody@b.test>", "550 5.1.1 no")
    await remote.transact("RCPT TO:<bob@b.test>", "250 2.1.5 ok")
    await remote.transact("DATA", "354 go ahead")
    await remote.expect("Subject: hi", "", "..a line with a leading dot", "bye", ".")
    remote.say("250 2.0.0 queued")
    result = await sending
    assert [str(result.replies[r]) for r in ("nobody@b.test", "bob@b.test")] == [
        "550 5.1.1 no", "250 2.0.0 queued"]


# -- what the envelope carries, and what is refused before sending ---------------------------


async def test_dsn_smtputf8_8bitmime_and_size_parameters() -> None:
    """RFC 3461 §4 (RET, ENVID as xtext, NOTIFY, ORCPT), RFC 6531 §3.4, RFC 6152, RFC 1870."""
    session, remote = await session_with(EHLO_FULL)
    data = "Subject: grüße\r\n\r\nhi\r\n".encode()
    out = OutMessage("alice@a.test",
                     [OutRecipient("bøb@b.test", ("SUCCESS", "FAILURE"), "rfc822;bob@b.test")],
                     data, envid="id 1+", ret="hdrs", body="8BITMIME", smtputf8=True)
    sending = run(session.send(out))
    await remote.expect(f"MAIL FROM:<alice@a.test> SIZE={len(data)} BODY=8BITMIME SMTPUTF8 "
                        "RET=HDRS ENVID=id+201+2B",
                        "RCPT TO:<bøb@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@b.test")
    remote.say("250 2.1.0 ok", "250 2.1.5 ok")
    await remote.expect(f"BDAT {len(data)} LAST")
    assert await remote.peer.read_exactly(len(data)) == data
    remote.say("250 2.0.0 queued")
    assert (await sending).dsn_passed_on


async def test_no_dsn_parameters_to_a_server_without_dsn() -> None:
    session, remote = await session_with(EHLO)
    out = OutMessage("alice@a.test", [OutRecipient("bob@b.test", ("SUCCESS",), "rfc822;b")],
                     MESSAGE, envid="x", ret="FULL")
    sending = run(session.send(out))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA")
    remote.say("250 ok", "250 ok", "354 go")
    await remote.expect("Subject: hi", "", "..a line with a leading dot", "bye", ".")
    remote.say("250 ok")
    assert not (await sending).dsn_passed_on


@pytest.mark.parametrize(("out", "status", "says"), [
    (OutMessage("alice@a.test", [OutRecipient("bøb@b.test")], MESSAGE), "5.6.7", "SMTPUTF8"),
    (OutMessage("alice@a.test", [OutRecipient("b@b.test")], MESSAGE, smtputf8=True), "5.6.7",
     "SMTPUTF8"),
    (OutMessage("alice@a.test", [OutRecipient("b@b.test")], "é\r\n".encode(), body="8BITMIME"),
     "5.6.3", "8BITMIME"),
    (OutMessage("alice@a.test", [OutRecipient("b@b.test")], b"x" * 101), "5.3.4", "larger"),
])
async def test_what_the_remote_cannot_take_fails_before_anything_is_sent(
        out: OutMessage, status: str, says: str) -> None:
    session, remote = await session_with(("250-mx.b.test", "250 SIZE 100"))
    with pytest.raises(RemoteError) as info:
        await session.send(out)
    assert (info.value.temporary, info.value.status) == (False, status)
    assert says in info.value.reason
    assert remote.peer.pending() == b"" and session.usable


async def test_eight_bit_text_not_declared_8bitmime_is_sent_as_it_is() -> None:
    """Only a message submitted as 8BITMIME is checked (RFC 6152 §3)."""
    session, remote = await session_with(("250-mx.b.test", "250 PIPELINING"))
    sending = run(session.send(message("b@b.test", data="é\r\n".encode())))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<b@b.test>", "DATA")
    remote.say("250 ok", "250 ok", "354 go")
    await remote.expect("é", ".")
    remote.say("250 ok")
    await sending


# -- greeting, EHLO, STARTTLS policy, AUTH -------------------------------------------------


async def test_helo_when_ehlo_is_refused() -> None:
    """RFC 5321 §3.2: a server without extensions answers EHLO with 5yz; HELO follows."""
    task, remote = greet()
    remote.say("220 old.b.test SMTP")
    await remote.transact("EHLO mx.a.test", "500 5.5.1 command unrecognized")
    await remote.transact("HELO mx.a.test", "250 old.b.test")
    session = await task
    assert not session.extensions.keywords
    sending = run(session.send(message("bob@b.test")))
    await remote.transact("MAIL FROM:<alice@a.test>", "250 ok")  # one at a time
    await remote.transact("RCPT TO:<bob@b.test>", "250 ok")
    await remote.transact("DATA", "354 go")
    await remote.expect("Subject: hi", "", "..a line with a leading dot", "bye", ".")
    remote.say("250 ok")
    await sending


@pytest.mark.parametrize(("greeting", "temporary", "next_host"), [
    ("554 5.7.1 no SMTP service here", False, False),
    ("421 4.3.2 busy, try another", True, True),
])
async def test_a_refusing_greeting_is_answered_with_quit(
        greeting: str, temporary: bool, next_host: bool) -> None:
    """RFC 5321 §3.1: after a 554 greeting the client sends QUIT; a 4yz greeting sends us
    to the next MX host (RFC 5321 §5.1)."""
    task, remote = greet()
    remote.say(greeting)
    await remote.transact("QUIT", "221 bye")
    with pytest.raises(RemoteError) as info:
        await task
    assert (info.value.temporary, info.value.next_host) == (temporary, next_host)
    assert info.value.reply is not None and info.value.reply.code == int(greeting[:3])


async def test_opportunistic_tls_refused_goes_on_in_plaintext_on_the_same_connection() -> None:
    """RFC 3207 §4: after a refused STARTTLS the session is what it was."""
    task, remote = greet(tls=ClientTLS.OPPORTUNISTIC)
    remote.say("220 mx.b.test ESMTP")
    await remote.transact("EHLO mx.a.test", "250-mx.b.test", "250-STARTTLS", "250 PIPELINING")
    await remote.transact("STARTTLS", "454 4.7.0 TLS not available")
    session = await task
    assert session.tls_version is None and "PIPELINING" in session.extensions
    sending = run(session.send(message("bob@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA")
    remote.say("250 ok", "250 ok", "554 5.7.1 no thanks")
    await remote.transact("RSET", "250 ok")
    with pytest.raises(RemoteError) as info:
        await sending
    assert info.value.status == "5.7.1"


async def test_required_tls_refused_is_a_temporary_4_7_10() -> None:
    task, remote = greet(tls=ClientTLS.REQUIRED)
    remote.say("220 mx.b.test ESMTP")
    await remote.transact("EHLO mx.a.test", "250-mx.b.test", "250 STARTTLS")
    await remote.transact("STARTTLS", "554 5.7.0 not today")
    await remote.transact("QUIT", "221 bye")
    with pytest.raises(RemoteError) as info:
        await task
    assert (info.value.temporary, info.value.status, info.value.next_host) == (
        True, "4.7.10", True)


async def test_no_tls_policy_never_asks_for_starttls() -> None:
    session, remote = await session_with(("250-mx.b.test", "250-STARTTLS", "250 PIPELINING"))
    sending = run(session.send(message("bob@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>")  # not STARTTLS
    remote.say("451 4.3.0 later")
    await remote.expect("RCPT TO:<bob@b.test>", "DATA")
    remote.say("503 5.5.1 no", "503 5.5.1 no")
    await remote.transact("RSET", "250 ok")
    with pytest.raises(RemoteError) as info:
        await sending
    assert info.value.temporary and info.value.status == "4.3.0"


async def test_auth_plain_with_an_initial_response() -> None:
    """RFC 4954 §4 and RFC 4616: AUTH PLAIN <base64(NUL user NUL password)>."""
    task, remote = greet(auth=("relay user", "s3cret"))
    remote.say("220 relay.test ESMTP")
    await remote.transact("EHLO mx.a.test", "250-relay.test", "250 AUTH LOGIN PLAIN")
    token = base64.b64encode(b"\0relay user\0s3cret").decode()
    await remote.transact(f"AUTH PLAIN {token}", "235 2.7.0 ok")
    await task


async def test_auth_login_when_that_is_all_the_server_offers() -> None:
    task, remote = greet(auth=("relay user", "s3cret"))
    remote.say("220 relay.test ESMTP")
    await remote.transact("EHLO mx.a.test", "250-relay.test", "250 AUTH=LOGIN")
    await remote.transact("AUTH LOGIN", "334 VXNlcm5hbWU6")
    await remote.transact(base64.b64encode(b"relay user").decode(), "334 UGFzc3dvcmQ6")
    await remote.transact(base64.b64encode(b"s3cret").decode(), "235 2.7.0 ok")
    await task


@pytest.mark.parametrize("offered", ["250 AUTH PLAIN", "250 AUTH CRAM-MD5", "250 8BITMIME"])
async def test_auth_failure_defers_with_4_7_8(offered: str) -> None:
    """Wrong credentials or no common mechanism are the operator's to fix: the mail waits."""
    task, remote = greet(auth=("u", "p"))
    remote.say("220 relay.test ESMTP")
    await remote.transact("EHLO mx.a.test", "250-relay.test", offered)
    if "PLAIN" in offered:
        await remote.expect("AUTH PLAIN " + base64.b64encode(b"\0u\0p").decode())
        remote.say("535 5.7.8 authentication credentials invalid")
    await remote.transact("QUIT", "221 bye")
    with pytest.raises(RemoteError) as info:
        await task
    assert info.value.temporary and info.value.status == "4.7.8"
    assert "p" not in info.value.reason.split()  # the password is never in the reason


# -- 421 and broken servers ------------------------------------------------------------------


async def test_421_in_the_envelope_ends_the_session() -> None:
    """RFC 5321 §3.8: 421 means the server is closing; no further reply will come."""
    session, remote = await session_with(EHLO)
    sending = run(session.send(message("bob@b.test", "carol@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>",
                        "RCPT TO:<carol@b.test>", "DATA")
    remote.say("250 ok", "421 4.3.2 shutting down")
    with pytest.raises(RemoteError) as info:
        await sending
    assert info.value.temporary and info.value.status == "4.3.2"
    assert not session.usable
    await session.close()
    assert remote.peer.pending() == b""  # no RSET, no QUIT to a closing server


async def test_421_after_the_data_defers_and_ends_the_session() -> None:
    session, remote = await session_with(EHLO)
    sending = run(session.send(message("bob@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA")
    remote.say("250 ok", "250 ok", "354 go")
    await remote.expect("Subject: hi", "", "..a line with a leading dot", "bye", ".")
    remote.say("421 4.4.2 timeout")
    result = await sending
    assert result.replies["bob@b.test"].is_temporary and not session.usable
    assert remote.peer.pending() == b""  # no RSET to a server that is closing


@pytest.mark.parametrize(("answer", "says"), [
    (b"HTTP/1.1 400 Bad Request\r\n", "malformed reply"),
    (b"250 " + b"x" * 5000 + b"\r\n", "longer than"),
    (b"250-more\r\n" * 101, "more than 100 lines"),
    (b"250-first\r\n550 second\r\n", "code changed"),
    (b"", "connection lost"),  # the server hangs up
])
async def test_a_broken_reply_to_the_message_data_is_a_remote_error(
        answer: bytes, says: str) -> None:
    """Whatever the server does after the data, the client answers with RemoteError
    (after_data: the remote may have the message, RFC 5321 §6.1) and drops the session."""
    session, remote = await session_with(EHLO)
    sending = run(session.send(message("bob@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA")
    remote.say("250 ok", "250 ok", "354 go")
    await remote.expect("Subject: hi", "", "..a line with a leading dot", "bye", ".")
    if answer:
        remote.peer.send(answer)
    else:
        remote.peer.hang_up()
    with pytest.raises(RemoteError) as info:
        await sending
    assert says in info.value.reason and "after the message data" in info.value.reason
    assert info.value.after_data and info.value.temporary
    assert not session.usable
    await session.close()


async def test_garbage_instead_of_an_ehlo_reply() -> None:
    task, remote = greet()
    remote.say("220 mx.b.test ESMTP")
    await remote.expect("EHLO mx.a.test")
    remote.peer.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n")
    with pytest.raises(RemoteError) as info:
        await task
    assert info.value.next_host and info.value.status == "4.5.0"
    assert "malformed reply" in info.value.reason


async def test_garbage_in_the_envelope_replies_is_not_after_data() -> None:
    session, remote = await session_with(EHLO)
    sending = run(session.send(message("bob@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA")
    remote.peer.send(b"250 ok\r\nOK\r\n")
    with pytest.raises(RemoteError) as info:
        await sending
    assert "malformed reply" in info.value.reason  # at once, not after a timeout
    assert not info.value.after_data and not session.usable


async def test_no_reply_to_the_data_within_the_timeout() -> None:
    session, remote = await session_with(EHLO, data_timeout=0.05)
    sending = run(session.send(message("bob@b.test")))
    await remote.expect("MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA")
    remote.say("250 ok", "250 ok", "354 go")
    with pytest.raises(RemoteError) as info:
        await sending
    assert "no reply within 0.05s" in info.value.reason and info.value.after_data
