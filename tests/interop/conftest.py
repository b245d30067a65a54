"""Fixtures shared by the tests that drive real third-party programs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.testing.server import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """The real server (serve.py wiring) on ephemeral loopback ports."""
    with ServerThread(tmp_path) as srv:
        yield srv
