"""Logs say who did what on which connection, and never contain a password."""

from __future__ import annotations

import base64
import logging
import poplib
from pathlib import Path

import pytest

from mailstead.testing.server import ServerThread

SECRET = "Very$ecret-Passw0rd"


def test_pop3_logins_log_the_user_but_never_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ServerThread(tmp_path) as server:
        server.add_user("alice@example.org", SECRET)
        port = server.port("pop3s")
        client = poplib.POP3_SSL("127.0.0.1", port, context=server.client_ssl_context())
        client.user("alice@example.org")
        client.pass_(SECRET)
        client.quit()
        client = poplib.POP3_SSL("127.0.0.1", port, context=server.client_ssl_context())
        plain = base64.b64encode(f"\0alice@example.org\0{SECRET}".encode()).decode()
        client._shortcmd(f"AUTH PLAIN {plain}")
        client.quit()
        bad = poplib.POP3_SSL("127.0.0.1", port, context=server.client_ssl_context())
        bad.user("alice@example.org")
        with pytest.raises(poplib.error_proto):
            bad.pass_(SECRET + "-wrong")
        bad.close()
    text = caplog.text
    assert SECRET not in text
    assert plain not in text
    assert "alice@example.org" in text  # the user is named on the session's lines
    connects = [r for r in caplog.records if "connect" in r.getMessage()]
    assert connects and all(r.getMessage().startswith("[pop3s-") for r in connects)
