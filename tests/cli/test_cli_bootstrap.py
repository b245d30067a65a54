"""First start: one domain, one postmaster, and the client table printed once."""

from __future__ import annotations

from pathlib import Path

from mailstead.auth.passwords import verify_password
from mailstead.cli.bootstrap import bootstrap_if_empty, format_client_table, no_domain_yet
from mailstead.cli.serve import build_admin
from mailstead.config.load import load_settings
from mailstead.config.schema import Settings
from mailstead.store.sql.sqlite import SQLiteStore


def fast_settings(tmp_path: Path, extra: str = "") -> Settings:
    config = tmp_path / "mailstead.toml"
    config.write_text(
        extra + "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 8\n", encoding="utf-8"
    )
    return load_settings(config, data_dir_override=str(tmp_path / "data"), env={})


async def test_bootstrap_creates_postmaster_once(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path)
    store = SQLiteStore(settings.data_dir)
    await store.open()
    try:
        first = await bootstrap_if_empty(build_admin(store, settings), settings)
        assert first is not None
        assert (first.domain, first.user) == ("localhost", "postmaster@localhost")
        assert len(first.password) >= 16
        user = await store.find_user("postmaster@localhost")
        assert user is not None
        assert await verify_password(user.password_hash, first.password)
        assert await bootstrap_if_empty(build_admin(store, settings), settings) is None
        audit = [(r.actor, r.action) for r in await store.audit_log()]
        assert audit == [("serve:first-start", "user.add"), ("serve:first-start", "domain.add")]
    finally:
        await store.close()


async def test_a_real_hostname_gets_no_domain_behind_the_admins_back(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, 'hostname = "mail.example.org"\n')
    async with SQLiteStore(settings.data_dir) as store:
        assert await bootstrap_if_empty(build_admin(store, settings), settings) is None
        assert await store.list_domains() == []
    assert "mailstead setup example.org" in no_domain_yet(settings)


def test_client_table_has_one_row_per_enabled_client_listener() -> None:
    table = format_client_table(Settings(), "postmaster@localhost", "Secret123")
    rows = [line.split() for line in table.splitlines() if line.startswith("  ")]
    assert rows[0] == ["protocol", "server", "port", "security", "user", "name", "password"]
    assert [row[:4] for row in rows[1:7]] == [
        ["IMAP", "localhost", "2143", "STARTTLS"],
        ["IMAP", "localhost", "2993", "SSL/TLS"],
        ["POP3", "localhost", "2110", "STARTTLS"],
        ["POP3", "localhost", "2995", "SSL/TLS"],
        ["SMTP", "localhost", "2587", "STARTTLS"],
        ["SMTP", "localhost", "2465", "SSL/TLS"],
    ]
    assert all(row[4:] == ["postmaster@localhost", "Secret123"] for row in rows[1:7])
    assert "self-signed" in table


def test_client_table_leaves_out_disabled_listeners(tmp_path: Path) -> None:
    settings = fast_settings(
        tmp_path,
        '[tls]\ncert = "/etc/ssl/c.pem"\nkey = "/etc/ssl/k.pem"\n'
        "[listeners.pop3]\nenabled = false\n[listeners.pop3s]\nenabled = false\n",
    )
    table = format_client_table(settings, "u@x", "pw")
    assert "POP3" not in table
    assert "IMAP" in table
    assert "self-signed" not in table
