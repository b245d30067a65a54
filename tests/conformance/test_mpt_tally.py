"""The ``james-mpt:`` summary line reaches the output serially and under pytest-xdist.

CI logs quote the line; under xdist only the controller's terminal is shown, and a conftest
beside the scripts is never imported there. A child pytest runs a stand-in
``test_james_mpt.py`` with one script of each outcome, with the suite's plugin, in both modes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

STAND_IN = """
import pytest

@pytest.mark.parametrize("script", [
    "pass1", "pass2",
    "fail",
    pytest.param("skip", marks=pytest.mark.skip(reason="capability not advertised")),
    pytest.param("known", marks=pytest.mark.xfail(strict=True, reason="known difference")),
    pytest.param("fixed", marks=pytest.mark.xfail(strict=False, reason="was a difference")),
])
def test_james_script(script):
    assert script not in ("fail", "known")

def test_not_a_script():
    assert False
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_tally_line_printed_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_james_mpt=STAND_IN)
    result = pytester.runpytest_subprocess("-p", "tests.conformance.mpt_tally", *workers)
    tally = [line for line in result.outlines if line.startswith("james-mpt:")]
    assert tally == [
        "james-mpt: 2 passed, 1 failed, 1 skipped, 1 expected-fail, 1 unexpectedly passed"
    ]
