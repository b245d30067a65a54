"""Listener over real loopback sockets: caps, handler failures, drain, signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mailstead
from mailstead.net.listener import Listener, ListenerGroup, client_key
from mailstead.net.stream import Stream
from mailstead.net.tls import TLSContexts
from mailstead.testing.waiting import eventually


async def echo(stream: Stream) -> None:
    stream.write(b"hello\r\n")
    while True:
        line = await stream.readline(1000)
        stream.write(line)
        await stream.drain()


async def reject_421(stream: Stream, reason: str) -> None:
    stream.write(f"421 4.7.0 {reason}\r\n".encode())


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def greeted(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(port)
    assert await asyncio.wait_for(reader.readline(), 5) == b"hello\r\n"
    return reader, writer


async def test_per_ip_cap_rejects_through_hook() -> None:
    listener = Listener("smtp", "127.0.0.1", 0, echo, max_per_ip=2, reject=reject_421)
    await listener.start()
    try:
        clients = [await greeted(listener.port) for _ in range(2)]
        assert listener.active_count == 2
        reader, rejected = await connect(listener.port)
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line == b"421 4.7.0 too many connections from your address\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then closed
        rejected.close()
        # A slot frees up when one client leaves.
        clients[0][1].close()
        await eventually(lambda: listener.active_count < 2, what="the first client leaving")
        _, writer = await greeted(listener.port)
        writer.close()
        clients[1][1].close()
    finally:
        await listener.stop(grace=1)


async def test_max_connections_default_reject_just_closes() -> None:
    listener = Listener("imap", "127.0.0.1", 0, echo, max_connections=1)
    await listener.start()
    try:
        _, first = await greeted(listener.port)
        reader, rejected = await connect(listener.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        rejected.close()
        first.close()
    finally:
        await listener.stop(grace=1)


async def test_handler_exception_is_logged_and_server_lives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky(stream: Stream) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom in handler")
        await echo(stream)

    caplog.set_level(logging.INFO, logger="mailstead")
    listener = Listener("pop3", "127.0.0.1", 0, flaky)
    await listener.start()
    try:
        reader, failed = await connect(listener.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # nothing leaks to the client
        failed.close()
        reader, writer = await greeted(listener.port)
        writer.write(b"ping\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ping\r\n"
        writer.close()
    finally:
        await listener.stop(grace=1)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("[pop3-") and "RuntimeError: boom in handler" in errors[0]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(" connect pop3 " in m for m in messages) == 2
    assert sum(" disconnect duration=" in m for m in messages) == 2


async def test_graceful_drain_finishes_sessions_and_cancels_stragglers() -> None:
    finished: list[str] = []
    cancelled: list[str] = []
    started: list[str] = []

    async def slow(stream: Stream) -> None:
        line = await stream.readline(100)
        started.append(line.decode().strip())
        try:
            await asyncio.sleep(0.2 if line.startswith(b"quick") else 60)
            stream.write(b"done\r\n")
            await stream.drain()
            finished.append(line.decode().strip())
        except asyncio.CancelledError:
            cancelled.append(line.decode().strip())
            raise

    listener = Listener("smtp", "127.0.0.1", 0, slow)
    await listener.start()
    port = listener.port
    quick_r, quick_w = await connect(port)
    quick_w.write(b"quick\r\n")
    _, slow_w = await connect(port)
    slow_w.write(b"slow\r\n")
    await eventually(lambda: len(started) == 2, what="both sessions reading their line")

    await listener.stop_accepting()
    with pytest.raises(OSError):
        await connect(port)
    assert await listener.drain(timeout=1.0) == 1
    assert finished == ["quick"]
    assert cancelled == ["slow"]
    assert await quick_r.readline() == b"done\r\n"
    assert listener.active_count == 0
    quick_w.close()
    slow_w.close()


async def test_implicit_tls_uses_current_context(
    tls_contexts: TLSContexts, client_context: ssl.SSLContext
) -> None:
    seen: list[str] = []

    async def handler(stream: Stream) -> None:
        seen.append(stream.tls_info)
        await echo(stream)

    listener = Listener("imaps", "127.0.0.1", 0, handler, tls=tls_contexts, implicit_tls=True)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listener.port, ssl=client_context, server_hostname="localhost"
        )
        assert await asyncio.wait_for(reader.readline(), 5) == b"hello\r\n"
        assert seen and seen[0].startswith("TLSv1.")
        writer.close()
    finally:
        await listener.stop(grace=1)


def test_implicit_tls_requires_contexts() -> None:
    with pytest.raises(ValueError):
        Listener("imaps", "127.0.0.1", 0, echo, implicit_tls=True)


def test_client_key_folds_mapped_ipv4_and_counts_ipv6_per_64() -> None:
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("192.0.2.1") == "192.0.2.1"
    # One host can take any address of its /64: per address, the cap would cap nothing.
    assert client_key("2001:DB8::1") == "2001:db8::/64"
    assert client_key("2001:db8::ffff:1:2:3") == client_key("2001:db8::1")
    assert client_key("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("not-an-ip") == "not-an-ip"


async def test_group_start_and_stop() -> None:
    group = ListenerGroup(
        [Listener("a", "127.0.0.1", 0, echo), Listener("b", ["127.0.0.1"], 0, echo)], grace=0.2
    )
    await group.start()
    _, writer = await greeted(group.listeners[1].port)
    assert group.active_count == 1
    group.request_stop("test")
    await asyncio.wait_for(group.serve_forever(), 5)
    assert group.active_count == 0
    writer.close()


SERVER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from mailstead.net.listener import Listener, ListenerGroup
    from mailstead.net.signals import ProcessSignals

    async def echo(stream):
        stream.write(b"hello\\r\\n")
        while True:
            line = await stream.readline(1000)
            if line == b"freeze\\r\\n":
                print("frozen", flush=True)
                time.sleep(600)  # a loop stuck in work that never yields
            stream.write(line)
            await stream.drain()

    def reload():
        print("reloaded", flush=True)

    async def main(signals):
        group = ListenerGroup([Listener("echo", "127.0.0.1", 0, echo)], grace=0.5)
        await group.start()
        signals.attach(asyncio.get_running_loop(), on_stop=group.request_stop,
                       on_reload=lambda: group.reload(reload))
        print(group.listeners[0].port, flush=True)
        await group.serve_forever()
        print("stopped", flush=True)

    with ProcessSignals(liveness=1.0) as signals:
        asyncio.run(main(signals))
    """
)


async def test_sigterm_with_connected_client_exits_zero(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(mailstead.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.to_thread(proc.stdout.readline))
        reader, writer = await greeted(port)
        writer.write(b"ping\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ping\r\n"

        proc.send_signal(signal.SIGHUP)
        assert await asyncio.to_thread(proc.stdout.readline) == "reloaded\n"

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
        assert code == 0
        assert proc.stdout.read() == "stopped\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_bind_hosts_dual_stack() -> None:
    from mailstead.net.listener import _bind_hosts

    assert _bind_hosts("*") is None
    assert _bind_hosts("0.0.0.0") == ["0.0.0.0"]
    assert set(_bind_hosts("::") or []) <= {"::", "0.0.0.0"}
    assert "0.0.0.0" in (_bind_hosts("::") or [])
    assert _bind_hosts(["127.0.0.1", "::1", "127.0.0.1"]) == ["127.0.0.1", "::1"]


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_loopback_listener() -> None:
    seen: list[tuple[str, int]] = []

    async def handler(stream: Stream) -> None:
        seen.append(stream.peer)
        await echo(stream)

    listener = Listener("imap", "::1", 0, handler)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection("::1", listener.port)
        assert await asyncio.wait_for(reader.readline(), 5) == b"hello\r\n"
        assert seen[0][0] == "::1"
        writer.close()
    finally:
        await listener.stop(grace=1)


async def test_sigterm_ends_a_process_whose_loop_is_stuck(tmp_path: Path) -> None:
    """Once a hostile LIST pattern kept the loop busy and SIGTERM did nothing until
    SIGKILL. The signal thread sees that the loop does not answer and ends the process."""
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(mailstead.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        port = int(await asyncio.to_thread(proc.stdout.readline))
        _, writer = await greeted(port)
        writer.write(b"freeze\r\n")
        await writer.drain()
        assert await asyncio.to_thread(proc.stdout.readline) == "frozen\n"
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)  # the freeze itself lasts 600 s
        assert code == 1
        assert "event loop has not answered" in proc.stderr.read()
        writer.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
