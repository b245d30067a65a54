"""The sanity flag: on for the whole suite, inherited by subprocesses, off in production."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mailstead.core import sanity


def test_the_suite_runs_with_the_flag_on() -> None:
    assert sanity.enabled()


def test_servers_started_by_tests_inherit_it() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "from mailstead.core import sanity; print(sanity.enabled())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "True"


@pytest.mark.parametrize(("value", "on"), [("1", True), ("0", False), ("", False), ("yes", False)])
def test_only_1_turns_it_on(monkeypatch: pytest.MonkeyPatch, value: str, on: bool) -> None:
    monkeypatch.setenv(sanity.ENV_VAR, value)
    assert sanity.enabled() is on


def test_production_has_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sanity.ENV_VAR)
    assert not sanity.enabled()


def test_describe_names_the_error_and_its_place_but_not_its_text() -> None:
    def fail() -> None:
        raise ValueError("Subject: a secret")

    try:
        fail()
    except ValueError as exc:
        text = sanity.describe(exc)
    assert text.startswith("ValueError at ")
    assert text.endswith("test_sanity.py:" + str(fail.__code__.co_firstlineno + 1) + " in fail")
    assert "secret" not in text
    assert sanity.describe(KeyError("x")) == "KeyError"  # never raised: no place to name
