"""Fixtures for driving the ``mailstead`` command against a temporary data directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailstead.cli.main import cli

# Cheap argon2 so tests that add users stay fast; production cost is the schema default.
FAST_CONFIG = """\
[auth]
argon2_time_cost = 1
argon2_memory_kib = 8
argon2_parallelism = 1
"""

Invoke = Callable[..., Result]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mailstead.toml"
    path.write_text('data_dir = "data"\n' + FAST_CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(config_file: Path) -> Path:
    return config_file.parent / "data"


@pytest.fixture
def mailstead(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``mailstead ARGS...`` in-process; stderr is kept apart from stdout."""
    monkeypatch.delenv("MAILSTEAD_DATA", raising=False)
    monkeypatch.delenv("MAILSTEAD_DEBUG", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--config", str(config_file), *args], input=input)

    return invoke


def one_error_line(result: Result) -> str:
    """Failures are exit 1 with exactly one ``error:`` line on stderr and no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]
