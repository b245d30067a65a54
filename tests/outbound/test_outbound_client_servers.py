"""The outbound SMTP client against real servers on loopback sockets.

- mailstead's own SMTP server (PIPELINING, CHUNKING, DSN, SMTPUTF8, STARTTLS, implicit
  TLS with AUTH on submissions): the client's BDAT and pipelining against the parser that
  receives them in production;
- aiosmtpd (the test sink: no PIPELINING, no CHUNKING), so the one-command-at-a-time and
  DATA paths meet a second implementation, with its STARTTLS and AUTH;
- a few lines of asyncio playing a server for the TLS failures neither can be made to
  produce: a handshake that fails after ``220``, and replies injected before the handshake.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailstead.delivery.remote import (
    ClientTLS,
    OutMessage,
    OutRecipient,
    RemoteError,
    RemoteSession,
    TLSPolicy,
)
from mailstead.net.tls import ensure_self_signed
from mailstead.testing.server import ServerThread
from mailstead.testing.sink import SinkServer

from .conftest import record_writes

PASSWORD = "correct horse battery staple"
MESSAGE = (b"From: <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: dots\r\n\r\n"
           b".leading dot\r\n.\r\n..two\r\nend\r\n")


async def connect(port: int, tls: TLSPolicy | ClientTLS = ClientTLS.NONE, *,
                  auth: tuple[str, str] | None = None, host: str = "mx.b.test"
                  ) -> RemoteSession:
    policy = tls if isinstance(tls, TLSPolicy) else TLSPolicy(tls)
    return await RemoteSession.connect(host, "127.0.0.1", port, helo="mx.a.test", tls=policy,
                                       auth=auth, connect_timeout=5, command_timeout=10,
                                       data_timeout=10)


# -- mailstead's own server ------------------------------------------------------------------


@pytest.fixture
def mx(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(tmp_path / "b", {"hostname": "mx.b.test",
                                        "limits": {"max_message_size": 100_000}}) as server:
        server.add_user("bob@b.test", PASSWORD)
        yield server


async def test_pipelined_envelope_and_bdat_to_our_server(
        mx: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    session = await connect(mx.port("smtp"))
    assert {"PIPELINING", "CHUNKING", "DSN", "SMTPUTF8"} <= set(session.extensions.keywords)
    writes = record_writes(session, monkeypatch)
    result = await session.send(OutMessage(
        "alice@a.test", [OutRecipient("bob@b.test"), OutRecipient("nobody@b.test")], MESSAGE))
    await session.close()
    assert writes[0].count(b"\r\n") == 3 and writes[0].startswith(b"MAIL FROM:")  # one write
    assert writes[1] == f"BDAT {len(MESSAGE)} LAST\r\n".encode() and writes[2] == MESSAGE
    assert result.replies["bob@b.test"].is_positive
    assert result.replies["nobody@b.test"].status == "5.1.1"
    [stored] = mx.inbox_messages("bob@b.test")
    assert stored.endswith(MESSAGE)  # every dot where it was


async def test_several_messages_over_one_connection_to_our_server(mx: ServerThread) -> None:
    session = await connect(mx.port("smtp"))
    for n in range(3):
        result = await session.send(OutMessage(
            "alice@a.test", [OutRecipient("bob@b.test")], MESSAGE + b"%d\r\n" % n))
        assert result.replies["bob@b.test"].is_positive
    assert session.messages_sent == 3
    await session.close()
    assert len(mx.inbox_messages("bob@b.test")) == 3


async def test_smtputf8_and_8bitmime_to_our_server(mx: ServerThread) -> None:
    data = "From: <alice@a.test>\r\nSubject: Grüße\r\n\r\nÜber alles\r\n".encode()
    session = await connect(mx.port("smtp"))
    result = await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")], data,
                                           body="8BITMIME", smtputf8=True))
    await session.close()
    assert result.replies["bob@b.test"].is_positive
    assert mx.inbox_messages("bob@b.test")[0].endswith(data)


async def test_size_refused_before_sending_to_our_server(
        mx: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    session = await connect(mx.port("smtp"))
    assert session.extensions.size_limit == 100_000
    writes = record_writes(session, monkeypatch)
    with pytest.raises(RemoteError) as info:
        await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")],
                                      b"x" * 100_001))
    assert (info.value.temporary, info.value.status) == (False, "5.3.4")
    assert writes == [] and session.usable  # not even MAIL went out
    await session.close()
    assert mx.inbox_messages("bob@b.test") == []


async def test_required_starttls_with_a_verified_certificate(mx: ServerThread) -> None:
    policy = TLSPolicy(ClientTLS.REQUIRED, verify=True, server_name="mx.b.test",
                       cafile=str(mx.cert_path))
    session = await connect(mx.port("smtp"), policy)
    assert session.tls_version is not None and session.tls_version.startswith("TLSv1")
    assert session.tls_cipher and session.description.endswith(session.tls_version)
    assert "CHUNKING" in session.extensions  # EHLO again after TLS (RFC 3207 §4.2)
    result = await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")],
                                           MESSAGE))
    await session.close()
    assert result.replies["bob@b.test"].is_positive


async def test_a_certificate_for_another_name_fails_verification(mx: ServerThread) -> None:
    policy = TLSPolicy(ClientTLS.REQUIRED, verify=True, server_name="not-mx.b.test",
                       cafile=str(mx.cert_path))
    with pytest.raises(RemoteError) as info:
        await connect(mx.port("smtp"), policy)
    assert (info.value.temporary, info.value.status) == (True, "4.7.5")
    assert "certificate" in info.value.reason


async def test_implicit_tls_and_auth_plain_on_submissions(mx: ServerThread) -> None:
    """RFC 8314: TLS from the first byte (a smarthost on 465), then AUTH (RFC 4954)."""
    policy = TLSPolicy(ClientTLS.IMPLICIT, verify=True, server_name="mx.b.test",
                       cafile=str(mx.cert_path))
    session = await connect(mx.port("submissions"), policy, auth=("bob@b.test", PASSWORD))
    assert session.tls_version is not None
    own = MESSAGE.replace(b"From: <alice@a.test>", b"From: <bob@b.test>")  # his to send
    result = await session.send(OutMessage("bob@b.test", [OutRecipient("bob@b.test")], own))
    await session.close()
    assert result.replies["bob@b.test"].is_positive
    assert len(mx.inbox_messages("bob@b.test")) == 1


# -- aiosmtpd --------------------------------------------------------------------------------


async def test_one_command_at_a_time_and_data_to_aiosmtpd(sink: SinkServer) -> None:
    session = await connect(sink.port)
    assert "PIPELINING" not in session.extensions and "CHUNKING" not in session.extensions
    sink.refuse("nobody@b.test", "550 5.1.1 unknown")
    result = await session.send(OutMessage(
        "alice@a.test", [OutRecipient("nobody@b.test"), OutRecipient("bob@b.test")], MESSAGE))
    await session.close()
    assert result.replies["nobody@b.test"].status == "5.1.1"
    [got] = sink.received
    assert got.data == MESSAGE and got.rcpt_tos == ["bob@b.test"]


async def test_opportunistic_starttls_with_aiosmtpd(tmp_path: Path) -> None:
    with SinkServer(tmp_path, starttls=True) as tls_sink:
        session = await connect(tls_sink.port, ClientTLS.OPPORTUNISTIC)
        assert session.tls_version is not None and session.tls_version.startswith("TLSv1")
        await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")], MESSAGE))
        await session.close()
        [got] = tls_sink.received
    assert got.tls == session.tls_version


async def test_required_tls_without_starttls_offered(sink: SinkServer) -> None:
    with pytest.raises(RemoteError) as info:
        await connect(sink.port, ClientTLS.REQUIRED)
    assert (info.value.temporary, info.value.status, info.value.next_host) == (
        True, "4.7.10", True)
    assert sink.received == []


@pytest.mark.parametrize("offered", ["AUTH PLAIN", "AUTH LOGIN"])
async def test_auth_over_starttls_with_aiosmtpd(tmp_path: Path, offered: str) -> None:
    """Each mechanism we speak, offered alone. (A refusal, 4.7.8, is in the transcripts:
    this sink does not answer a failed AUTH.)"""
    with SinkServer(tmp_path, starttls=True, auth=("relay", "s3cret"),
                    remove_extensions=["AUTH"], add_extensions=[offered]) as relay:
        session = await connect(relay.port, ClientTLS.REQUIRED, auth=("relay", "s3cret"))
        await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")], MESSAGE))
        await session.close()
        assert len(relay.received) == 1


@pytest.mark.parametrize(("sink_options", "out", "status"), [
    ({"smtputf8": False}, OutMessage("alice@a.test", [OutRecipient("bøb@b.test")], MESSAGE),
     "5.6.7"),
    ({"remove_extensions": ["8BITMIME"]},
     OutMessage("alice@a.test", [OutRecipient("bob@b.test")], "é\r\n".encode(),
                body="8BITMIME"), "5.6.3"),
    ({"size_limit": 100}, OutMessage("alice@a.test", [OutRecipient("bob@b.test")],
                                     b"x" * 101), "5.3.4"),
])
async def test_refusals_before_sending_to_aiosmtpd(
        tmp_path: Path, sink_options: dict[str, Any], out: OutMessage, status: str) -> None:
    with SinkServer(tmp_path, **sink_options) as limited:
        session = await connect(limited.port)
        with pytest.raises(RemoteError) as info:
            await session.send(out)
        assert session.usable
        await session.close()
        assert limited.received == []
    assert (info.value.temporary, info.value.status) == (False, status)


# -- TLS failures, played by hand ------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def reply(writer: asyncio.StreamWriter, *lines: bytes) -> None:
    writer.write(b"".join(line + b"\r\n" for line in lines))
    await writer.drain()


async def plain_transaction(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            seen: list[bytes], *, mail_read: bool = False) -> None:
    """MAIL, RCPT, DATA, the data and QUIT, one at a time, recording each command;
    ``mail_read``: the MAIL command was read (and recorded) already."""
    for answer in (b"250 2.1.0 ok", b"250 2.1.5 ok", b"354 go ahead"):
        if not mail_read:
            seen.append(await reader.readline())
        mail_read = False
        await reply(writer, answer)
    while await reader.readline() != b".\r\n":
        pass
    await reply(writer, b"250 2.0.0 queued")
    seen.append(await reader.readline())
    await reply(writer, b"221 bye")


@pytest.mark.parametrize("mode", [ClientTLS.OPPORTUNISTIC, ClientTLS.REQUIRED])
async def test_a_failed_handshake(serve: Callable[[Handler], Awaitable[int]],
                                  mode: ClientTLS) -> None:
    """Opportunistic TLS reconnects once without TLS (RFC 7435 §3); required TLS fails
    with 4.7.5 and does not."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(writer, b"220 fake ESMTP")
        seen.append(await reader.readline())
        await reply(writer, b"250-fake", b"250-STARTTLS", b"250 8BITMIME")
        command = await reader.readline()
        seen.append(command)
        if command == b"STARTTLS\r\n":
            await reply(writer, b"220 go ahead")
            await reader.read(1)  # the client's TLS hello has begun
            await reply(writer, b"this is not TLS")
        else:
            await plain_transaction(reader, writer, seen, mail_read=True)
        writer.close()

    port = await serve(handler)
    if mode is ClientTLS.REQUIRED:
        with pytest.raises(RemoteError) as info:
            await connect(port, mode)
        assert (info.value.temporary, info.value.status) == (True, "4.7.5")
        assert seen == [b"EHLO mx.a.test\r\n", b"STARTTLS\r\n"]
        return
    session = await connect(port, mode)
    assert session.tls_version is None
    await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")], MESSAGE))
    await session.close()
    assert seen == [b"EHLO mx.a.test\r\n", b"STARTTLS\r\n",  # first connection
                    b"EHLO mx.a.test\r\n", b"MAIL FROM:<alice@a.test>\r\n",  # second, plain
                    b"RCPT TO:<bob@b.test>\r\n", b"DATA\r\n", b"QUIT\r\n"]


async def test_replies_sent_before_the_handshake_are_not_believed(
        serve: Callable[[Handler], Awaitable[int]], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """RFC 3207 §4.2: a man in the middle may append replies to the 220 for STARTTLS; they
    must not count as said over TLS. Here they announce CHUNKING; the server over TLS
    does not offer it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, "mx.b.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(writer, b"220 fake ESMTP")
        await reader.readline()
        await reply(writer, b"250-fake", b"250 STARTTLS")
        await reader.readline()
        await reply(writer, b"220 go ahead", b"250-injected", b"250 CHUNKING")
        await writer.start_tls(context)
        seen.append(await reader.readline())
        await reply(writer, b"250-fake over TLS", b"250 8BITMIME")
        await plain_transaction(reader, writer, seen)
        writer.close()

    port = await serve(handler)
    with caplog.at_level(logging.WARNING, "mailstead.delivery.remote"):
        session = await connect(port, ClientTLS.OPPORTUNISTIC)
    assert session.tls_version is not None
    assert "CHUNKING" not in session.extensions and "8BITMIME" in session.extensions
    assert "before the TLS handshake" in caplog.text
    await session.send(OutMessage("alice@a.test", [OutRecipient("bob@b.test")], MESSAGE))
    await session.close()
    assert seen[0] == b"EHLO mx.a.test\r\n" and seen[1].startswith(b"MAIL FROM:")
