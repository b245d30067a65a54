"""A backup carries the ACME account key and certificate, so a restored server keeps its
ACME account and serves its certificate without a new order."""

from __future__ import annotations

from pathlib import Path

from mailstead.acme.files import ACMEFiles
from mailstead.net.tls import ensure_self_signed
from tests.cli.conftest import Invoke


def test_backup_and_restore_keep_the_acme_files(
    mailstead: Invoke, data_dir: Path, config_file: Path, tmp_path: Path
) -> None:
    assert mailstead("domain", "add", "example.org").exit_code == 0
    files = ACMEFiles(data_dir)
    files.load_or_create_account_key()
    made = tmp_path / "made"
    ensure_self_signed(made / "cert.pem", made / "key.pem", "mail.example.org")
    files.save((made / "cert.pem").read_bytes(), (made / "key.pem").read_bytes(),
               "https://ca.example/dir")
    target = tmp_path / "backup"
    result = mailstead("backup", str(target))
    assert result.exit_code == 0, result.output
    assert "acme" in result.stdout.splitlines()[-1]

    new_config = tmp_path / "new.toml"
    new_config.write_text(config_file.read_text().replace('data_dir = "data"',
                                                          'data_dir = "restored"'))
    result = mailstead("--config", str(new_config), "restore", str(target))
    assert result.exit_code == 0, result.output
    restored = ACMEFiles(tmp_path / "restored")
    for original, copy in ((files.account_key, restored.account_key),
                           (files.cert, restored.cert), (files.key, restored.key)):
        assert copy.read_bytes() == original.read_bytes()
        assert copy.stat().st_mode & 0o777 == 0o600
