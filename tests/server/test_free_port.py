"""Ports for child servers: each handed out once per test process."""

from __future__ import annotations

from mailstead.testing.server import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    """A child server's listeners each take a `free_port()` before any binds, so two
    listeners once drew the same port and the server failed to start. Among 3000 draws from
    some 22,000 ports a repeat is all but certain unless the function remembers."""
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)
