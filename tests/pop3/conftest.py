"""Fixtures for POP3 tests, in two tiers.

- Scripted sessions (:class:`Mailstore`): a real :class:`Session` on a real store, its
  connection an in-memory script (``mailstead.testing.transport``). No socket, no sleep;
  time is a :class:`ManualClock`. Most session behaviour is tested here, as transcripts.
- The real server in a thread, accounts, and poplib clients, for what needs a listener:
  TLS, STLS, POP3S, both ports sharing one lock, a dropped TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import poplib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mailstead.auth.authenticator import Authenticator
from mailstead.auth.passwords import hash_password
from mailstead.auth.throttle import Throttle
from mailstead.cli.serve import parse_structure
from mailstead.core.types import UID, Pop3Policy
from mailstead.net.stream import StreamError
from mailstead.net.tls import TLSContexts, ensure_self_signed
from mailstead.pop3.commands import COMMANDS
from mailstead.pop3.maildrop import MaildropLocks
from mailstead.pop3.session import CommandEntry, LoginDelay, Session, SessionConfig
from mailstead.store.models import MessageMeta, Recipient, User
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import TEST_PASSWORD_POLICY, ServerThread
from mailstead.testing.transport import POP3Transcript, memory_connection, serve

T = TypeVar("T")

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


def eventually(attempt: Callable[[], T | None], *, timeout: float = 10.0) -> T:
    """Poll ``attempt`` until it returns something other than None, for a condition the
    server reaches on its own time (it noticed a dropped connection, say). Fails after
    ``timeout`` seconds instead of guessing how long a fixed sleep should be."""
    deadline = time.monotonic() + timeout
    while (result := attempt()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.005)
    return result


# -- the scripted tier ----------------------------------------------------------------------


class ManualClock:
    """A clock that moves only when told: login delays without waiting for them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Mailstore:
    """What one POP3 server shares between its sessions (store, maildrop locks, login
    delay, failed-login throttle), and the scripted sessions opened on it."""

    store: SQLiteStore
    clock: ManualClock = field(default_factory=ManualClock)
    locks: MaildropLocks = field(default_factory=MaildropLocks)
    throttle: Throttle = field(default_factory=Throttle)
    #: Tarpit delays the authenticator asked for: recorded, never waited.
    tarpits: list[float] = field(default_factory=list)
    _sessions: list[tuple[POP3Transcript, asyncio.Task[None]]] = field(default_factory=list)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.login_delay = LoginDelay(0, self.clock)

    async def _tarpit(self, seconds: float) -> None:
        self.tarpits.append(seconds)

    async def add_user(self, policy: Pop3Policy | None = None) -> User:
        address = f"user{next(self._numbers)}@example.org"
        user = await self.store.add_user(address, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
        if policy is not None:
            await self.store.set_pop3_policy(address, policy)
        return await self.store.get_user(user.id)

    async def deliver(self, user: User, raw: bytes) -> UID:
        result = await self.store.deliver(raw, [Recipient(user.id)])
        return result.results[0][1].uid

    async def messages(self, user: User, mailbox: str = "INBOX") -> list[MessageMeta]:
        box = await self.store.get_mailbox(user.id, mailbox)
        return await self.store.list_messages(box.id)

    def connect(
        self,
        *,
        commands: Mapping[str, CommandEntry] = COMMANDS,
        tls: TLSContexts | None = None,
        **config: Any,
    ) -> POP3Transcript:
        """A new session on a scripted connection; ``config`` overrides SessionConfig
        fields (plaintext logins are allowed unless it says otherwise). ``tls`` makes STLS
        available to offer, though this transport cannot negotiate it."""
        config.setdefault("allow_plaintext", True)
        stream, peer = memory_connection(
            local=("192.0.2.1", 110), session_id=f"pop3-{len(self._sessions) + 1}"
        )
        authenticator = Authenticator(
            self.store, self.throttle, TEST_PASSWORD_POLICY, sleep=self._tarpit
        )
        session = Session(
            stream,
            store=self.store,
            authenticator=authenticator,
            locks=self.locks,
            config=SessionConfig(
                hostname="pop.example.org", login_delay=self.login_delay.seconds, **config
            ),
            commands=commands,
            tls=tls,
            login_delay=self.login_delay,
        )
        task = asyncio.create_task(serve(lambda _: session.run(), stream))
        transcript = POP3Transcript(peer)
        self._sessions.append((transcript, task))
        return transcript

    async def ended(self, pop: POP3Transcript) -> None:
        """Wait until the session behind ``pop`` has finished, however it ended; a
        session that failed with anything but a connection error fails the test."""
        for transcript, task in self._sessions:
            if transcript is pop:
                with contextlib.suppress(StreamError):
                    await asyncio.wait_for(task, pop.peer.timeout)
                return
        raise AssertionError("not a session of this mailstore")

    async def close(self) -> None:
        for transcript, _ in self._sessions:
            transcript.peer.hang_up()
        for transcript, _ in self._sessions:
            await self.ended(transcript)


@pytest.fixture(scope="session")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> TLSContexts:
    """A self-signed certificate, for sessions that should offer STLS."""
    directory = tmp_path_factory.mktemp("pop3-cert")
    ensure_self_signed(directory / "cert.pem", directory / "key.pem", "pop.example.org")
    return TLSContexts(directory / "cert.pem", directory / "key.pem")


@pytest.fixture
async def mailstore(tmp_path: Path) -> AsyncIterator[Mailstore]:
    """A fresh store and server state per test, so each test stands alone (its own
    throttle and locks included)."""
    # The parser the composition root gives the store, so TOP reads what production stores.
    store = SQLiteStore(tmp_path / "data", parse=parse_structure)
    await store.open()
    await store.add_domain("example.org")
    world = Mailstore(store)
    try:
        yield world
    finally:
        try:
            await world.close()
        finally:
            await store.close()
