"""The ``james-mpt: N passed, ...`` line at the end of a run, which CI logs and issue notes quote.

It is computed from the reports the terminal reporter already holds, in the process that
prints the summary. Serially that is the only process; under pytest-xdist it is the
controller, which replays every worker's reports to its own terminal reporter (a worker's
terminal output is never shown). The plugin is registered by the root ``tests/conftest.py``:
a conftest below ``tests/`` is imported only where tests are collected, and under xdist the
controller collects nothing, so a hook there would never run where its line is seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest

#: The node ids of the script tests contain this (one test per MPT script).
SCRIPT_TEST = "test_james_mpt.py::test_james_script"


def tally(reports: Iterable[object]) -> Counter[str]:
    """One outcome per script test: its call phase, or its setup when that did not pass (the
    call then never ran). A strict xfail that passes is reported ``failed`` by pytest itself;
    a non-strict one that passes is ``unexpectedly passed``."""
    counts: Counter[str] = Counter()
    for report in reports:
        if not isinstance(report, pytest.TestReport) or SCRIPT_TEST not in report.nodeid:
            continue
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            if hasattr(report, "wasxfail"):
                counts["expected-fail" if report.skipped else "unexpectedly passed"] += 1
            else:
                counts[report.outcome] += 1
    return counts


def line(counts: Counter[str]) -> str:
    text = (
        f"james-mpt: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['expected-fail']} expected-fail"
    )
    if counts["unexpectedly passed"]:
        text += f", {counts['unexpectedly passed']} unexpectedly passed"
    return text


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller prints the line
        return
    counts = tally(report for reports in terminalreporter.stats.values() for report in reports)
    if counts:
        terminalreporter.write_line(line(counts))
