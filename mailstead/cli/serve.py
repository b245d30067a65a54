"""The composition root: the only module that picks concrete backends and wires the server.

settings -> data dir and certificate -> store -> first-run bootstrap -> authenticator ->
one :class:`Listener` per enabled listener whose protocol is available -> serve until
SIGTERM (drain, exit 0). SIGHUP reloads the TLS certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from mailstead.auth.authenticator import Authenticator
from mailstead.auth.throttle import Throttle, ThrottlePolicy
from mailstead.cli.admin import password_policy
from mailstead.config.schema import ListenerSettings, Settings
from mailstead.core.errors import ConfigError
from mailstead.core.log import setup_logging
from mailstead.mime.parse import parse_message
from mailstead.net.listener import Listener, ListenerGroup
from mailstead.net.stream import Stream
from mailstead.net.tls import TLSContexts, ensure_self_signed
from mailstead.store.interfaces import Store
from mailstead.store.sql.sqlite import SQLiteStore

if TYPE_CHECKING:
    from mailstead.delivery.scheduler import Scheduler

log = logging.getLogger("mailstead.serve")

GC_INTERVAL_SECONDS = 3600.0
#: Written in the data dir once every listener accepts; removed on a clean stop.
PID_FILE = "mailstead.pid"


def parse_structure(raw: bytes) -> bytes:
    """The store's injected parser: parse once at append, keep the JSON."""
    return parse_message(raw).to_json()


@dataclass
class Services:
    """What the protocol front ends are built from; constructed once per process."""

    settings: Settings
    store: Store
    authenticator: Authenticator
    tls: TLSContexts
    extras: dict[str, object] = field(default_factory=dict)


Handler = Callable[[Stream], Awaitable[None]]
RejectHook = Callable[[Stream, str], Awaitable[None]]
#: Builds (handler, reject hook) for one listener of a protocol.
ProtocolFactory = Callable[[Services, str, ListenerSettings], tuple[Handler, RejectHook | None]]


def _protocols() -> dict[str, ProtocolFactory]:
    """Listener name -> the protocol that serves it. A listener not named here has no
    protocol yet and is reported as such at start-up."""
    return {
        "imap": _imap,
        "imaps": _imap,
        "pop3": _pop3,
        "pop3s": _pop3,
        "smtp": _smtp,
        "submission": _smtp,
        "submissions": _smtp,
    }


def _smtp(services: Services, name: str, conf: ListenerSettings) -> tuple[Handler, RejectHook]:
    """MX, submission and submissions share one server (router, deliverer)."""
    from mailstead.smtp.server import SMTPServer

    server = services.extras.get("smtp")
    if not isinstance(server, SMTPServer):
        server = SMTPServer(services.store, services.authenticator, services.settings,
                            services.tls)
        services.extras["smtp"] = server
    return server.endpoint(name, conf)


def _imap(services: Services, name: str, conf: ListenerSettings) -> tuple[Handler, RejectHook]:
    """IMAP with STARTTLS and IMAPS share one \\Recent tracker (mailstead.imap.server)."""
    from mailstead.imap.server import imap_protocol

    return imap_protocol(services, name, conf)


def _pop3(services: Services, name: str, conf: ListenerSettings) -> tuple[Handler, RejectHook]:
    """Both POP3 listeners share one server, so the [IN-USE] lock spans ports 110 and 995."""
    from mailstead.pop3.server import POP3Server

    server = services.extras.get("pop3")
    if not isinstance(server, POP3Server):
        server = POP3Server(services.store, services.authenticator, services.settings,
                            services.tls)
        services.extras["pop3"] = server
    return server.endpoint(conf)


def build_store(settings: Settings) -> Store:
    if settings.store.backend != "sqlite":
        raise ConfigError(
            "the postgres backend is not available in this version; use sqlite",
            key="store.backend",
        )
    return SQLiteStore(settings.data_dir, parse=parse_structure)


def prepare_tls(settings: Settings) -> TLSContexts:
    """Use the configured certificate, or make a self-signed one on first start.

    A certificate at the default place in the data dir is ours to create; one configured
    elsewhere is the admin's, and its absence is a configuration error.
    """
    default_dir = (settings.data_dir / "tls").absolute()
    cert, key = settings.cert_path.absolute(), settings.key_path.absolute()
    if cert == default_dir / "cert.pem" and key == default_dir / "key.pem":
        if ensure_self_signed(cert, key, settings.hostname):
            log.info("created a self-signed certificate for %s in %s", settings.hostname,
                     default_dir)
    else:
        for name, path in (("tls.cert", cert), ("tls.key", key)):
            if not path.is_file():
                raise ConfigError(f"file {path} does not exist", key=name)
    return TLSContexts(cert, key)


def build_listeners(services: Services) -> list[Listener]:
    settings = services.settings
    limits = settings.limits
    protocols = _protocols()
    listeners: list[Listener] = []
    for name, conf in settings.listeners.items():
        if not conf.enabled:
            continue
        factory = protocols.get(name)
        if factory is None:
            log.info("listener %s: its protocol is not part of this version yet", name)
            continue
        handler, reject = factory(services, name, conf)
        listeners.append(Listener(
            name, conf.address, conf.port, handler,
            tls=services.tls,
            implicit_tls=conf.tls == "implicit",
            max_connections=limits.max_connections,
            max_per_ip=limits.max_connections_per_ip,
            reject=reject,
        ))
    return listeners


def build_scheduler(services: Services) -> Scheduler | None:
    """The outbound queue's delivery loop, when enabled; listed in ``extras["outbound"]``
    so front ends can wake it when they queue mail."""
    if not services.settings.delivery.enabled:
        return None
    from mailstead.delivery.scheduler import Scheduler

    scheduler = Scheduler(services.store, services.settings)
    services.extras["outbound"] = scheduler
    return scheduler


def connect_outbound(services: Services, scheduler: Scheduler | None) -> None:
    """Give SMTP's deliverer the DKIM signer and the scheduler's wake-up (issue 4)."""
    deliverer = getattr(services.extras.get("smtp"), "deliverer", None)
    if deliverer is None:
        return
    if services.settings.dkim.enabled:
        from mailstead.delivery.dkim import Signer

        deliverer.signer = Signer(services.settings.data_dir)
    if scheduler is not None:
        deliverer.on_queued = scheduler.wake


async def _collect_garbage_forever(store: Store, grace: float) -> None:
    while True:
        await asyncio.sleep(GC_INTERVAL_SECONDS)
        try:
            removed = await store.collect_garbage(grace)
        except Exception as exc:  # keep serving; the next round retries
            log.error("garbage collection failed: %s", exc)
        else:
            if removed:
                log.info("garbage collection removed %d unreferenced bodies", removed)


class RunningServer:
    """The wired server: store open, listeners accepting. Shared by ``serve`` and tests."""

    def __init__(self, services: Services, group: ListenerGroup) -> None:
        self.services = services
        self.group = group
        self._gc_task: asyncio.Task[None] | None = None
        self.scheduler: Scheduler | None = None  # outbound delivery (issue 4)

    @classmethod
    async def start(
        cls, settings: Settings, *, bootstrap_output: TextIO | None = None
    ) -> RunningServer:
        """Open everything and start accepting; with ``bootstrap_output``, an empty store
        gets its first domain and postmaster, and the client table is written there."""
        from mailstead.cli.bootstrap import bootstrap_if_empty, format_client_table

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tls = prepare_tls(settings)
        store = build_store(settings)
        await store.open()
        try:
            if bootstrap_output is not None:
                first = await bootstrap_if_empty(store, settings)
                if first is not None:
                    bootstrap_output.write(
                        format_client_table(settings, first.user, first.password)
                    )
                    bootstrap_output.flush()
            throttle = Throttle(ThrottlePolicy(
                delay_after=settings.auth.max_failures,
                lock_after=settings.auth.lockout_failures,
                window=float(settings.auth.window_seconds),
            ))
            authenticator = Authenticator(store, throttle, password_policy(settings))
            services = Services(settings, store, authenticator, tls)
            scheduler = build_scheduler(services)
            group = ListenerGroup(build_listeners(services))
            connect_outbound(services, scheduler)
            await group.start()
            if scheduler is not None:
                await scheduler.start()
        except BaseException:
            await store.close()
            raise
        running = cls(services, group)
        running.scheduler = scheduler
        running._gc_task = asyncio.create_task(
            _collect_garbage_forever(store, float(settings.store.gc_grace_seconds))
        )
        return running

    @property
    def store(self) -> Store:
        return self.services.store

    def port(self, listener_name: str) -> int:
        for listener in self.group.listeners:
            if listener.name == listener_name:
                return listener.port
        raise KeyError(f"listener {listener_name} is not running")

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, drain sessions, then shut the services down."""
        try:
            await self.group.stop(grace)
        finally:
            await self.shutdown_services()

    async def shutdown_services(self) -> None:
        """Stop background work and close the store (listeners already stopped)."""
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        if self._gc_task is not None:
            self._gc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None
        await self.services.store.close()


async def run_server(settings: Settings, *, first_run_output: TextIO) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    setup_logging(settings.log.level)
    running = await RunningServer.start(settings, bootstrap_output=first_run_output)
    loop = asyncio.get_running_loop()
    running.group.install_signal_handlers(loop, on_reload=running.services.tls.reload)
    pid_file = settings.data_dir / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    log.info("mailstead ready (%s, data in %s)", settings.hostname, settings.data_dir)
    try:
        await running.group.serve_forever()  # returns after SIGTERM and the drain
    finally:
        running.group.remove_signal_handlers(loop)
        await running.shutdown_services()
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    log.info("mailstead stopped")
    return 0
