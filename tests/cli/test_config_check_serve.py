"""`mailstead config check` refuses what `serve` would refuse: certificate files, routes and
the [acme] section, each failure one line naming the key and the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailstead.net.tls import ensure_self_signed
from tests.cli.conftest import FAST_CONFIG, Invoke, one_error_line


def write_config(config_file: Path, extra: str, *, hostname: str = "localhost") -> None:
    config_file.write_text(f'data_dir = "data"\nhostname = "{hostname}"\n' + FAST_CONFIG
                           + extra, encoding="utf-8")


def pair(directory: Path, name: str = "mail.example.org") -> tuple[Path, Path]:
    ensure_self_signed(directory / "cert.pem", directory / "key.pem", name)
    return directory / "cert.pem", directory / "key.pem"


def test_a_mismatched_key_names_tls_key_and_its_file(
    mailstead: Invoke, config_file: Path, tmp_path: Path
) -> None:
    cert, _ = pair(tmp_path / "a")
    _, other_key = pair(tmp_path / "b")
    write_config(config_file, f'[tls]\ncert = "{cert}"\nkey = "{other_key}"\n')
    line = one_error_line(mailstead("config", "check"))
    assert line.startswith(f"error: {other_key}: tls.key: TLS private key does not match")


def test_an_unparseable_certificate_names_tls_cert_and_its_file(
    mailstead: Invoke, config_file: Path, tmp_path: Path
) -> None:
    _, key = pair(tmp_path / "a")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    write_config(config_file, f'[tls]\ncert = "{garbage}"\nkey = "{key}"\n')
    line = one_error_line(mailstead("config", "check"))
    assert line.startswith(f"error: {garbage}: tls.cert: cannot load TLS certificate")


def test_a_missing_certificate_names_the_key_and_the_config_file(
    mailstead: Invoke, config_file: Path, tmp_path: Path
) -> None:
    _, key = pair(tmp_path / "a")
    write_config(config_file, f'[tls]\ncert = "{tmp_path / "nowhere.pem"}"\nkey = "{key}"\n')
    line = one_error_line(mailstead("config", "check"))
    assert line == f"error: {config_file}: tls.cert: file {tmp_path / 'nowhere.pem'} does not exist"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_key_is_refused(
    mailstead: Invoke, config_file: Path, tmp_path: Path
) -> None:
    cert, key = pair(tmp_path / "a")
    key.chmod(0)
    write_config(config_file, f'[tls]\ncert = "{cert}"\nkey = "{key}"\n')
    line = one_error_line(mailstead("config", "check"))
    assert line == f"error: {config_file}: tls.key: file {key} is not readable by this user"


def test_a_bad_route_names_its_key(mailstead: Invoke, config_file: Path) -> None:
    write_config(config_file, '[delivery.routes]\n"example.net" = "host:notaport"\n')
    line = one_error_line(mailstead("config", "check"))
    assert line.startswith(f"error: {config_file}: delivery.routes.example.net: ")


def test_acme_for_a_name_no_ca_certifies_is_refused(
    mailstead: Invoke, config_file: Path
) -> None:
    write_config(config_file, "[acme]\nenabled = true\n")  # hostname stays localhost
    line = one_error_line(mailstead("config", "check"))
    assert line.startswith(f"error: {config_file}: hostname: localhost is not a public DNS")


def test_acme_with_no_listener_for_its_challenge_is_refused(
    mailstead: Invoke, config_file: Path
) -> None:
    write_config(config_file, '[acme]\nenabled = true\n'
                 'challenges = ["http-01"]\n[listeners.http]\nenabled = false\n',
                 hostname="mail.example.org")
    line = one_error_line(mailstead("config", "check"))
    assert line.startswith(f"error: {config_file}: acme.challenges: no challenge type can")


def test_acme_http01_off_port_80_is_a_warning_not_an_error(
    mailstead: Invoke, config_file: Path
) -> None:
    write_config(config_file, '[acme]\nenabled = true\n'
                 'challenges = ["http-01"]\n', hostname="mail.example.org")
    result = mailstead("config", "check")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"warning: {config_file}: acme.challenges: ")
    assert "port 80" in lines[0] and "listeners.http.port is 8080" in lines[0]
    assert result.stdout.startswith(f"# {config_file}: valid\n")


def test_acme_with_an_unreadable_ca_bundle_names_key_and_file(
    mailstead: Invoke, config_file: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("no certificates here\n")
    write_config(config_file, '[acme]\nenabled = true\n'
                 f'ca_bundle = "{bundle}"\n[listeners.http]\nport = 80\n'
                 '[listeners.https]\nport = 443\n', hostname="mail.example.org")
    line = one_error_line(mailstead("config", "check"))
    assert line.startswith(f"error: {bundle}: acme.ca_bundle: cannot load the CA bundle")
