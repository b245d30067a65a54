"""Fixtures for POP3 tests: the real server in a thread, accounts, and poplib clients."""

from __future__ import annotations

import contextlib
import itertools
import poplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailstead.core.types import UID
from mailstead.store.models import MessageMeta, Recipient, User
from mailstead.testing.server import ServerThread

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


def message(n: int, body: bytes = b"") -> bytes:
    """A small canonical (CRLF) message; ``body`` replaces the default text."""
    text = body or f"Hello number {n}\r\n".encode()
    return (
        f"From: sender@example.net\r\nTo: someone@example.org\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@example.net>\r\n\r\n"
    ).encode() + text


@dataclass
class Account:
    """One mailbox owner on the test server, with helpers that act through the store."""

    server: ServerThread
    user: User
    password: str = PASSWORD
    clients: list[poplib.POP3] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.user.address

    def deliver(self, raw: bytes) -> UID:
        result = self.server.call(self.server.store.deliver(raw, [Recipient(self.user.id)]))
        return result.results[0][1].uid

    def messages(self, mailbox: str = "INBOX") -> list[MessageMeta]:
        async def read() -> list[MessageMeta]:
            box = await self.server.store.get_mailbox(self.user.id, mailbox)
            return await self.server.store.list_messages(box.id)

        return self.server.call(read())

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        return self.server.call(self.server.store.get_mailbox(self.user.id, mailbox)).uidvalidity

    def connect(self, *, ssl: bool = False) -> poplib.POP3:
        """An unauthenticated client on pop3 (plaintext) or pop3s."""
        if ssl:
            client: poplib.POP3 = poplib.POP3_SSL(
                "127.0.0.1", self.server.port("pop3s"),
                context=self.server.client_ssl_context(), timeout=10,
            )
        else:
            client = poplib.POP3("127.0.0.1", self.server.port("pop3"), timeout=10)
        self.clients.append(client)
        return client

    def login(self, *, ssl: bool = False) -> poplib.POP3:
        client = self.connect(ssl=ssl)
        client.user(self.address)
        client.pass_(self.password)
        return client

    def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server per test module; plaintext logins allowed so poplib can test USER/PASS
    on the STLS port without TLS (the TLS policy has its own module)."""
    path: Path = tmp_path_factory.mktemp("pop3")
    with ServerThread(path, {"auth": {"allow_plaintext": True}}) as srv:
        yield srv


@pytest.fixture
def make_account(server: ServerThread) -> Iterator[Callable[..., Account]]:
    """Fresh accounts so every test stands alone on the shared server."""
    made: list[Account] = []

    def make(policy: str | None = None) -> Account:
        address = f"user{next(_numbers)}@example.org"
        account = Account(server, server.add_user(address, PASSWORD, pop3_policy=policy))
        made.append(account)
        return account

    yield make
    for account in made:
        account.close()


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()
