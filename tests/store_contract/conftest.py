"""Every Store backend runs this same suite unchanged."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailstead.store.interfaces import Store
from mailstead.store.sql.sqlite import SQLiteStore


def fake_parse(raw: bytes) -> bytes:
    """A stand-in structure so store tests do not depend on mime/; records the size."""
    return json.dumps({"size": len(raw)}).encode()


@contextlib.asynccontextmanager
async def opened_store(data_dir: Path) -> AsyncIterator[Store]:
    """A SQLite store on ``data_dir``, open for the block (several may share one dir)."""
    backend = SQLiteStore(data_dir, parse=fake_parse)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(tmp_path / "data") as backend:
        yield backend


@pytest.fixture
async def user_id(store: Store) -> int:
    await store.add_domain("example.org")
    user = await store.add_user("alice@example.org", "hash")
    return user.id


def message(n: int = 0, size: int = 0) -> bytes:
    body = f"Subject: test {n}\r\nFrom: a@example.org\r\n\r\nHello {n}\r\n".encode()
    if size > len(body):
        body += b"x" * (size - len(body) - 2) + b"\r\n"
    return body
