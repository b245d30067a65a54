"""Every store backend runs this same suite unchanged.

A backend joins the suite with one entry in ``BACKENDS``: given a fresh temporary
directory, it prepares empty storage and yields a :data:`StoreOpener`. Each call of the
opener opens another store on that same storage, as another process would (the admin
command, a second node), so the suite can check that one store sees another's writes.
SQLite is the only backend (docs/decisions/0005); a PostgreSQL entry would create a fresh
database here and drop it afterwards.

Tests of one backend's own machinery (its files, its group commit, its crash recovery)
live beside it in a directory of their own, such as ``sqlite/``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from mailstead.store.interfaces import Store
from mailstead.store.models import SortKeys
from mailstead.store.sql.sqlite import SQLiteStore

#: Opens one more store on a backend's prepared storage, closing it when the block ends.
StoreOpener = Callable[[], AbstractAsyncContextManager[Store]]
#: Prepares empty storage for one test in the given temporary directory.
Backend = Callable[[Path], AbstractAsyncContextManager[StoreOpener]]


def fake_parse(raw: bytes) -> bytes:
    """A stand-in structure so store tests do not depend on mime/; records the size, and
    the ``X-Id:`` and ``X-Refs:`` fields of a test message that sets them (threads)."""
    fields = {}
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name in (b"X-Id", b"X-Refs"):
            fields[name.decode()] = value.decode().split()
    return json.dumps({"size": len(raw), **fields}).encode()


def fake_sort_keys(structure: bytes) -> SortKeys:
    """Stand-in sort keys made from :func:`fake_parse`'s structure, distinct per size."""
    parsed = json.loads(structure)
    size = parsed["size"]
    message_id = parsed["X-Id"][0] if "X-Id" in parsed else f"id{size}@x"
    refs = tuple(parsed["X-Refs"]) if "X-Refs" in parsed else (f"p{size}@x", "q@x")
    return SortKeys(1, float(size), f"from{size}", f"to{size}", "", f"subject{size}",
                    size % 2 == 0, message_id, refs)


@contextlib.asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[StoreOpener]:
    data_dir = tmp_path / "data"

    @contextlib.asynccontextmanager
    async def open_store() -> AsyncIterator[Store]:
        async with SQLiteStore(data_dir, parse=fake_parse, sort_keys=fake_sort_keys) as store:
            yield store

    yield open_store


BACKENDS: dict[str, Backend] = {"sqlite": sqlite_backend}


@pytest.fixture(params=sorted(BACKENDS))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreOpener]:
    async with BACKENDS[request.param](tmp_path) as opener:
        yield opener


@pytest.fixture
async def store(open_store: StoreOpener) -> AsyncIterator[Store]:
    async with open_store() as backend:
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
