"""Maildrop semantics: snapshot, one session per maildrop, atomic QUIT, policies, UIDL."""

from __future__ import annotations

import imaplib
import poplib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from mailstead.core.types import SEEN
from mailstead.pop3.maildrop import POP3_DELETED
from mailstead.store.models import ChangeKind
from mailstead.testing.paths import SHARED
from tests.pop3.conftest import Account, eventually, message

CORPUS = SHARED / "corpus/mime"


def test_snapshot_at_login(account: Account) -> None:
    """Messages arriving during the session wait for the next one (RFC 1939 §8)."""
    account.deliver(message(1))
    client = account.login()
    account.deliver(message(2))
    assert client.stat()[0] == 1
    with pytest.raises(poplib.error_proto):
        client.retr(2)
    client.quit()
    assert account.login().stat()[0] == 2


def test_second_session_is_in_use(account: Account) -> None:
    account.deliver(message(1))
    first = account.login()
    second = account.connect(ssl=True)  # the lock spans pop3 and pop3s
    second.user(account.address)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_(account.password)
    first.quit()
    second.user(account.address)
    assert second.pass_(account.password).startswith(b"+OK")


def test_dropped_connection_deletes_nothing(account: Account) -> None:
    for n in (1, 2):
        account.deliver(message(n))
    client = account.login()
    client.dele(1)
    client.dele(2)
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()

    def login_once_unlocked() -> poplib.POP3 | None:
        """The lock goes when the server notices the drop; until then, [IN-USE]."""
        try:
            return account.login()
        except poplib.error_proto as exc:
            assert b"IN-USE" in exc.args[0]
            return None

    again = eventually(login_once_unlocked)
    assert again.stat()[0] == 2
    assert len(account.messages()) == 2


def test_quit_commits_and_imap_sees_expunge(account: Account) -> None:
    uids = [account.deliver(message(n)) for n in (1, 2, 3)]
    store = account.server.store
    subscription = store.changes.subscribe(account.user.id)
    try:
        client = account.login()
        client.dele(1)
        client.dele(3)
        assert client.quit().startswith(b"+OK")
        assert [m.uid for m in account.messages()] == [uids[1]]
        events = [e for e in subscription.drain() if e.kind is ChangeKind.EXPUNGE]
    finally:
        subscription.close()
    # One store call: both deletions in one committed change.
    assert [e.uids for e in events] == [(uids[0], uids[2])]


def test_concurrent_imap_session_sees_pop3_deletions(account: Account) -> None:
    port = account.server.port("imap")
    for n in (1, 2):
        account.deliver(message(n))
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        if "LOGINDISABLED" in imap.capabilities:
            imap.starttls(account.server.client_ssl_context())
        imap.login(account.address, account.password)
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data[0] == b"2"
        client = account.login()
        client.dele(1)
        client.quit()
        imap.noop()
        expunged = [r for r in imap.untagged_responses.get("EXPUNGE", [])]
        assert expunged == [b"1"]
    finally:
        imap.logout()


def test_uidl_stable_across_sessions(account: Account) -> None:
    for n in (1, 2, 3):
        account.deliver(message(n))
    client = account.login()
    first = dict(line.split() for line in client.uidl()[1])
    client.dele(1)
    client.quit()
    account.deliver(message(4))
    client = account.login()
    second = dict(line.split() for line in client.uidl()[1])
    client.quit()
    assert set(first.values()) - set(second.values()) == {first[b"1"]}
    assert second[b"1"] == first[b"2"] and second[b"2"] == first[b"3"]
    assert len(set(second.values())) == 3


@pytest.mark.parametrize("policy", ["delete", "keep", "mark-read", "archive"])
def test_policies(make_account: Callable[..., Account], policy: str) -> None:
    account = make_account(policy)
    uids = [account.deliver(message(n)) for n in (1, 2)]
    client = account.login()
    client.retr(1)
    client.dele(1)
    assert client.quit().startswith(b"+OK")
    inbox = {m.uid: m for m in account.messages()}
    if policy == "delete":
        assert list(inbox) == [uids[1]]
        assert account.messages("Archive") == []
    elif policy == "archive":
        assert list(inbox) == [uids[1]]
        archived = account.messages("Archive")
        assert len(archived) == 1 and archived[0].blob_id
    else:
        assert list(inbox) == uids
        assert POP3_DELETED in inbox[uids[0]].flags
        assert (SEEN in inbox[uids[0]].flags) == (policy == "mark-read")
        assert inbox[uids[1]].flags == frozenset()
    # Whatever the policy, the POP3 client is not offered the message again.
    again = account.login()
    assert again.stat() == (1, len(message(2)))
    again.quit()


def test_archive_policy_recreates_missing_archive(make_account: Callable[..., Account]) -> None:
    account = make_account("archive")
    store = account.server.store
    account.server.call(store.delete_mailbox(account.user.id, "Archive"))
    account.deliver(message(1))
    client = account.login()
    client.dele(1)
    client.quit()
    assert len(account.messages("Archive")) == 1


def test_message_expunged_by_another_session(account: Account) -> None:
    # A body no other test delivers, so collecting garbage really removes it.
    uid = account.deliver(message(1, f"only for {account.address}\r\n".encode()))
    client = account.login()
    store = account.server.store

    async def expunge() -> None:
        box = await store.get_mailbox(account.user.id, "INBOX")
        await store.delete_messages(box.id, [uid])
        await store.collect_garbage(0)

    account.server.call(expunge())
    with pytest.raises(poplib.error_proto, match="no longer available"):
        client.retr(1)
    client.dele(1)
    assert client.quit().startswith(b"+OK")  # deleting a vanished message is no error


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    files = sorted(
        p for p in CORPUS.rglob("*")
        if p.is_file() and p.suffix in (".eml", ".msg", ".txt")
        and p.stat().st_size < 4 * 1024 * 1024 and p.name != "SOURCE.txt"
    )
    return files[::7][:40]


def test_corpus_retr_byte_identical(account: Account) -> None:
    """RETR gives back exactly what was delivered (canonical CRLF form, as SMTP stores it)."""
    import re

    files = _corpus_files()
    if not files:
        pytest.skip("shared corpus not available")
    delivered = []
    for path in files:
        raw = re.sub(rb"(?<!\r)\n", b"\r\n", path.read_bytes())
        if not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        account.deliver(raw)
        delivered.append(raw)
    client = account.login()
    for n, raw in enumerate(delivered, 1):
        response, lines, _ = client.retr(n)
        assert response == f"+OK {len(raw)} octets".encode()
        assert b"".join(line + b"\r\n" for line in lines) == raw, files[n - 1]
        header = raw[: raw.index(b"\r\n\r\n") + 4] if b"\r\n\r\n" in raw else raw
        _, top_lines, _ = client.top(n, 0)
        top = b"".join(line + b"\r\n" for line in top_lines)
        assert top == header, files[n - 1]
    client.quit()


def test_large_message_streams(account: Account) -> None:
    """A 5 MiB message crosses many chunk boundaries, with dots at awkward places."""
    line = b".x" + b"y" * 996 + b"\r\n"
    raw = message(1, line * (5 * 1024))
    account.deliver(raw)
    client = account.login()
    response, lines, _ = client.retr(1)
    assert response == f"+OK {len(raw)} octets".encode()
    assert b"".join(part + b"\r\n" for part in lines) == raw
