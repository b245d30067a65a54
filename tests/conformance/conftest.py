"""Prints the James MPT tally at the end of a session (for the issue note)."""

from __future__ import annotations

from collections import Counter

import pytest

_tally: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "test_james_mpt.py::test_james_script" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            _tally["expected-fail" if report.skipped else "unexpectedly passed"] += 1
        else:
            _tally[report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _tally:
        terminalreporter.write_line(
            f"james-mpt: {_tally['passed']} passed, {_tally['failed']} failed, "
            f"{_tally['skipped']} skipped, {_tally['expected-fail']} expected-fail"
            + (
                f", {_tally['unexpectedly passed']} unexpectedly passed"
                if _tally["unexpectedly passed"]
                else ""
            )
        )
