"""Accept connections for one protocol endpoint, enforce caps, and shut down gracefully.

A :class:`Listener` turns each accepted socket into a :class:`Stream` and runs the protocol's
handler in its own task. It owns what every protocol needs the same way:

- connection caps (total and per client address), answered through the protocol's
  ``reject`` hook so SMTP can say ``421 4.7.0`` and IMAP ``* BYE``;
- implicit TLS (the handshake happens here, with the context current at accept time, so a
  certificate reload reaches new connections without restarting the listener);
- one "connect" and one "disconnect" log line per connection, and a one-line error when a
  handler fails, which never reaches the client or the other sessions;
- drain on shutdown: stop accepting, let sessions finish for a grace period, cancel the rest.

:class:`ListenerGroup` runs several listeners as one server: :meth:`ListenerGroup.request_stop`
begins a graceful stop and :meth:`ListenerGroup.reload` runs a reload callback; the process's
signals reach them through :mod:`mailstead.net.signals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import cast

from mailstead.core import metrics
from mailstead.core.errors import ConfigError
from mailstead.core.log import new_session_id
from mailstead.net.stream import Stream, StreamError, TLSHandshakeError
from mailstead.net.tls import TLSContexts

Handler = Callable[[Stream], Awaitable[None]]
RejectHook = Callable[[Stream, str], Awaitable[None]]
ReloadHook = Callable[[], object]

_REJECT_TIMEOUT = 5.0
_CANCEL_TIMEOUT = 5.0


def client_key(ip: str) -> str:
    """Who a connection counts against for the per-address caps: an IPv4 address
    (IPv4-mapped IPv6 too), or an IPv6 /64, the unit one subscriber usually gets (one
    host can take any number of addresses in it, so per address would cap nothing)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class _SilentUntilTLS(asyncio.StreamReaderProtocol):
    """Implicit TLS: the client's first bytes are its ClientHello, and they belong to the
    TLS layer ``Stream.start_tls`` puts in place, not to the stream's plain-text buffer
    (which drops whatever it holds there, as pipelined plain text must be dropped after
    STARTTLS). That the handler reached the handshake before the first read was an
    accident of asyncio's callback order (uvloop reads first, decision 0030); reading
    stays paused until the handshake resumes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.ReadTransport, transport).pause_reading()
        super().connection_made(transport)


def _bind_hosts(host: str | Sequence[str]) -> list[str] | None:
    """Map configured hosts to what asyncio binds.

    asyncio sets IPV6_V6ONLY on every IPv6 socket, so "::" alone would not accept IPv4; we
    bind "0.0.0.0" beside it. "" and "*" mean every interface (asyncio's None).
    """
    hosts = [host] if isinstance(host, str) else list(host)
    if any(h in ("", "*") for h in hosts):
        return None
    out: list[str] = []
    for h in hosts:
        if h == "::" and socket.has_ipv6:
            out += ["::", "0.0.0.0"]
        elif h == "::":
            out.append("0.0.0.0")
        else:
            out.append(h)
    return list(dict.fromkeys(out))


class Listener:
    """One listening endpoint (e.g. "submission" on 587) running ``handler`` per connection."""

    def __init__(
        self,
        name: str,
        host: str | Sequence[str],
        port: int,
        handler: Handler,
        *,
        tls: TLSContexts | None = None,
        implicit_tls: bool = False,
        max_connections: int = 1000,
        max_per_ip: int = 20,
        reject: RejectHook | None = None,
        logger: logging.Logger | None = None,
        idle_timeout: float = 300.0,
        handshake_timeout: float = 30.0,
        backlog: int = 511,
    ) -> None:
        if implicit_tls and tls is None:
            raise ValueError(f"listener {name}: implicit_tls needs tls contexts")
        self.name = name
        self.host = host
        self.handler = handler
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.reject = reject
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self._requested_port = port
        self._backlog = backlog
        self._log = logger or logging.getLogger(f"mailstead.net.{name}")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # every connection task, for drain
        self._active = 0  # admitted sessions (not rejected ones)
        self._per_ip: dict[str, int] = {}
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting; port 0 picks a free port (see :attr:`port`)."""
        self._closing = False
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._protocol,
                _bind_hosts(self.host),
                self._requested_port,
                backlog=self._backlog,
            )
        except OSError as exc:  # in use, not ours to bind, no such address
            raise ConfigError(
                f"cannot listen on {self.host} port {self._requested_port}: "
                f"{exc.strerror or exc}", key=f"listeners.{self.name}",
            ) from None
        self._log.info(
            "listening %s on %s%s",
            self.name,
            ", ".join(_format_sockname(s.getsockname()) for s in self.sockets),
            " (implicit TLS)" if self.implicit_tls else "",
        )

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        if self._server is None:
            return ()
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The bound port (of the first socket when several were bound with port 0)."""
        sockets = self.sockets
        return int(sockets[0].getsockname()[1]) if sockets else self._requested_port

    @property
    def active_count(self) -> int:
        return self._active

    async def stop_accepting(self) -> None:
        """Close the listening sockets; new connects are refused, live sessions go on."""
        self._closing = True
        if self._server is not None:
            # Not wait_closed(): from 3.12 on it also waits for every live connection.
            self._server.close()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for sessions to end, then cancel the rest.

        A cancelled handler sees CancelledError at its current await and may send a goodbye
        in a ``finally``; its stream is closed afterwards. Returns how many were cancelled.
        """
        self._closing = True
        tasks = set(self._tasks)
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
        for task in pending:
            task.cancel()
        if pending:
            self._log.info("%s: cancelled %d session(s) after grace", self.name, len(pending))
            await asyncio.wait(pending, timeout=_CANCEL_TIMEOUT)
        return len(pending)

    async def stop(self, grace: float = 5.0) -> None:
        await self.stop_accepting()
        await self.drain(grace)

    # -- per connection -------------------------------------------------------------------

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        """What ``asyncio.start_server`` makes per connection; on an implicit-TLS listener
        one that reads nothing before the handshake (:class:`_SilentUntilTLS`)."""
        reader = asyncio.StreamReader()
        if self.implicit_tls:
            return _SilentUntilTLS(reader, self._on_connect)
        return asyncio.StreamReaderProtocol(reader, self._on_connect)

    def _admission(self, ip: str) -> str | None:
        """Why a new connection must be refused, or None (checked before counting it)."""
        if self._active >= self.max_connections:
            return "too many connections"
        if self._per_ip.get(ip, 0) >= self.max_per_ip:
            return "too many connections from your address"
        return None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._run_connection(reader, writer)
        except asyncio.CancelledError:
            # Top of the task: asyncio's done-callback would log a cancelled task as an error.
            pass
        finally:
            self._tasks.discard(task)

    async def _run_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stream = Stream(
            reader,
            writer,
            session_id=new_session_id(self.name),
            logger=self._log,
            idle_timeout=self.idle_timeout,
        )
        if self._closing:  # accepted in the instant before the socket closed
            stream.abort()
            return
        ip = client_key(stream.peer[0])
        reason = self._admission(ip)
        if reason is not None:
            await self._reject(stream, reason)
            return

        self._active += 1
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        metrics.CONNECTIONS.labels(self.name).inc()
        metrics.CONNECTIONS_OPEN.labels(self.name).inc()
        loop = asyncio.get_running_loop()
        started = loop.time()
        local = stream.local
        stream.log.info("connect %s local=%s:%d", self.name, local[0], local[1])
        tls = ""
        try:
            if self.implicit_tls and self.tls is not None:
                # RFC 8314 §3: implicit TLS, handshake before any protocol byte.
                await stream.start_tls(self.tls.server_context, self.handshake_timeout)
            tls = stream.tls_info
            await self.handler(stream)
            tls = stream.tls_info
        except asyncio.CancelledError:
            stream.log.info("session cancelled at shutdown")
            raise
        except StreamError as exc:  # peer went away, timed out, failed handshake: routine
            if isinstance(exc, TLSHandshakeError):
                metrics.TLS_HANDSHAKE_FAILURES.labels(self.name).inc()
            stream.log.info("connection ended: %s", exc)
        except Exception as exc:
            stream.log.error("handler failed: %s: %s", type(exc).__name__, exc)
            stream.log.debug("handler traceback", exc_info=True)
        finally:
            tls = stream.tls_info or tls
            await stream.close()
            metrics.CONNECTIONS_OPEN.labels(self.name).dec()
            self._active -= 1
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)
            stream.log.info(
                "disconnect duration=%.3fs tls=%s", loop.time() - started, tls or "none"
            )

    async def _reject(self, stream: Stream, reason: str) -> None:
        stream.log.warning("rejected: %s", reason)
        metrics.CONNECTIONS_REJECTED.labels(self.name).inc()
        try:
            # With implicit TLS a goodbye would cost a full handshake, which is exactly what
            # the cap protects against: close without a word.
            if self.reject is not None and not self.implicit_tls:
                async with asyncio.timeout(_REJECT_TIMEOUT):
                    await self.reject(stream, reason)
                    await stream.drain()
        except (StreamError, TimeoutError):
            pass
        except Exception as exc:
            stream.log.error("reject hook failed: %s: %s", type(exc).__name__, exc)
        finally:
            await stream.close(timeout=1.0)


class ListenerGroup:
    """All listeners of one process: start together, stop together, reload on SIGHUP."""

    def __init__(
        self,
        listeners: Iterable[Listener],
        *,
        grace: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.listeners = list(listeners)
        self.grace = grace
        self._log = logger or logging.getLogger("mailstead.net")
        self._stop_requested = asyncio.Event()
        self._background: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Start every listener; if one fails to bind, close those already started."""
        started: list[Listener] = []
        try:
            for listener in self.listeners:
                await listener.start()
                started.append(listener)
        except BaseException:
            for listener in started:
                await listener.stop_accepting()
            raise

    def request_stop(self, why: str = "requested") -> None:
        self._log.info("shutdown %s: stop accepting, draining for %.1fs", why, self.grace)
        self._stop_requested.set()

    def reload(self, on_reload: ReloadHook) -> None:
        """Run the reload hook (SIGHUP); failures are logged and the old state keeps
        serving."""
        self._log.info("SIGHUP: reloading")
        try:
            result = on_reload()
        except Exception as exc:
            self._log.error("reload failed: %s", exc)
            return
        if asyncio.iscoroutine(result):
            task: asyncio.Task[object] = asyncio.ensure_future(result)
            self._background.add(task)
            task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Task[object]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("reload failed: %s", task.exception())

    @property
    def active_count(self) -> int:
        return sum(listener.active_count for listener in self.listeners)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting everywhere first, then drain all listeners in parallel."""
        for listener in self.listeners:
            await listener.stop_accepting()
        wait = self.grace if grace is None else grace
        await asyncio.gather(*(listener.drain(wait) for listener in self.listeners))
        self._log.info("all listeners stopped")

    async def serve_forever(self) -> None:
        """Serve until :meth:`request_stop` (SIGTERM), then stop gracefully and return."""
        await self._stop_requested.wait()
        await self.stop()
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _format_sockname(name: object) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host = str(name[0])
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    return str(name)
