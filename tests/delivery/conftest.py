"""A SQLite store with one domain and two accounts, for routing and delivery tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailstead.store.sql.sqlite import SQLiteStore


def fake_parse(raw: bytes) -> bytes:
    return json.dumps({"size": len(raw)}).encode()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "data", parse=fake_parse)
    await backend.open()
    await backend.add_domain("example.org")
    await backend.add_user("alice@example.org", "x")
    await backend.add_user("bob@example.org", "x")
    try:
        yield backend
    finally:
        await backend.close()
