"""Ports for child servers: each handed out once per test process, and never by two
pytest-xdist workers."""

from __future__ import annotations

import pytest

from mailstead.testing import server
from mailstead.testing.server import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    """A child server's listeners each take a `free_port()` before any binds, so two
    listeners once drew the same port and the server failed to start. Among 3000 draws from
    some 22,000 ports a repeat is all but certain unless the function remembers."""
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)


def _ports_of(worker: str, count: int, monkeypatch: pytest.MonkeyPatch) -> range:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
    return server._worker_ports()


@pytest.mark.parametrize("count", [2, 3, 8])
def test_xdist_workers_draw_from_disjoint_slices(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers are separate processes: each one's memory of what it handed out does not
    stop another from finding the same port free before either child binds it."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    alone = server._worker_ports()
    slices = [_ports_of(f"gw{i}", count, monkeypatch) for i in range(count)]
    for i, ports in enumerate(slices):
        assert len(ports) >= len(alone) // count - 1
        assert ports.start >= alone.start and ports.stop <= alone.stop
        for other in slices[i + 1:]:
            assert not set(ports) & set(other)


def test_free_port_stays_in_its_worker_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = _ports_of("gw1", 2, monkeypatch)
    drawn = [free_port() for _ in range(200)]
    assert all(port in ports for port in drawn)
