"""Fixtures for outbound delivery: a store with a sender, a scheduler on a manual clock,
a loopback DNS server and scriptable SMTP sinks."""

from __future__ import annotations

import email
import email.message
import email.policy
import smtplib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailstead.delivery.clock import ManualClock
from mailstead.delivery.remote import RemoteSession
from mailstead.delivery.router import Router
from mailstead.delivery.scheduler import Scheduler
from mailstead.store.models import OutboundEnvelope, QueuedRecipient
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import (
    ServerThread,
    build_settings,
    deep_merge,
    settings_dict_for_tests,
)
from mailstead.testing.sink import SinkServer

SENDER = "alice@a.test"
SENDER_PASSWORD = "correct horse battery staple"


def submit(server: ServerThread, rcpt: str, *, subject: str, message_id: str,
           body: str = "Hello Bob.\r\n") -> None:
    """Alice submits one message to ``server`` (STARTTLS, AUTH) for ``rcpt``."""
    message = (f"From: Alice <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
               f"Message-ID: <{message_id}>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
               f"\r\n{body}")
    context = ssl.create_default_context()
    context.check_hostname = False  # the instance's certificate names its test hostname
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as client:
        client.starttls(context=context)
        client.login(SENDER, SENDER_PASSWORD)
        client.sendmail(SENDER, [rcpt], message.encode())


def record_writes(session: RemoteSession, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the client makes on its stream from now on, in order."""
    writes: list[bytes] = []
    write = session.stream.write

    def recording(data: bytes) -> None:
        writes.append(data)
        write(data)

    monkeypatch.setattr(session.stream, "write", recording)
    return writes


def message_bytes(n: int = 1, subject: str = "hello", body: str = "Hi there.\r\n") -> bytes:
    return (f"From: Alice <{SENDER}>\r\nTo: bob@b.test\r\nSubject: {subject} {n}\r\n"
            f"Message-ID: <{n}.test@a.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
            f"\r\n{body}").encode()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    await store.add_domain("a.test")
    await store.add_user(SENDER, "x")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SinkServer]:
    with SinkServer(tmp_path) as server:
        yield server


@pytest.fixture
def dns_server() -> Iterator[TestDNSServer]:
    with TestDNSServer() as server:
        yield server


class Outbound:
    """A scheduler over ``store`` with a manual clock, and helpers to look at results."""

    def __init__(self, store: SQLiteStore, tmp_path: Path, config: dict[str, Any]) -> None:
        base = {"hostname": "mx.a.test",
                "delivery": {"enabled": True, "connect_timeout_seconds": 5,
                             "command_timeout_seconds": 10, "data_timeout_seconds": 10}}
        self.settings = build_settings(
            settings_dict_for_tests(tmp_path / "data", deep_merge(base, config)))
        self.clock = ManualClock()
        self.store = store
        router = Router(store, self.settings.smtp.plus_separator)
        self.scheduler = Scheduler(store, self.settings, router=router, clock=self.clock)

    async def queue(self, *recipients: str | QueuedRecipient, data: bytes | None = None,
                    mail_from: str = SENDER, **envelope: Any) -> int:
        rcpts = tuple(r if isinstance(r, QueuedRecipient) else QueuedRecipient(r)
                      for r in recipients)
        _, queue_id = await self.store.enqueue(
            data or message_bytes(), OutboundEnvelope(mail_from, rcpts, **envelope))
        assert queue_id is not None
        # The store stamps real time; make it due on the manual clock too.
        await self.store.retry_queue(queue_id, self.clock.now())
        return queue_id

    async def run(self, advance: float = 0) -> None:
        if advance:
            self.clock.advance(advance)
        await self.scheduler.run_once()

    async def inbox(self, address: str = SENDER) -> list[email.message.EmailMessage]:
        user = await self.store.find_user(address)
        assert user is not None
        box = await self.store.get_mailbox(user.id, "INBOX")
        out = []
        for meta in await self.store.list_messages(box.id):
            raw = await self.store.read_blob(meta.blob_id)
            out.append(email.message_from_bytes(raw, policy=email.policy.default))
        return out  # type: ignore[return-value]

    async def recipients(self) -> dict[str, Any]:
        return {r.address: r for m in await self.store.queued_messages()
                for r in m.envelope.recipients}


def report_fields(dsn: email.message.EmailMessage) -> list[dict[str, str]]:
    """The delivery-status part: per-message block, then one block per recipient."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    status = [p for p in dsn.walk() if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    return [{k.lower(): str(v) for k, v in block.items()}
            for block in status[0].get_payload()]  # type: ignore[union-attr]


def human_text(dsn: email.message.EmailMessage) -> str:
    part = next(p for p in dsn.walk() if p.get_content_type() == "text/plain")
    return str(part.get_content())  # type: ignore[attr-defined]


@pytest.fixture
def outbound_factory(store: SQLiteStore, tmp_path: Path) -> Any:
    def make(config: dict[str, Any] | None = None) -> Outbound:
        return Outbound(store, tmp_path, config or {})

    return make
