"""Differential test: the unsolicited responses NOTIFY (RFC 5465) pushes, against Dovecot's.

One session selects INBOX, sends the same NOTIFY SET to both servers and goes IDLE; a second
session makes the same changes on each (create, append elsewhere and to INBOX, flag, expunge,
rename, subscribe, unsubscribe, delete), and after each change the untagged responses the
first session received must be the same, once the parts that differ by design are made
equal (docs/imap-compatibility.md, "NOTIFY"):

- names: Dovecot's Maildir hierarchy separator is ``.``, ours ``/``; it sends atoms where we
  quote; both are the same name;
- LIST attributes: we add ``\\HasChildren``/``\\HasNoChildren`` (RFC 5465 §5.4 SHOULD);
- STATUS: every one of ours carries MESSAGES UIDNEXT UIDVALIDITY UNSEEN, Dovecot's first
  one for a mailbox carries the same and later ones only the items that changed; the first
  is compared item by item (UIDVALIDITY's value excepted), later ones only by mailbox;
- the order of the items inside STATUS (ours is that of every STATUS we send) and of the
  flags inside FLAGS (ours are sorted, Dovecot's in the order they were stored);
- Dovecot's IDLE keep-alive, ``* OK Still here``.

Dovecot delivers NOTIFY's changes within a second or two (it polls its index), and later on
a busy machine (a rename once took more than 6 s with the suite running on both cores): each
step waits until our server's number of lines arrived from it, for up to 30 s, and then for
half a second of silence. Our own lines are read until one has arrived (every step sends
one), also for up to 30 s, and then until a second of silence. A deadline only costs time
when the servers differ.
"""

from __future__ import annotations

import imaplib
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dovecot import PASSWORD, USER, Dovecot, dovecot_binary

from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,  # Dovecot reports NOTIFY's changes a second or two late
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
]

NOTIFY = (
    "NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
    "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
)
MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

Step = Callable[[imaplib.IMAP4], object]
STEPS: list[tuple[str, Step]] = [
    ("create", lambda c: c.create("Bar")),
    ("append elsewhere", lambda c: c.append("Foo", None, None, MESSAGE)),
    ("append to the selected mailbox", lambda c: c.append("INBOX", None, None, MESSAGE)),
    ("flag in the selected mailbox",
     lambda c: (c.select("INBOX"), c.store("1", "+FLAGS", "(\\Flagged)"))),
    ("mark deleted in the selected mailbox", lambda c: c.store("1", "+FLAGS", "(\\Deleted)")),
    ("expunge in the selected mailbox", lambda c: c.expunge()),
    ("flag elsewhere", lambda c: (c.select("Foo"), c.store("1", "+FLAGS", "(\\Seen)"))),
    ("rename", lambda c: c.rename("Bar", "Baz")),
    ("subscribe", lambda c: c.subscribe("Baz")),
    ("unsubscribe", lambda c: c.unsubscribe("Baz")),
    ("delete", lambda c: c.delete("Baz")),
]


class _Watcher:
    """The notified session: reads whatever the server pushes, line by line."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self._line(10.0)
        for command in (f'a LOGIN {user} "{password}"', "b SELECT INBOX", f"c {NOTIFY}",
                        "d IDLE"):
            self.sock.sendall(command.encode() + b"\r\n")
            tag = command[0].encode()
            while True:
                line = self._line(10.0)
                assert line is not None, command
                if line.startswith((tag + b" ", b"+ ")):
                    assert b" NO " not in line and b" BAD " not in line, line
                    break

    def _line(self, wait: float) -> bytes | None:
        deadline = time.monotonic() + wait
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def lines(self, expected: int | None, wait: float) -> list[bytes]:
        """Lines until ``expected`` arrived (None: until ``wait`` passes in silence)."""
        out: list[bytes] = []
        while expected is None or len(out) < expected:
            line = self._line(wait)
            if line is None:
                break
            out.append(line)
        return out

    def close(self) -> None:
        self.sock.close()


def _transcript(port: int, user: str, password: str,
                counts: list[int] | None) -> list[list[bytes]]:
    other = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    other.login(user, password)
    other.create("Foo")
    watcher = _Watcher(port, user, password)
    out: list[list[bytes]] = []
    try:
        for n, (_, step) in enumerate(STEPS):
            step(other)
            if counts is None:
                out.append(watcher.lines(1, 30.0) + watcher.lines(None, 1.0))
            else:
                out.append(watcher.lines(counts[n], 30.0) + watcher.lines(None, 0.5))
    finally:
        watcher.close()
        other.logout()
    return out


_NAME = re.compile(rb'(?P<q>"?)(?P<name>INBOX|Foo|Bar|Baz)(?P=q)')
_STATUS = re.compile(rb"^\* STATUS (\S+) \((.*)\)$")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def _normal(lines: list[bytes], first_status: set[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        if line == b"* OK Still here":  # Dovecot's IDLE keep-alive
            continue
        line = _FLAGS.sub(lambda m: b"FLAGS (" + b" ".join(sorted(m[1].split())) + b")", line)
        line = line.replace(b'"."', b'"/"')
        line = _NAME.sub(rb"\g<name>", line)
        line = re.sub(rb"\\Has(No)?Children ?", b"", line).replace(b" )", b")")
        m = _STATUS.match(line)
        if m is not None:
            words = m[2].split()
            items = dict(zip(words[::2], words[1::2], strict=True))
            items.pop(b"UIDVALIDITY", None)
            if m[1] in first_status:
                line = b"* STATUS " + m[1] + b" (later)"
            else:
                first_status.add(m[1])
                line = b"* STATUS " + m[1] + b" " + repr(sorted(items.items())).encode()
        out.append(line)
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[bytes]], ...]:
    path: Path = tmp_path_factory.mktemp("notify")
    with ServerThread(path, {"auth": {"allow_plaintext": True}}) as server:
        server.add_user("notified@example.org", "secretpw")
        ours = _transcript(server.port("imap"), "notified@example.org", "secretpw", None)
    with Dovecot(extra_config="mailbox_list_index = yes\n") as dovecot:
        theirs = _transcript(dovecot.port, USER, PASSWORD, [len(s) for s in ours])
    seen_ours: set[bytes] = set()
    seen_theirs: set[bytes] = set()
    return (
        [_normal(s, seen_ours) for s in ours],
        [_normal(s, seen_theirs) for s in theirs],
    )


@pytest.mark.parametrize("step", range(len(STEPS)), ids=[name for name, _ in STEPS])
def test_notifications_are_dovecots(both: tuple[list[list[bytes]], ...], step: int) -> None:
    ours, theirs = both
    assert ours[step], "mailstead sent nothing"
    assert ours[step] == theirs[step]


def _noop_after_append(port: int, user: str, password: str) -> list[bytes]:
    """With no ``selected`` filter, what a NOOP reports of a message that arrived in the
    selected mailbox."""
    watcher = _Watcher.__new__(_Watcher)
    watcher.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    watcher.buf = b""
    watcher._line(10.0)
    lines: list[bytes] = []
    for command in (f'a LOGIN {user} "{password}"', "b SELECT INBOX",
                    "c NOTIFY SET (personal (MailboxName))", "APPEND", "d NOOP"):
        if command == "APPEND":
            other = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            other.login(user, password)
            other.append("INBOX", None, None, MESSAGE)
            other.logout()
            assert watcher.lines(None, 2.5) == []  # nothing pushed for the selected mailbox
            continue
        watcher.sock.sendall(command.encode() + b"\r\n")
        lines = []
        while not (line := watcher._line(10.0) or b"").startswith(command[:2].encode()):
            lines.append(line)
    watcher.close()
    return [line for line in lines if line != b"* OK Still here"]


@pytest.mark.xfail(strict=True, reason=(
    "without a selected filter Dovecot reports nothing of the selected mailbox even at NOOP; "
    "mailstead still reports what the base protocol reports at a command, so the client's "
    "view of the mailbox stays right (decision 0025)"
))
def test_without_a_selected_filter_noop_reports_like_dovecot(tmp_path: Path) -> None:
    with ServerThread(tmp_path, {"auth": {"allow_plaintext": True}}) as server:
        server.add_user("noop@example.org", "secretpw")
        ours = _noop_after_append(server.port("imap"), "noop@example.org", "secretpw")
    assert ours == [b"* 1 EXISTS", b"* 1 RECENT"]
    with Dovecot(extra_config="mailbox_list_index = yes\n") as dovecot:
        theirs = _noop_after_append(dovecot.port, USER, PASSWORD)
    assert ours == theirs
