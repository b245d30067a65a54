"""The client session on its own: PIPELINING really pipelines, SIZE is honoured, replies
are per recipient, and a session carries several messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailstead.delivery.remote import (
    OutMessage,
    OutRecipient,
    RemoteError,
    RemoteSession,
    TLSPolicy,
)
from mailstead.testing.sink import SinkServer
from mailstead.wire.smtp import dot_stuff, xtext_encode

from .conftest import message_bytes


async def connect(port: int, tls: str = "opportunistic") -> RemoteSession:
    return await RemoteSession.connect("sink.test", "127.0.0.1", port, helo="mx.a.test",
                                       tls=TLSPolicy(tls), connect_timeout=5,
                                       command_timeout=10, data_timeout=10)


async def test_pipelining_sends_the_envelope_before_any_reply() -> None:
    """A server that answers MAIL only after it has already read both RCPTs and DATA:
    a client waiting for each reply would hang here."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        await writer.drain()
        await reader.readline()  # EHLO
        writer.write(b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        await writer.drain()
        envelope = [await asyncio.wait_for(reader.readline(), 5) for _ in range(4)]
        seen.extend(envelope)
        writer.write(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n"
                     b"354 go ahead\r\n")
        await writer.drain()
        while (line := await reader.readline()) != b".\r\n":
            seen.append(line)
        writer.write(b"250 2.0.0 queued\r\n")
        await writer.drain()
        await reader.readline()  # QUIT
        writer.write(b"221 bye\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        session = await connect(port)
        result = await session.send(OutMessage(
            "alice@a.test", [OutRecipient("bob@b.test"), OutRecipient("nobody@b.test")],
            b"Subject: x\r\n\r\n.leading dot\r\n"))
        await session.close()
    assert [line.split(b":")[0] for line in seen[:4]] == [b"MAIL FROM", b"RCPT TO", b"RCPT TO",
                                                         b"DATA\r\n"]
    assert b"..leading dot\r\n" in seen  # dot-stuffed (RFC 5321 §4.5.2)
    assert str(result.replies["bob@b.test"]) == "250 2.0.0 queued"
    assert str(result.replies["nobody@b.test"]) == "550 5.1.1 no such user"


async def test_one_session_carries_several_messages(sink: SinkServer) -> None:
    session = await connect(sink.port)
    for n in range(3):
        result = await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")],
                                               message_bytes(n)))
        assert result.replies["bob@b.test"].is_positive
    await session.close()
    assert len(sink.received) == 3 and sink.connections == 1
    assert sink.received[0].mail_options[0].startswith("SIZE=")


async def test_size_limit_refused_before_sending(tmp_path: Path) -> None:
    with SinkServer(tmp_path, size_limit=100) as small:
        session = await connect(small.port)
        with pytest.raises(RemoteError) as info:
            await session.send(OutMessage("a@a.test", [OutRecipient("b@b.test")], b"x" * 500))
        await session.close()
        assert small.received == []
    assert not info.value.temporary and info.value.status == "5.3.4"


async def test_refused_recipient_and_rset_keep_the_session_usable(sink: SinkServer) -> None:
    sink.refuse("nobody@b.test", "550 5.1.1 unknown")
    session = await connect(sink.port)
    result = await session.send(OutMessage("a@a.test", [OutRecipient("nobody@b.test")],
                                           message_bytes()))
    assert result.replies["nobody@b.test"].status == "5.1.1"
    assert session.usable
    result = await session.send(OutMessage("a@a.test", [OutRecipient("bob@b.test")],
                                           message_bytes()))
    assert result.replies["bob@b.test"].is_positive
    await session.close()


def test_wire_helpers() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert dot_stuff(b"a\n.b") == b"a\r\n..b\r\n.\r\n"
