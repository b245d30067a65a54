"""fetchmail (Debian package ``fetchmail``) downloads a mailbox over POP3S from mailstead.

Both ways people run it: leave-on-server (``keep`` + ``uidl``: the second run must fetch only
the new message, relying on stable UIDLs) and delete (``no keep``: the server is emptied).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed"),
]

PASSWORD = "fetch me if you can"


def message(n: int) -> bytes:
    return (
        f"From: sender@example.net\r\nTo: fm@example.org\r\nSubject: fetchmail {n}\r\n"
        f"Message-ID: <fm{n}@example.net>\r\n\r\n.dot line {n}\r\nbody {n}\r\n"
    ).encode()


def run_fetchmail(server: ServerThread, tmp_path: Path, *, keep: bool) -> list[bytes]:
    """One fetchmail run; returns the messages it handed to its MDA, in order."""
    outdir = tmp_path / "delivered"
    outdir.mkdir(exist_ok=True)
    before = set(outdir.iterdir())
    mda = tmp_path / "mda.py"
    mda.write_text(
        "import sys, time, pathlib\n"
        f"p = pathlib.Path({str(outdir)!r}) / f'{{time.monotonic_ns()}}.eml'\n"
        "p.write_bytes(sys.stdin.buffer.read())\n"
    )
    local = os.environ.get("USER", "root")
    # uidl is a server option (client-side UIDL bookkeeping in the idfile); keep leaves
    # messages on the server, "no keep" sends DELE after each message.
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 protocol pop3 port {server.port('pop3s')}"
        f"{' uidl' if keep else ''}\n"
        f'  user "fm@example.org" there with password "{PASSWORD}" is "{local}" here\n'
        f'  options ssl sslcertck sslcertfile "{server.cert_path}" sslcommonname localhost'
        f"{' keep' if keep else ' no keep fetchall'}\n"
        f'  mda "{sys.executable} {mda}"\n'
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    proc = subprocess.run(
        ["fetchmail", "-f", str(rc), "-N", "--idfile", str(tmp_path / "fetchids"),
         "--pidfile", str(tmp_path / "fetchmail.pid")],
        env=env, capture_output=True, timeout=60,
    )
    # 0: mail retrieved; 1: no new mail. Anything else is a failure.
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return [p.read_bytes() for p in sorted(set(outdir.iterdir()) - before)]


def test_leave_on_server(server: ServerThread, tmp_path: Path) -> None:
    user = server.add_user("fm@example.org", PASSWORD)
    for n in (1, 2, 3):
        server.deliver(user.id, message(n))
    first = run_fetchmail(server, tmp_path, keep=True)
    assert len(first) == 3
    for n, got in enumerate(first, 1):
        # fetchmail prepends its Received: line and hands the MDA LF line endings.
        assert got.endswith(message(n).replace(b"\r\n", b"\n")), got
    server.deliver(user.id, message(4))
    second = run_fetchmail(server, tmp_path, keep=True)
    assert len(second) == 1 and b"Subject: fetchmail 4" in second[0]
    assert server.inbox_count(user.id) == 4


def test_delete_mode(server: ServerThread, tmp_path: Path) -> None:
    user = server.add_user("fm@example.org", PASSWORD)
    for n in (1, 2, 3):
        server.deliver(user.id, message(n))
    got = run_fetchmail(server, tmp_path, keep=False)
    assert [b"Subject: fetchmail %d" % n in g for n, g in enumerate(got, 1)] == [True] * 3
    assert b".dot line 1\n" in got[0]  # dot-stuffing undone by the client
    assert server.inbox_count(user.id) == 0
    assert run_fetchmail(server, tmp_path, keep=False) == []
