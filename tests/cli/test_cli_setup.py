"""``mailstead setup DOMAIN``: the domain, its postmaster and DKIM key, and the records."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mailstead.cli.main import cli


def _run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "mailstead.toml"
    config.write_text('hostname = "mail.example.org"\n[auth]\nargon2_time_cost = 1\n'
                      "argon2_memory_kib = 8\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--data",
                                      str(tmp_path / "data"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_setup_makes_a_domain_ready_and_is_harmless_twice(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "setup", "Example.org")
    assert code == 0, err
    assert "domain example.org: created" in out
    assert "postmaster@example.org: created" in out and "DKIM key mail: created" in out
    password_rows = [line for line in out.splitlines() if "postmaster@example.org  " in line]
    assert password_rows and all(len(row.split()[-1]) >= 16 for row in password_rows)
    assert "example.org. IN MX 10 mail.example.org." in out
    assert 'mail._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=' in out
    assert '_dmarc.example.org. IN TXT "v=DMARC1;' in out
    assert "warning" not in err

    code, again, _ = _run(tmp_path, "setup", "example.org")
    assert code == 0
    assert "already here" in again and "created" not in again
    assert "password" not in again  # the postmaster's password is not changed or shown
    code, audit, _ = _run(tmp_path, "audit", "list", "--target", "example.org")
    actions = [line.split()[4] for line in audit.splitlines()[1:]]
    assert actions == ["dkim.keygen", "user.add", "domain.add"]


def test_setup_refuses_what_is_not_a_domain(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path, "setup", "not a domain")
    assert code == 1 and err.startswith("error: not a domain name")
