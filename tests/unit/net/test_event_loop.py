"""The server runs on uvloop (decision 0030), and so does the test server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailstead.net import loop
from mailstead.testing.server import ServerThread


def test_serve_runs_on_uvloop() -> None:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop.run(kind()).startswith("uvloop")
    assert loop.name() == "uvloop"


def test_the_test_server_runs_on_the_same_loop(tmp_path: Path) -> None:
    with ServerThread(tmp_path) as server:
        assert type(server.loop).__module__.startswith("uvloop")
