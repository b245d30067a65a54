"""Session behaviour that needs a hand-built server: login delay, internal errors, idle timer.

These run the POP3 server on an in-process listener (no ServerThread), with options the
configuration file does not expose, and talk to it with asyncio streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mailstead.auth.authenticator import Authenticator
from mailstead.auth.passwords import hash_password
from mailstead.auth.throttle import Throttle
from mailstead.cli.serve import parse_structure
from mailstead.net.listener import Listener
from mailstead.pop3 import commands as pop3_commands
from mailstead.pop3.commands.arguments import no_arguments
from mailstead.pop3.server import POP3Server
from mailstead.pop3.session import CommandSpec
from mailstead.pop3.states import TRANSACTION
from mailstead.store.models import Recipient
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing import server as testing
from mailstead.testing.server import TEST_PASSWORD_POLICY, build_settings
from tests.pop3.conftest import message

ADDRESS = "carol@example.org"
PASSWORD = "s3cret"


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 10)

    async def send(self, command: str) -> bytes:
        self.writer.write(command.encode() + b"\r\n")
        await self.writer.drain()
        return await self.line()

    async def login(self) -> bytes:
        await self.send(f"USER {ADDRESS}")
        return await self.send(f"PASS {PASSWORD}")

    def close(self) -> None:
        self.writer.close()


Connect = Callable[[], Awaitable[Client]]
POP3Fixture = tuple[Connect, SQLiteStore, int]


@pytest.fixture
async def pop3(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[POP3Fixture]:
    """A POP3 listener on 127.0.0.1. Parametrize indirectly with (config, login_delay)."""
    config, login_delay = getattr(request, "param", ({}, 0))
    # Through the module: a bare test_* name imported here would be collected as a test.
    settings = build_settings(testing.settings_dict_for_tests(
        tmp_path, {"auth": {"allow_plaintext": True}, **config}))
    store = SQLiteStore(tmp_path / "data", parse=parse_structure)
    await store.open()
    await store.add_domain("example.org")
    user = await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
    authenticator = Authenticator(store, Throttle(), TEST_PASSWORD_POLICY)
    server = POP3Server(store, authenticator, settings, None, login_delay=login_delay)
    handler, reject = server.endpoint(settings.listeners.pop3)
    listener = Listener("pop3", "127.0.0.1", 0, handler, reject=reject,
                        idle_timeout=settings.limits.pop3_idle_timeout_seconds)
    await listener.start()
    clients: list[Client] = []

    async def connect() -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        client = Client(reader, writer)
        clients.append(client)
        assert (await client.line()).startswith(b"+OK")
        return client

    try:
        yield connect, store, user.id
    finally:
        for client in clients:
            client.close()
        await listener.stop(grace=1.0)
        await store.close()


@pytest.mark.parametrize("pop3", [({}, 3600)], indirect=True)
async def test_login_delay(pop3: POP3Fixture) -> None:
    connect, _, _ = pop3
    client = await connect()
    client.writer.write(b"CAPA\r\n")
    caps = []
    while (line := await client.line()) != b".\r\n":
        caps.append(line)
    assert b"LOGIN-DELAY 3600\r\n" in caps
    assert (await client.login()).startswith(b"+OK")
    assert (await client.send("QUIT")).startswith(b"+OK")
    again = await connect()
    assert (await again.login()).startswith(b"-ERR [LOGIN-DELAY]")


async def test_internal_error_is_generic(pop3: POP3Fixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    connect, store, user_id = pop3
    await store.deliver(message(1), [Recipient(user_id)])

    async def broken(session: Any, state: Any, args: None) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setitem(pop3_commands.COMMANDS, "NOOP",
                        CommandSpec(no_arguments, broken, TRANSACTION))
    client = await connect()
    assert (await client.login()).startswith(b"+OK")
    await client.send("DELE 1")
    reply = await client.send("NOOP")
    assert reply == b"-ERR [SYS/TEMP] internal server error\r\n"
    assert await client.reader.read() == b""  # closed, and no traceback sent
    inbox = await store.get_mailbox(user_id, "INBOX")
    assert len(await store.list_messages(inbox.id)) == 1  # no QUIT, nothing deleted
    # The lock was released: a new session can log in.
    assert (await (await connect()).login()).startswith(b"+OK")


@pytest.mark.parametrize("pop3", [({"limits": {"pop3_idle_timeout_seconds": 1}}, 0)],
                         indirect=True)
async def test_idle_timeout_commits_nothing(pop3: POP3Fixture) -> None:
    connect, store, user_id = pop3
    await store.deliver(message(1), [Recipient(user_id)])
    client = await connect()
    assert (await client.login()).startswith(b"+OK")
    assert (await client.send("DELE 1")).startswith(b"+OK")
    # RFC 1939 §3: the autologout timer closes without entering UPDATE.
    assert await asyncio.wait_for(client.reader.read(), 10) == b""
    inbox = await store.get_mailbox(user_id, "INBOX")
    assert len(await store.list_messages(inbox.id)) == 1
    assert (await (await connect()).login()).startswith(b"+OK")
