"""The composition root: the one place that picks concrete backends and wires the server.

settings -> data dir and certificate -> store -> first-run bootstrap -> :class:`Services`
(authenticator, router, outbound scheduler, DKIM signer, deliverer) -> one front end per
protocol -> one :class:`Listener` per enabled listener -> serve until SIGTERM (drain,
exit 0). SIGHUP reloads the TLS certificate, from the paths the configuration file names
now; with ``[acme]`` on, a background task keeps an ACME certificate current.

Every dependency is passed to a constructor, here, in the order things need each other:
nothing is looked up by name and nothing is set on an object after it was built. A front
end is any object with an ``endpoint(name, listener)`` method (:class:`FrontEnd`); a new
protocol plugs in by being built in :func:`build_front_ends` and named there for its
listeners. No package below ``cli/`` imports ``cli/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from mailstead.acme.challenges import PendingChallenges
from mailstead.acme.coherence import check_acme
from mailstead.acme.files import ACMEFiles
from mailstead.acme.renewal import CertificateKeeper
from mailstead.admin.dns import mta_sts_policy
from mailstead.admin.service import Admin
from mailstead.auth.authenticator import Authenticator, ScramPolicy
from mailstead.auth.password_rules import PasswordRules, check_new_password
from mailstead.auth.passwords import PasswordPolicy
from mailstead.auth.throttle import Throttle, ThrottlePolicy
from mailstead.cli.bootstrap import bootstrap_if_empty, format_client_table, no_domain_yet
from mailstead.config.endpoints import client_endpoints
from mailstead.config.schema import ListenerSettings, Settings
from mailstead.core import metrics
from mailstead.core.budget import InputBudget
from mailstead.core.errors import ConfigError, MailsteadError, NotFound
from mailstead.core.log import setup_logging
from mailstead.core.spool import SpoolDir
from mailstead.delivery.deliver import Deliverer
from mailstead.delivery.dkim import Signer
from mailstead.delivery.router import Router
from mailstead.delivery.routes import RouteTable
from mailstead.delivery.scheduler import Scheduler
from mailstead.delivery.vacation import Responder
from mailstead.http.api.app import APIServices
from mailstead.http.app import HTTPServices, build_app
from mailstead.http.jmap.server import account_id, jmap_services
from mailstead.http.jmap.vapid import VapidKey
from mailstead.http.jmap.webpush import WebPushSender, outbound_policy, poster
from mailstead.http.server import HTTPServer
from mailstead.imap.server import IMAPServer
from mailstead.imap.sort import stored_sort_keys
from mailstead.mime import searchtext, stored
from mailstead.mime.parse import parse_message
from mailstead.net.listener import Handler, Listener, ListenerGroup, RejectHook
from mailstead.net.signals import ProcessSignals
from mailstead.net.tls import TLSContexts, ensure_self_signed
from mailstead.pop3.server import POP3Server
from mailstead.smtp.server import SMTPServer
from mailstead.store.interfaces import Store, TextIndexer
from mailstead.store.models import IndexedText
from mailstead.store.sql import backup as backups
from mailstead.store.sql.sqlite import SQLiteStore

log = logging.getLogger("mailstead.serve")

GC_INTERVAL_SECONDS = 3600.0
#: How often the index rows of deleted mail are removed (decision 0027).
PURGE_INTERVAL_SECONDS = 10.0
#: How long a JMAP upload is kept for a call that uses it (docs/jmap.md).
UPLOAD_LIFETIME = timedelta(hours=24)
#: The server's VAPID key pair for JMAP Web Push (http/jmap/vapid.py), in the data dir.
VAPID_KEY_FILE = "webpush-vapid.pem"
#: Written in the data dir once every listener accepts; removed on a clean stop.
PID_FILE = "mailstead.pid"
#: Held locked (flock) by the one server of a data directory for as long as it runs.
LOCK_FILE = "mailstead.lock"


def restore_store(settings: Settings, source: Path) -> int:
    """Put the store of the backup in ``source`` into the (empty) data directory; the body
    files copied. The backend names its files, so this lives beside build_store."""
    return backups.restore(source, settings.data_dir)


def make_data_dir(data_dir: Path) -> None:
    """The data directory, private to the server's user (0700): it holds every message,
    the password hashes and the private keys. Files in it are made 0600 by the umask the
    command line sets (cli/main.py)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # not ours to change: leave it as it is
        data_dir.chmod(0o700)


class AlreadyServing(MailsteadError):
    """Another server has this data directory."""


def lock_data_dir(data_dir: Path) -> int:
    """Take the data directory for this process: the file descriptor of its lock, held
    until the process ends (the kernel lets go of it even after SIGKILL). Two servers on
    one directory would each keep their own view of the mailboxes (decision 0003), and the
    second once removed the first one's pid file; the second now refuses to start."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            holder = f" (pid {(data_dir / PID_FILE).read_text().strip()})"
        except OSError:
            holder = ""
        raise AlreadyServing(
            f"another mailstead is already serving {data_dir}{holder}; stop it first"
        ) from None
    return fd


def parse_structure(raw: bytes) -> bytes:
    """The store's injected parser: parse once at append, keep the stored structure."""
    return stored.encode(parse_message(raw))


def text_indexer(limit: int) -> TextIndexer:
    """The store's injected full-text indexer: the text SEARCH scans (mime/searchtext.py),
    at most ``limit`` characters per column, in the store's columns."""

    def index(raw: bytes, structure: bytes) -> IndexedText:
        made = searchtext.index_text(raw, stored.StoredStructure(structure), limit)
        return IndexedText(dict(zip(searchtext.COLUMNS, made.values, strict=True)), made.complete)

    return index


# -- the store -------------------------------------------------------------------------------


def build_store(settings: Settings) -> Store:
    """The configured backend, not yet opened. The only place a concrete store is named."""
    return SQLiteStore(
        settings.data_dir,
        parse=parse_structure,
        indexer=text_indexer(settings.store.index_text_limit),
        sort_keys=stored_sort_keys,
    )


@contextlib.asynccontextmanager
async def open_store(settings: Settings, *, create: bool = True) -> AsyncIterator[Store]:
    """The store opened for the length of the block (the admin commands). With
    ``create=False`` a missing data directory is an error instead of a new empty store."""
    if not create and not settings.data_dir.is_dir():
        raise NotFound(
            f"no mailstore in {settings.data_dir} (add a domain or start the server first)"
        )
    make_data_dir(settings.data_dir)
    store = build_store(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def build_admin(store: Store, settings: Settings) -> Admin:
    """The admin operations over ``store``, for the command line and the admin API alike."""
    rules = password_rules(settings)
    return Admin(store, settings, password_policy(settings),
                 check_password=lambda password, address: check_new_password(
                     password, address, rules))


def password_policy(settings: Settings) -> PasswordPolicy:
    """The argon2id cost for new hashes (existing hashes keep the cost they record)."""
    return PasswordPolicy(
        time_cost=settings.auth.argon2_time_cost,
        memory_cost=settings.auth.argon2_memory_kib,
        parallelism=settings.auth.argon2_parallelism,
    )


def password_rules(settings: Settings) -> PasswordRules:
    """What a password a person chooses must be (``[auth]`` password_* settings)."""
    return PasswordRules(
        min_length=settings.auth.password_min_length,
        check_common=settings.auth.password_check_common,
    )


def prepare_tls(settings: Settings, challenges: PendingChallenges | None = None) -> TLSContexts:
    """Use the configured certificate, or make a self-signed one on first start.

    A certificate at the default place in the data dir is ours to create; one configured
    elsewhere is the admin's, and its absence is a configuration error. With ACME on, this
    is the certificate served until the ACME one exists, and the contexts answer
    TLS-ALPN-01 challenges (``challenges``).
    """
    cert, key, generated = _tls_files(settings)
    if generated:
        if ensure_self_signed(cert, key, settings.hostname):
            log.info("created a self-signed certificate for %s in %s", settings.hostname,
                     cert.parent)
    else:
        _require_files(cert, key)
    return TLSContexts(cert, key, challenges=challenges)


def build_certificate_keeper(
    settings: Settings, tls: TLSContexts, challenges: PendingChallenges
) -> CertificateKeeper:
    """The ACME renewal task's object; it serves a stored ACME certificate at once."""
    files = ACMEFiles(settings.data_dir)
    keeper = CertificateKeeper(settings.acme, settings.acme_names, files, tls, challenges)
    keeper.install_current()
    return keeper


def reload_certificate(services: Services, load: Callable[[], Settings] | None) -> None:
    """SIGHUP: serve the certificate files as they are now. With ACME on and a certificate
    issued, that is the ACME one; otherwise the ``[tls]`` pair the configuration file
    names now (``load`` reads it again), so pointing ``tls.cert`` and ``tls.key`` at new
    files takes effect. On any problem the old certificate keeps serving and the
    ConfigError raised names the key and the file."""
    if services.acme is not None and services.acme.install_current():
        return
    settings = services.settings
    if load is not None:
        try:
            settings = load()
        except ConfigError as exc:
            raise ConfigError(f"{exc}; the certificate in use is kept") from None
    cert, key, generated = _tls_files(settings)
    try:
        if not generated:
            _require_files(cert, key)
        changed = services.tls.reload(cert, key)
    except ConfigError as exc:
        name = exc.key or ("tls.cert" if exc.file == str(cert) else "tls.key")
        raise ConfigError(f"{exc.reason}; the certificate in use is kept", file=exc.file,
                          key=name) from None
    log.info("TLS certificate reloaded from %s%s", cert, " (a new path)" if changed else "")


def _tls_files(settings: Settings) -> tuple[Path, Path, bool]:
    """(certificate, key, whether they are the generated pair in the data directory)."""
    default_dir = (settings.data_dir / "tls").absolute()
    cert, key = settings.cert_path.absolute(), settings.key_path.absolute()
    return cert, key, cert == default_dir / "cert.pem" and key == default_dir / "key.pem"


def _require_files(cert: Path, key: Path) -> None:
    for name, path in (("tls.cert", cert), ("tls.key", key)):
        if not path.is_file():
            raise ConfigError(f"file {path} does not exist", key=name)
        if not os.access(path, os.R_OK):
            raise ConfigError(f"file {path} is not readable by this user", key=name)


def check_for_serve(settings: Settings) -> list[str]:
    """Every check ``serve`` makes of the configuration before it opens anything, so
    ``config check`` refuses what ``serve`` would: the certificate and key (present,
    readable, parseable, matching), the outbound routes and relay, the ``[acme]`` section.
    Raises ConfigError naming the key; returns the warnings (``serve`` logs them)."""
    cert, key, generated = _tls_files(settings)
    if not generated or cert.exists() or key.exists():  # a pair serve will not create
        _require_files(cert, key)
        try:
            TLSContexts(cert, key)
        except ConfigError as exc:
            name = "tls.cert" if exc.file == str(cert) else "tls.key"
            raise ConfigError(exc.reason, file=exc.file, key=name) from None
    if settings.delivery.enabled:
        RouteTable(settings.delivery)
    return check_acme(settings)


# -- services and front ends -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Services:
    """What the front ends are built from; made once per process by :func:`build_services`."""

    settings: Settings
    store: Store
    tls: TLSContexts
    authenticator: Authenticator
    router: Router
    deliverer: Deliverer
    scheduler: Scheduler | None  # None when outbound delivery is off ([delivery] enabled)
    spools: SpoolDir  # message data on its way in, and its memory and disk budgets
    acme: CertificateKeeper | None = None  # None when [acme] is off
    web_push: WebPushSender | None = None  # JMAP PushSubscriptions; None when JMAP is off


def build_services(
    settings: Settings, store: Store, tls: TLSContexts, acme: CertificateKeeper | None = None
) -> Services:
    """Everything below the front ends, each given what it depends on."""
    throttle = Throttle(ThrottlePolicy(
        delay_after=settings.auth.max_failures,
        lock_after=settings.auth.lockout_failures,
        window=float(settings.auth.window_seconds),
    ))
    authenticator = Authenticator(
        store, throttle, password_policy(settings),
        scram=ScramPolicy(settings.auth.scram_iterations) if settings.auth.scram else None,
        scram_keys=store,
    )
    router = Router(store, settings.smtp.plus_separator)
    scheduler = (
        Scheduler(store, settings, router=router) if settings.delivery.enabled else None
    )
    # Mail queued by SMTP is tried at once, not at the scheduler's next poll.
    deliverer = build_deliverer(settings, store, router,
                                on_queued=scheduler.wake if scheduler is not None else None)
    limits = settings.limits
    spools = SpoolDir(
        settings.data_dir / "spool",
        threshold=limits.spool_threshold,
        memory=InputBudget(limits.max_input_in_flight),
        disk=InputBudget(limits.max_spool_in_flight, "limits.max_spool_in_flight",
                         "message data in spool files"),
        per_client=limits.max_spool_per_client,
    )
    web_push = (
        WebPushSender(store, account_id=account_id,
                      post=poster(outbound_policy(settings.jmap)),
                      vapid=VapidKey.load_or_create(settings.data_dir / VAPID_KEY_FILE,
                                                    f"mailto:postmaster@{settings.hostname}"))
        if settings.jmap.enabled else None
    )
    return Services(settings, store, tls, authenticator, router, deliverer, scheduler, spools,
                    acme, web_push)


def build_deliverer(
    settings: Settings, store: Store, router: Router, *,
    on_queued: Callable[[], None] | None = None,
) -> Deliverer:
    """The one delivery path: SMTP's, and ``mailstead sendmail``'s (which has no
    scheduler in its process to wake, decision 0014). Every local delivery is shown to
    the vacation responder, whose replies go out through a second deliverer with no
    responder: an auto-reply is never answered."""
    signer = Signer(settings.data_dir) if settings.dkim.enabled else None
    replies = Deliverer(store, router, signer=signer, on_queued=on_queued)
    responder = Responder(store, router, replies, hostname=settings.hostname)
    return Deliverer(store, router, signer=signer, on_queued=on_queued, responder=responder)


class FrontEnd(Protocol):
    """A protocol server. It serves one or more listeners and builds, for each, the handler
    of its connections and what to say when a connection is refused (over the caps)."""

    def endpoint(self, name: str, conf: ListenerSettings) -> tuple[Handler, RejectHook]: ...


def build_front_ends(services: Services) -> dict[str, FrontEnd]:
    """Listener name -> the front end that serves it. One server per protocol serves all
    of its listeners, so what they share is shared across ports: SMTP's router and
    deliverer, IMAP's \\Recent tracker, POP3's maildrop locks (``[IN-USE]`` on 110 and
    995 alike)."""
    settings, tls = services.settings, services.tls
    smtp = SMTPServer(services.deliverer, services.authenticator, settings, tls,
                      spools=services.spools)
    imap = IMAPServer(services.store, services.authenticator, settings, tls,
                      spools=services.spools)
    pop3 = POP3Server(services.store, services.authenticator, settings, tls)
    admin = build_admin(services.store, settings)
    api = APIServices(admin, services.authenticator,
                      allow_plaintext=settings.auth.allow_plaintext)
    http = HTTPServer(build_app(HTTPServices(
        services.store, services.scheduler, client_endpoints(settings), services.store,
        settings.http.metrics_from, api=api, mta_sts=mta_sts_policy(settings),
        acme=services.acme.pending if services.acme is not None else None,
        jmap=jmap_services(settings, services.store, services.authenticator,
                           services.deliverer, services.web_push, tokens=admin,
                           vapid_key=services.web_push.vapid.application_server_key
                           if services.web_push.vapid is not None else None)
        if services.web_push is not None else None,
    )), settings.http)
    return {
        "smtp": smtp,
        "submission": smtp,
        "submissions": smtp,
        "imap": imap,
        "imaps": imap,
        "pop3": pop3,
        "pop3s": pop3,
        "http": http,
        "https": http,
    }


def build_listeners(services: Services, front_ends: Mapping[str, FrontEnd]) -> list[Listener]:
    """One listener per enabled ``[listeners.<name>]``, served by its front end."""
    settings = services.settings
    limits = settings.limits
    listeners: list[Listener] = []
    for name, conf in settings.listeners.items():
        if not conf.enabled:
            continue
        handler, reject = front_ends[name].endpoint(name, conf)
        listeners.append(Listener(
            name, conf.address, conf.port, handler,
            tls=services.tls,
            implicit_tls=conf.tls == "implicit",
            max_connections=limits.max_connections,
            max_per_ip=limits.max_connections_per_ip,
            reject=reject,
        ))
    return listeners


async def index_in_background(store: Store) -> int:
    """At start-up: index the bodies stored before the full-text index existed, a batch at
    a time, while the server already serves (SEARCH scans them meanwhile, so answers stay
    exact). New messages are indexed when they are stored. Returns how many were indexed."""
    indexed = 0
    while True:
        try:
            report = await store.index_missing()
        except Exception as exc:  # keep serving: searches scan what is not indexed
            log.error("full-text indexing failed: %s", exc)
            return indexed
        if not report.indexed and not report.skipped:
            if indexed:
                log.info("full-text index: %d stored messages indexed", indexed)
            return indexed
        indexed += report.indexed


async def purge_index(store: Store) -> int:
    """Remove the index rows of deleted mail, a small transaction at a time, so other
    writes go between them. Returns how many bodies' notes were handled."""
    handled = 0
    while True:
        try:
            done = await store.purge_index()
        except Exception as exc:  # keep serving; the next round retries
            log.error("full-text index purge failed: %s", exc)
            return handled
        if not done:
            return handled
        handled += done


async def _collect_garbage_forever(store: Store, grace: float) -> None:
    """The store's background upkeep: the full-text catch-up once, then the index rows of
    deleted mail every few seconds, and hourly the collection of unreferenced bodies and
    of old JMAP uploads and expired auto-reply records."""
    since_gc = 0.0
    await index_in_background(store)
    while True:
        await purge_index(store)
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
        since_gc += PURGE_INTERVAL_SECONDS
        if since_gc < GC_INTERVAL_SECONDS:
            continue
        since_gc = 0.0
        try:
            removed = await store.collect_garbage(grace)
        except Exception as exc:  # keep serving; the next round retries
            log.error("garbage collection failed: %s", exc)
        else:
            if removed:
                log.info("garbage collection removed %d unreferenced bodies", removed)
        await expire_uploads(store)
        await expire_auto_replies(store)


async def expire_auto_replies(store: Store) -> int:
    """Forget the senders whose vacation period ended (RFC 5230 §4.2): they get the next
    reply anyway, and the table stays the size of the current periods."""
    try:
        expired = await store.expire_auto_replies(datetime.now(UTC))
    except Exception as exc:  # keep serving; the next round retries
        log.error("expiring auto-reply records failed: %s", exc)
        return 0
    if expired:
        log.info("forgot %d expired auto-reply records", expired)
    return expired


async def expire_uploads(store: Store) -> int:
    """Forget JMAP uploads older than UPLOAD_LIFETIME (RFC 8620 §6.1 asks for an hour at
    least; a day lets a slow client finish a draft)."""
    try:
        expired = await store.expire_uploads(datetime.now(UTC) - UPLOAD_LIFETIME)
    except Exception as exc:  # keep serving; the next round retries
        log.error("expiring uploads failed: %s", exc)
        return 0
    if expired:
        log.info("expired %d JMAP uploads", expired)
    return expired


class RunningServer:
    """The wired server: store open, listeners accepting. Shared by ``serve`` and tests."""

    def __init__(
        self, services: Services, group: ListenerGroup, gc_task: asyncio.Task[None],
        lock: int, acme_task: asyncio.Task[None] | None = None,
    ) -> None:
        self.services = services
        self.group = group
        self._gc_task = gc_task
        self._acme_task = acme_task
        self._lock = lock  # the data directory's (lock_data_dir), let go at shutdown
        self._shut_down = False

    @classmethod
    async def start(
        cls, settings: Settings, *, bootstrap_output: TextIO | None = None
    ) -> RunningServer:
        """Open everything and start accepting; with ``bootstrap_output``, an empty store
        gets its first domain and postmaster, and the client table is written there."""
        make_data_dir(settings.data_dir)
        lock = lock_data_dir(settings.data_dir)
        metrics.UP_SINCE.set_to_current_time()
        try:
            for warning in check_acme(settings):
                log.warning("%s", warning)
            challenges = (PendingChallenges(ACMEFiles(settings.data_dir).challenges)
                          if settings.acme.enabled else None)
            tls = prepare_tls(settings, challenges)
            keeper = (build_certificate_keeper(settings, tls, challenges)
                      if challenges is not None else None)
            store = build_store(settings)
            await store.open()
        except BaseException:
            os.close(lock)
            raise
        try:
            services = build_services(settings, store, tls, keeper)
            # Messages whose transfer a crash cut short were never acknowledged.
            services.spools.clear()
            group = ListenerGroup(build_listeners(services, build_front_ends(services)))
            await group.start()
            if bootstrap_output is not None:
                # Only once every port is bound: a clash must not spend the one-time
                # password of an account that a failed start created.
                first = await bootstrap_if_empty(build_admin(store, settings), settings)
                if first is not None:
                    bootstrap_output.write(
                        format_client_table(settings, first.user, first.password)
                    )
                elif not await store.list_domains():
                    log.warning("no mail domain yet: run mailstead setup DOMAIN")
                    bootstrap_output.write(no_domain_yet(settings))
                    bootstrap_output.flush()
            if services.scheduler is not None:
                await services.scheduler.start()
            if services.web_push is not None:
                await services.web_push.start()
        except BaseException:
            await store.close()
            os.close(lock)
            raise
        gc_task = asyncio.create_task(
            _collect_garbage_forever(store, float(settings.store.gc_grace_seconds))
        )
        # After the listeners: the ACME server validates against them.
        acme_task = asyncio.create_task(keeper.run()) if keeper is not None else None
        return cls(services, group, gc_task, lock, acme_task)

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def scheduler(self) -> Scheduler | None:
        return self.services.scheduler

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
        """Stop background work and close the store (listeners already stopped). Once."""
        if self._shut_down:
            return
        self._shut_down = True
        if self.services.scheduler is not None:
            await self.services.scheduler.stop()
        if self.services.web_push is not None:
            await self.services.web_push.stop()
        for task in (self._gc_task, self._acme_task):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.services.store.close()
        os.close(self._lock)


async def run_server(
    settings: Settings, *, first_run_output: TextIO, signals: ProcessSignals,
    reload_settings: Callable[[], Settings] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code. ``reload_settings`` reads
    the configuration again for SIGHUP (:func:`reload_certificate`)."""
    setup_logging(settings.log.level, fmt=settings.log.format)
    running = await RunningServer.start(settings, bootstrap_output=first_run_output)
    group, services = running.group, running.services
    signals.attach(asyncio.get_running_loop(), on_stop=group.request_stop,
                   on_reload=lambda: group.reload(
                       lambda: reload_certificate(services, reload_settings)))
    pid_file = settings.data_dir / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    log.info("mailstead ready (%s, data in %s)", settings.hostname, settings.data_dir)
    try:
        await running.group.serve_forever()  # returns after SIGTERM and the drain
    finally:
        signals.detach()
        await running.shutdown_services()
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    log.info("mailstead stopped")
    return 0
