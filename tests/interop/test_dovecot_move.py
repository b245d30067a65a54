"""Differential test: COPY and MOVE into the selected mailbox, against Dovecot.

Dovecot allows both (the messages get new UIDs), and so does mailstead (decision 0018).
The same script runs on both servers over a raw socket; the untagged responses must be the
same line for line, in the same order (COPYUID before the EXPUNGEs, then EXISTS), and the
tagged replies the same status and response code. Only what is each server's own is
normalised: UIDVALIDITY, the human-readable text, HIGHESTMODSEQ values.
"""

from __future__ import annotations

import imaplib
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from dovecot import PASSWORD, USER, Dovecot, dovecot_binary

from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
]

MESSAGE = b"From: a@example.org\r\nSubject: same box\r\n\r\nbody\r\n"
SCRIPT = (
    "MOVE 2 INBOX",
    "COPY 1 INBOX",
    "UID MOVE 1 INBOX",
    "FETCH 1:* (UID FLAGS)",
    "UID MOVE 3:5 INBOX",
    "FETCH 1:* (UID)",
    "UID COPY 7 INBOX",
)
#: With QRESYNC on, the old messages are reported as VANISHED (RFC 7162 §3.2.10).
QRESYNC_SCRIPT = ("MOVE 1 INBOX", "UID MOVE 7:8 INBOX")


def _normalise(line: bytes, uidvalidity: bytes) -> bytes | None:
    if re.match(rb"\* OK \[HIGHESTMODSEQ \d+\]", line):
        return None  # each server's own numbers
    line = line.replace(b" " + uidvalidity + b" ", b" V ")
    line = re.sub(rb"\[HIGHESTMODSEQ \d+\] ?", b"", line)
    line = re.sub(  # flags in one order (RFC 9051 leaves it free)
        rb"FLAGS \(([^)]*)\)", lambda m: b"FLAGS (" + b" ".join(sorted(m[1].split())) + b")", line
    )
    return re.sub(rb"^(\S+ (?:OK|NO|BAD)(?: \[[^\]]*\])?).*", rb"\1", line.rstrip(b"\r\n"))


def _expunged(lines: list[bytes]) -> list[bytes]:
    """A run of EXPUNGEs as the positions (before the run) of the messages it removed:
    servers may send them in any order (RFC 9051 §7.5.1), Dovecot from the highest."""
    out: list[bytes] = []
    run: list[int] = []
    for line in [*lines, b""]:
        if m := re.fullmatch(rb"\* (\d+) EXPUNGE", line):
            run.append(int(m[1]))
            continue
        if run:
            positions = list(range(1, max(run) + len(run) + 1))
            gone = [positions.pop(n - 1) for n in run]
            out.append(b"* EXPUNGED %s" % b",".join(b"%d" % n for n in sorted(gone)))
            run = []
        if line:
            out.append(line)
    return out


def _transcript(port: int, user: str, password: str) -> list[bytes]:
    """Append three messages, select INBOX, run the script; every line after SELECT. Then
    the same with QRESYNC on, in a second session."""
    client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    client.login(user, password)
    for flags in (None, "(\\Seen $Kept)", None):
        assert client.append("INBOX", flags, None, MESSAGE)[0] == "OK"
    client.logout()
    out: list[bytes] = []
    for prelude, script in (((), SCRIPT), (("ENABLE QRESYNC",), QRESYNC_SCRIPT)):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            f = sock.makefile("rwb")

            def run(tag: str, command: str, f: Any = f) -> list[bytes]:
                f.write(f"{tag} {command}\r\n".encode())
                f.flush()
                lines = []
                while not (line := f.readline()).startswith(tag.encode() + b" "):
                    assert line, "connection closed"
                    lines.append(line)
                return [*lines, line]

            f.readline()
            run("a", f"LOGIN {user} {password}")
            for command in prelude:
                run("p", command)
            selected = b"".join(run("b", "SELECT INBOX"))
            m = re.search(rb"\[UIDVALIDITY (\d+)\]", selected)
            assert m is not None
            for n, command in enumerate(script):
                for line in run(f"c{n}", command):
                    if (shown := _normalise(line, m[1])) is not None:
                        out.append(shown)
            run("z", "LOGOUT")
    return _expunged(out)


def test_copy_and_move_into_the_selected_mailbox_as_dovecot(tmp_path: Path) -> None:
    with Dovecot() as dovecot:
        theirs = _transcript(dovecot.port, USER, PASSWORD)
    with ServerThread(tmp_path, {"auth": {"allow_plaintext": True}}) as server:
        server.add_user("mover@example.org", "secretpw")
        ours = _transcript(server.port("imap"), "mover@example.org", "secretpw")
    assert "\n".join(map(repr, ours)) == "\n".join(map(repr, theirs))
    # What the script was for (checked once, on both since they are equal):
    assert b"* OK [COPYUID V 2 4]" in ours and b"c0 OK" in ours
    assert ours[ours.index(b"* OK [COPYUID V 2 4]") + 1 :][:2] == [b"* EXPUNGED 2", b"* 3 EXISTS"]
    assert b"* VANISHED 7:8" in ours
