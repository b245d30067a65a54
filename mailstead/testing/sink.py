"""A scriptable remote SMTP server for outbound tests and the benchmark (aiosmtpd).

``SinkServer`` listens on 127.0.0.1 (its own thread and loop) and records every accepted
message. Tests script it: answers for the final dot (``"451 4.3.0 later"`` then the
default ``250``), refusals per recipient, extensions removed from or added to EHLO,
STARTTLS with a self-signed certificate, a size limit. It counts connections and the most
that were open at once, so connection reuse and concurrency limits are observable.
"""

from __future__ import annotations

import collections
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from mailstead.net.tls import ensure_self_signed
from mailstead.testing.server import free_port


@dataclass
class Received:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    rcpt_options: list[str]
    tls: str | None
    session: int


@dataclass
class SinkHandler:
    data_replies: collections.deque[str] = field(default_factory=collections.deque)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    remove_extensions: set[str] = field(default_factory=set)
    add_extensions: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold_after: int | None = None  # final dots answered before the gate must open
    gate: threading.Event = field(default_factory=threading.Event)
    dots_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1]
                if r[4:].split(" ")[0].upper() not in self.remove_extensions]
        last = responses[-1]
        extra = [f"250-{ext}" for ext in self.add_extensions]
        return [*kept, *extra, last]

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        with self.lock:
            self.dots_seen += 1
            seen = self.dots_seen
            reply = self.data_replies.popleft() if self.data_replies else "250 2.0.0 OK"
        if self.hold_after is not None and seen > self.hold_after:
            while not self.gate.is_set():  # a remote that never answers the final dot
                await asyncio.sleep(0.01)
        if reply.startswith("2"):
            transport = getattr(server, "transport", None)
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            tls = ssl_object.version() if ssl_object is not None else None
            with self.lock:
                self.received.append(Received(
                    envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                    or envelope.content, list(envelope.mail_options),
                    list(envelope.rcpt_options), tls, id(session)))
        return reply


class _CountingSMTP(SMTP):
    sink: SinkServer

    def connection_made(self, transport: Any) -> None:
        if getattr(self, "_counted", False):  # STARTTLS: the same connection, now in TLS
            super().connection_made(transport)
            return
        self._counted = True
        with self.sink.count_lock:
            self.sink.connections += 1
            self.sink.active += 1
            self.sink.max_active = max(self.sink.max_active, self.sink.active)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # STARTTLS swaps transports without closing the connection: count only once.
        if not getattr(self, "_counted_lost", False):
            self._counted_lost = True
            with self.sink.count_lock:
                self.sink.active -= 1
        super().connection_lost(exc)


class _Controller(Controller):
    def __init__(self, sink: SinkServer, **kwargs: Any) -> None:
        self.sink = sink
        super().__init__(**kwargs)

    def factory(self) -> SMTP:
        smtp_class = type("SinkSMTP", (_CountingSMTP,), {"sink": self.sink})
        smtp: SMTP = smtp_class(self.handler, **self.SMTP_kwargs)
        return smtp


class SinkServer:
    """The scriptable sink; a context manager. ``port`` is where it listens."""

    __test__ = False

    def __init__(
        self,
        tmp_path: Path | None = None,
        *,
        starttls: bool = False,
        smtputf8: bool = True,
        size_limit: int | None = 33554432,
        data_replies: Iterable[str] = (),
        remove_extensions: Iterable[str] = (),
        add_extensions: Iterable[str] = (),
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.auth = auth
        self.handler = SinkHandler(
            data_replies=collections.deque(data_replies),
            remove_extensions={e.upper() for e in remove_extensions},
            add_extensions=list(add_extensions),
        )
        self.tls_context: ssl.SSLContext | None = None
        if starttls:
            if tmp_path is None:
                raise ValueError("STARTTLS needs a directory for the certificate")
            cert, key = tmp_path / "sink-cert.pem", tmp_path / "sink-key.pem"
            ensure_self_signed(cert, key, "localhost")
            self.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_context.load_cert_chain(cert, key)
        self.smtputf8 = smtputf8
        self.size_limit = size_limit
        self.port = 0
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.count_lock = threading.Lock()
        self._controller: _Controller | None = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def script(self, *replies: str) -> None:
        """Answers for the next final dots, in order; afterwards 250 again."""
        with self.handler.lock:
            self.handler.data_replies.extend(replies)

    def refuse(self, address: str, reply: str) -> None:
        self.handler.rcpt_replies[address.lower()] = reply

    def start(self) -> SinkServer:
        for _attempt in range(20):
            self.port = free_port()
            controller = _Controller(
                self, handler=self.handler, hostname="127.0.0.1", port=self.port,
                data_size_limit=self.size_limit, enable_SMTPUTF8=self.smtputf8,
                tls_context=self.tls_context, ident="sink",
                **self._auth_kwargs(),
            )
            try:
                controller.start()
            except Exception:
                time.sleep(0.05)
                continue
            self._controller = controller
            # aiosmtpd connects once to see the server is up; that is not a client.
            deadline = time.monotonic() + 2.0
            while self.active and time.monotonic() < deadline:
                time.sleep(0.01)
            with self.count_lock:
                self.connections = self.max_active = 0
            return self
        raise RuntimeError("the SMTP sink could not start")

    def _auth_kwargs(self) -> dict[str, Any]:
        if self.auth is None:
            return {}
        from aiosmtpd.smtp import AuthResult

        user, password = self.auth

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          data: Any) -> AuthResult:
            ok = (getattr(data, "login", None) == user.encode()
                  and getattr(data, "password", None) == password.encode())
            return AuthResult(success=ok)

        return {"authenticator": authenticator, "auth_required": True}

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Block until ``count`` messages arrived (for tests against a running server)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"sink got {len(self.received)} messages, expected {count}")
