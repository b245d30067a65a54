"""The real ``mailstead`` program in a subprocess: entry point, exit codes, stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_CONFIG


@pytest.fixture
def run(tmp_path: Path) -> object:
    config = tmp_path / "mailstead.toml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    env["MAILSTEAD_DATA"] = str(tmp_path / "data")
    env["MAILSTEAD_CONFIG"] = str(config)

    def invoke(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailstead", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    return invoke


def test_help_and_version(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "domain", "user", "alias", "group", "config", "mailbox", "message"):
        assert command in result.stdout
    assert run("--version").stdout.startswith("mailstead, version")


def test_lifecycle_through_the_environment(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("domain", "add", "example.org").returncode == 0
    result = run("user", "add", "bob@example.org", "--password-stdin", input="tulip-fox-9\n")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data").is_dir()  # MAILSTEAD_DATA was honoured
    assert run("user", "list").stdout.startswith("address")
    assert run("alias", "add", "@example.org", "bob@example.org").returncode == 0
    assert run("group", "add", "all@example.org", "bob@example.org").returncode == 0
    listing = run("mailbox", "list", "bob@example.org").stdout.splitlines()
    assert len(listing) == 7


def test_failures_are_one_line_exit_1(run) -> None:  # type: ignore[no-untyped-def]
    run("domain", "add", "example.org")
    result = run("domain", "add", "example.org")
    assert result.returncode == 1
    assert result.stderr == "error: domain example.org already exists\n"
    assert result.stdout == ""
    result = run("user", "remove", "ghost@example.org", "--yes")
    assert (result.returncode, result.stderr) == (
        1,
        "error: user ghost@example.org does not exist\n",
    )


def test_usage_error_exit_2(run) -> None:  # type: ignore[no-untyped-def]
    result = run("user", "add")
    assert result.returncode == 2
    assert "Missing argument" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_in_a_subprocess(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = run("config", "check")
    assert good.returncode == 0
    assert "[listeners.smtp]" in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[listeners.smtp]\nport = "twenty-five"\n', encoding="utf-8")
    result = run("config", "check", str(bad))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {bad}: listeners.smtp.port: must be an integer between 1 and 65535, "
        "got 'twenty-five'\n"
    )


def test_check_reports_a_missing_body_and_a_lost_database_stops_everything(
        run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``mailstead check`` reads everything; a lost database (0 bytes beside bodies) is
    refused by every command, serve included, in one line, and no body is touched."""
    run("domain", "add", "example.org")
    run("user", "add", "bob@example.org", "--password-stdin", input="tulip-fox-9\n")
    big = tmp_path / "big.mbox"
    big.write_bytes(b"From a@b Mon Dec  7 10:00:00 2026\nSubject: big\n\n" + b"x" * 300_000
                    + b"\n")
    assert run("message", "import", "bob@example.org", str(big)).returncode == 0
    assert run("check").stdout == "mailstore OK\n"
    [body] = [p for p in (tmp_path / "data" / "blobs").glob("??/*")]
    aside = tmp_path / "aside"
    body.replace(aside)
    result = run("check")
    assert result.returncode == 1
    assert result.stderr == f"problem: message body {body.name} is missing from " \
        f"{tmp_path / 'data' / 'blobs'}\n"
    aside.replace(body)
    (tmp_path / "data" / "mailstead.db").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (tmp_path / "data" / f"mailstead.db{suffix}").unlink(missing_ok=True)
    for command in (("check",), ("user", "list"), ("serve",)):
        result = run(*command)
        assert result.returncode == 1, command
        *logged, line = result.stderr.splitlines()  # serve may log its start first
        assert line.startswith("error: ") and "holds message bodies" in line
        assert "Traceback" not in result.stderr and len(logged) <= 1
    assert body.exists()


def test_a_weak_password_is_refused_in_one_line(run) -> None:  # type: ignore[no-untyped-def]
    run("domain", "add", "example.org")
    result = run("user", "add", "bob@example.org", "--password-stdin", input="qwertyuiop\n")
    assert result.returncode == 1
    assert result.stderr == (
        "error: the password is one of the most common passwords (from lists of passwords "
        "seen in breaches): choose another\n")
    assert "bob@example.org" not in run("user", "list").stdout  # nothing was stored
