"""The SQLite backend's own tests: its files, its group commit, its crash recovery.

They need the concrete store, so ``store`` here is a :class:`SQLiteStore`; ``user_id`` and
``message`` come from the contract suite's conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailstead.store.sql.sqlite import SQLiteStore
from tests.store_contract.conftest import fake_parse, fake_sort_keys


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "data", parse=fake_parse,
                           sort_keys=fake_sort_keys) as backend:
        yield backend
