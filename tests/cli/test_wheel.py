"""``pip install mailstead`` from a built wheel: the package carries all it needs to run.

Builds the wheel with pip (no build tool beyond what pip itself fetches: hatchling),
installs it into a fresh virtual environment with its dependencies from the package index,
and runs the installed ``mailstead`` from outside the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_the_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    # Nothing of this checkout may leak into the installed program.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("MAILSTEAD_")}
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels),
         str(ROOT)], tmp_path, env)
    [wheel] = wheels.glob("mailstead-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mailstead/py.typed" in names
    tracked = run(["git", "ls-files", "mailstead"], ROOT, env).stdout.split()
    missing = [name for name in tracked if name not in names]
    assert not missing, f"not in the wheel: {missing}"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        tmp_path, env)
    mailstead = str(venv / "bin" / "mailstead")
    version = run([mailstead, "--version"], tmp_path, env).stdout
    assert version.startswith("mailstead, version 0.")
    checked = run([mailstead, "--data", str(tmp_path / "data"), "config", "check"],
                  tmp_path, env).stdout
    assert checked.startswith("# no configuration file: defaults")
    assert "[listeners.smtp]" in checked
    where = run([str(venv / "bin" / "python"), "-c",
                 "import mailstead; print(mailstead.__file__)"], tmp_path, env).stdout
    assert where.startswith(str(venv))  # the installed copy ran, not this checkout
