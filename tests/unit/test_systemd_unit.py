"""docs/systemd/mailstead.service: a unit systemd accepts, starting a command that exists."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailstead.cli.main import cli

UNIT = Path(__file__).resolve().parents[2] / "docs" / "systemd" / "mailstead.service"


def read_unit() -> configparser.ConfigParser:
    # strict=False: systemd allows a key more than once (SystemCallFilter); the last wins here.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_exec_start_is_a_mailstead_command_line() -> None:
    service = read_unit()["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert Path(program).name == "mailstead"
    assert args[-1] == "serve"
    # The same words with --help: exit 0 only if every option and the command exist.
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Start the server" in result.output
    assert shlex.split(service["ExecReload"])[-2:] == ["-HUP", "$MAINPID"]


def test_hardening_and_the_data_directory() -> None:
    service = read_unit()["Service"]
    expected = {
        "User": "mailstead", "ProtectSystem": "strict", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "ProtectHome": "yes", "Restart": "on-failure",
        "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
        "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert int(service["LimitNOFILE"]) >= 65536
    data = f"/var/lib/{service['StateDirectory']}"
    assert service["ReadWritePaths"] == data
    assert service["Environment"] == f"MAILSTEAD_DATA={data}"
    text = UNIT.read_text()
    assert "SystemCallFilter=@system-service\n" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this environment's.
    program = Path(sys.executable).with_name("mailstead")
    if not program.exists():
        pytest.skip(f"no mailstead entry point beside {sys.executable} (pip install -e .)")
    unit = tmp_path / "mailstead.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/mailstead", str(program)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "mailstead.service" not in result.stderr, result.stderr  # no warning about it
