"""Run the real server for tests: in a background thread, or as a child process.

``ServerThread`` runs exactly the wiring of ``mailstead serve`` (:class:`RunningServer`) on
its own event loop in a thread, with every listener on 127.0.0.1 and an ephemeral port, so
a test can talk to it with blocking stdlib clients (smtplib, imaplib, poplib) and still
inspect the store through :meth:`ServerThread.call`.

``SubprocessServer`` starts ``python -m mailstead serve`` on free ports, for tests that
need a real process to SIGKILL or SIGTERM.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mailstead.auth.passwords import PasswordPolicy, new_password
from mailstead.cli.serve import PID_FILE, RunningServer, Services
from mailstead.config.schema import Settings
from mailstead.core.types import Pop3Policy, SendAs
from mailstead.store.interfaces import Store
from mailstead.store.models import Recipient, User
from mailstead.testing.waiting import poll_until

T = TypeVar("T")

#: argon2id at its cheapest: tests hash many passwords and must stay fast.
TEST_PASSWORD_POLICY = PasswordPolicy(time_cost=1, memory_cost=8, parallelism=1)

LISTENER_NAMES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http",
                  "https")


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def settings_dict_for_tests(data_dir: Path, config: Mapping[str, Any] | None = None,
                       *, port: int | None = 0) -> dict[str, Any]:
    """Settings for a test server: loopback, ephemeral ports, cheap hashing."""
    base: dict[str, Any] = {
        "hostname": "localhost",
        "data_dir": str(data_dir),
        "auth": {
            "argon2_time_cost": TEST_PASSWORD_POLICY.time_cost,
            "argon2_memory_kib": TEST_PASSWORD_POLICY.memory_cost,
            "argon2_parallelism": TEST_PASSWORD_POLICY.parallelism,
        },
        "store": {"gc_grace_seconds": 3600},
        "log": {"level": "debug"},
        # No outbound delivery unless a test asks for it: tests never send to the internet.
        "delivery": {"enabled": False},
        "listeners": {
            name: {"address": "127.0.0.1", **({"port": port} if port is not None else {})}
            for name in LISTENER_NAMES
        },
    }
    return deep_merge(base, config or {})


def build_settings(data: Mapping[str, Any]) -> Settings:
    """Validate like a config file would (so tests catch schema mistakes), without a file."""
    listeners = data.get("listeners", {})
    # Port 0 (ephemeral) is valid for tests though the schema demands 1-65535 for files.
    zero_ports = {n for n, conf in listeners.items() if conf.get("port") == 0}
    cleaned = deep_merge(dict(data), {})
    for name in zero_ports:
        cleaned["listeners"][name]["port"] = 1
    settings = Settings.model_validate(cleaned)
    if zero_ports:
        updates = {
            name: getattr(settings.listeners, name).model_copy(update={"port": 0})
            for name in zero_ports
        }
        settings = settings.model_copy(
            update={"listeners": settings.listeners.model_copy(update=updates)}
        )
    return settings


class ServerThread:
    """The real server on a background event loop; use as a context manager."""

    def __init__(self, tmp_path: Path, config: Mapping[str, Any] | None = None) -> None:
        self.data_dir = tmp_path / "data"
        self.settings = build_settings(settings_dict_for_tests(self.data_dir, config))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-server",
                                        daemon=True)
        self._running: RunningServer | None = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        try:
            self._running = self.call(RunningServer.start(self.settings))
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._running is not None:
                self.call(self._running.stop(grace=2.0))
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def running(self) -> RunningServer:
        assert self._running is not None, "server not started"
        return self._running

    @property
    def services(self) -> Services:
        return self.running.services

    @property
    def store(self) -> Store:
        return self.running.store

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def port(self, listener_name: str) -> int:
        return self.running.port(listener_name)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def add_user(self, address: str, password: str, *, quota_bytes: int = 0,
                 pop3_policy: Pop3Policy | str | None = None, plus_folders: bool = False,
                 send_as: SendAs = SendAs.OWN, scram: bool | None = None) -> User:
        """Create the account (and its domain if needed) with a cheap password hash, and
        SCRAM keys if ``scram`` (by default: if the server has SCRAM on); ``scram=False``
        makes an account from before SCRAM was switched on."""
        domain = address.rpartition("@")[2].lower()
        auth = self.settings.auth
        with_keys = auth.scram if scram is None else scram
        secret = new_password(password, TEST_PASSWORD_POLICY,
                              auth.scram_iterations if with_keys else None)

        async def create() -> User:
            store = self.store
            if not await store.has_domain(domain):
                await store.add_domain(domain)
            user = await store.add_user(
                address, secret.hash, quota_bytes=quota_bytes, scram=secret.scram
            )
            if pop3_policy is not None:
                await store.set_pop3_policy(address, Pop3Policy(pop3_policy))
            if plus_folders:
                await store.set_plus_folders(address, True)
            if send_as is not SendAs.OWN:
                await store.set_send_as(address, send_as)
            return await store.get_user(user.id)

        return self.call(create())

    def deliver(self, user_id: int, raw: bytes) -> None:
        """Put a message in the user's INBOX as SMTP delivery would (one store transaction)."""
        self.call(self.store.deliver(raw, [Recipient(user_id)]))

    def inbox_count(self, user_id: int) -> int:
        async def count() -> int:
            box = await self.store.get_mailbox(user_id, "INBOX")
            return box.message_count

        return self.call(count())

    def inbox_messages(self, address: str) -> list[bytes]:
        """The bodies in the account's INBOX, in UID order."""

        async def read() -> list[bytes]:
            user = await self.store.find_user(address)
            assert user is not None, f"no account {address}"
            box = await self.store.get_mailbox(user.id, "INBOX")
            metas = await self.store.list_messages(box.id)
            return [await self.store.read_blob(m.blob_id) for m in metas]

        return self.call(read())

    def wait_for_inbox(self, address: str, count: int, timeout: float = 30.0) -> list[bytes]:
        """Poll until the INBOX holds ``count`` messages (mail sent by another server)."""
        return poll_until(
            lambda: got if len(got := self.inbox_messages(address)) >= count else None,
            timeout=timeout,
            failure=lambda: f"{address} has {len(self.inbox_messages(address))} messages, "
            f"expected {count}",
        )

    def wait_for(self, coro: Callable[[], Coroutine[Any, Any, T | None]],
                 timeout: float = 30.0, what: str = "the condition") -> T:
        """Poll ``coro()`` on the server's loop until it returns something other than None
        (work the server finishes after a client got its answer: the outbound queue after
        the remote said 250, a commit seen by another process)."""
        return poll_until(lambda: self.call(coro()), timeout=timeout,
                          failure=lambda: f"{what} did not happen within {timeout}s")

    @property
    def cert_path(self) -> Path:
        return self.settings.cert_path

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _worker_ports() -> range:
    """The ports this test process draws from: 10000 up to the kernel's ephemeral range, or,
    under pytest-xdist, this worker's own slice of it. ``_handed_out`` keeps one process from
    drawing a port twice; between workers, which cannot see each other's draws, only disjoint
    slices do: two workers could otherwise both find a port free before either child binds it.
    """
    low, _ = _ephemeral_range()
    ports = range(10000, max(low, 10001))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if 1 < count <= len(ports) and worker.startswith("gw") and worker[2:].isdigit():
        size = len(ports) // count
        start = ports.start + int(worker[2:]) % count * size
        ports = range(start, start + size)
    return ports


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now, for a server that binds it later (a child process, or a
    restart after SIGKILL on the same port). Taken below the kernel's ephemeral range:
    a port from that range can meanwhile become the source port of some outgoing
    connection (the tests open thousands), and the later bind then fails.

    Nothing is bound between this call and the child's bind, so a port is never handed out
    twice by one test process (two listeners of one server once drew the same port), nor by
    two pytest-xdist workers (``_worker_ports``)."""
    ports = _worker_ports()
    for _ in range(50):
        candidate = random.choice(ports)
        if candidate in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            _handed_out.add(candidate)
            return candidate
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SubprocessServer:
    """``python -m mailstead serve`` in a child process, on free loopback ports."""

    def __init__(self, tmp_path: Path, config: Mapping[str, Any] | None = None) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        data = settings_dict_for_tests(self.data_dir, config, port=None)
        for name in LISTENER_NAMES:
            data["listeners"][name].setdefault("port", free_port())
        self.settings = build_settings(data)
        self.config_path = tmp_path / "mailstead.toml"
        self.config_path.write_text(self.settings.effective_toml())
        self.log_path = tmp_path / "server.log"
        self.first_run_path = tmp_path / "first-run.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def port(self, listener_name: str) -> int:
        return int(getattr(self.settings.listeners, listener_name).port)

    def start(self, timeout: float = 30.0) -> SubprocessServer:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("MAILSTEAD_DATA", None)
        env.pop("MAILSTEAD_CONFIG", None)
        with open(self.log_path, "ab") as log, open(self.first_run_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailstead", "serve", "--config", str(self.config_path)],
                stdout=out, stderr=log, env=env,
            )
        deadline = time.monotonic() + timeout
        pid_file = self.data_dir / PID_FILE
        while time.monotonic() < deadline:
            if pid_file.is_file() and pid_file.read_text().strip() == str(self.proc.pid):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def __enter__(self) -> SubprocessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
