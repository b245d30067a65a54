"""getmail6 (Debian package ``getmail6``) downloads a mailbox over POP3S.

``read_all = false`` is leave-on-server: getmail remembers UIDLs in its ``oldmail`` file and
must fetch only the new message on the second run. ``delete = true`` empties the server.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("getmail") is None, reason="getmail6 not installed"),
]

PASSWORD = "get mail six"


def message(n: int) -> bytes:
    return (
        f"From: sender@example.net\r\nTo: gm@example.org\r\nSubject: getmail {n}\r\n"
        f"Message-ID: <gm{n}@example.net>\r\n\r\n..two dots {n}\r\nbody {n}\r\n"
    ).encode()


def run_getmail(server: ServerThread, tmp_path: Path, *, delete: bool) -> list[bytes]:
    """One getmail run; returns the messages its delivery command received."""
    outdir = tmp_path / "delivered"
    outdir.mkdir(exist_ok=True)
    before = set(outdir.iterdir())
    mda = tmp_path / "mda.py"
    mda.write_text(
        "import sys, time, pathlib\n"
        "p = pathlib.Path(sys.argv[1]) / f'{time.monotonic_ns()}.eml'\n"
        "p.write_bytes(sys.stdin.buffer.read())\n"
    )
    getmaildir = tmp_path / "getmail"
    getmaildir.mkdir(exist_ok=True)
    (getmaildir / "getmailrc").write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = localhost\n"
        f"port = {server.port('pop3s')}\n"
        "username = gm@example.org\n"
        f"password = {PASSWORD}\n"
        f"ca_certs = {server.cert_path}\n"
        # An external command rather than a Maildir: getmail refuses Maildir delivery as
        # root (CI containers), while allow_root_commands covers this.
        "[destination]\n"
        "type = MDA_external\n"
        f"path = {sys.executable}\n"
        f"arguments = (\"{mda}\", \"{outdir}\")\n"
        "allow_root_commands = true\n"
        "[options]\n"
        "read_all = false\n"
        f"delete = {'true' if delete else 'false'}\n"
        "verbose = 0\n"
    )
    proc = subprocess.run(
        ["getmail", "--getmaildir", str(getmaildir), "--rcfile", "getmailrc"],
        capture_output=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [p.read_bytes() for p in sorted(set(outdir.iterdir()) - before)]


def _subjects(messages: list[bytes]) -> set[bytes]:
    return {line for m in messages for line in m.splitlines() if line.startswith(b"Subject:")}


def test_leave_on_server(server: ServerThread, tmp_path: Path) -> None:
    user = server.add_user("gm@example.org", PASSWORD)
    for n in (1, 2, 3):
        server.deliver(user.id, message(n))
    first = run_getmail(server, tmp_path, delete=False)
    assert _subjects(first) == {b"Subject: getmail %d" % n for n in (1, 2, 3)}
    for got in first:
        n = int(got.split(b"Subject: getmail ")[1][:1])
        # getmail adds Delivered-To/Return-Path/Received and writes LF line endings.
        assert got.endswith(message(n).replace(b"\r\n", b"\n")), got
    server.deliver(user.id, message(4))
    second = run_getmail(server, tmp_path, delete=False)
    assert _subjects(second) == {b"Subject: getmail 4"}
    assert server.inbox_count(user.id) == 4


def test_delete_mode(server: ServerThread, tmp_path: Path) -> None:
    user = server.add_user("gm@example.org", PASSWORD)
    for n in (1, 2):
        server.deliver(user.id, message(n))
    got = run_getmail(server, tmp_path, delete=True)
    assert _subjects(got) == {b"Subject: getmail 1", b"Subject: getmail 2"}
    assert server.inbox_count(user.id) == 0
