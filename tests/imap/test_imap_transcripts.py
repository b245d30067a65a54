"""IMAP sessions as transcripts: real sessions over the scripted in-memory transport.

The middle tier between the parser tests and the socket tests. Each test reads like the
exchange it checks: a command, then the untagged lines expected before its tagged reply.
Two sessions on one account share the change bus, so what one does and when the other is
told about it (RFC 9051 §7.5.1) is checked line by line, with no sockets and no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mailstead.auth.authenticator import Authenticator
from mailstead.auth.passwords import hash_password
from mailstead.auth.throttle import Throttle
from mailstead.cli.serve import parse_structure
from mailstead.core import sanity
from mailstead.imap.server import IMAPServer
from mailstead.store.models import Recipient, User
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import TEST_PASSWORD_POLICY, build_settings, settings_dict_for_tests
from mailstead.testing.transport import IMAPTranscript, memory_connection, serve

ADDRESS = "alice@example.org"
PASSWORD = "correct horse"


def _message(n: int) -> bytes:
    return f"From: b@example.net\r\nSubject: note {n}\r\n\r\nbody {n}\r\n".encode()


Connect = Callable[[], Awaitable[IMAPTranscript]]


class Account:
    def __init__(self, store: SQLiteStore, user: User) -> None:
        self.store = store
        self.user = user

    async def deliver(self, n: int) -> None:
        await self.store.deliver(_message(n), [Recipient(self.user.id)])


@pytest.fixture
async def imap(tmp_path: Path) -> AsyncIterator[tuple[Connect, Account]]:
    """A connect() that opens a logged-in session on one IMAPServer, and the account."""
    settings = build_settings(settings_dict_for_tests(
        tmp_path / "data", {"auth": {"allow_plaintext": True}}
    ))
    store = SQLiteStore(tmp_path / "data", parse=parse_structure)
    await store.open()
    await store.add_domain("example.org")
    user = await store.add_user(ADDRESS, hash_password(PASSWORD, TEST_PASSWORD_POLICY))
    # Its own throttle: a failed login in one test never slows another down.
    authenticator = Authenticator(store, Throttle(), TEST_PASSWORD_POLICY)
    handler, _ = IMAPServer(store, authenticator, settings, None).endpoint(
        "imap", settings.listeners.imap
    )
    sessions: list[asyncio.Task[None]] = []

    async def connect() -> IMAPTranscript:
        """An IMAP4rev2 session (no \\Recent, no RECENT counts: shorter transcripts)."""
        stream, peer = memory_connection()
        sessions.append(asyncio.create_task(serve(handler, stream)))
        client = IMAPTranscript(peer)
        assert (await client.greeting()).startswith("* OK [CAPABILITY IMAP4rev1")
        await client.transact("OK", f'LOGIN {ADDRESS} "{PASSWORD}"')
        assert await client.transact("OK", "ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
        return client

    yield connect, Account(store, user)
    for task in sessions:
        task.cancel()
    await asyncio.gather(*sessions, return_exceptions=True)
    await store.close()


async def test_state_is_checked_before_the_command_runs(
    imap: tuple[Connect, Account],
) -> None:
    connect, _ = imap
    c = await connect()
    assert await c.transact("NO", "FETCH 1 FLAGS") == []
    assert c.last_reply.endswith("FETCH is not valid in this state")
    assert await c.transact("NO", "LOGIN x y") == []
    await c.transact("OK", "SELECT INBOX")
    assert await c.transact("NO", "ENABLE CONDSTORE") == []  # RFC 5161 §3.1


async def test_expunge_waits_for_a_command_that_may_see_it(
    imap: tuple[Connect, Account],
) -> None:
    """RFC 9051 §7.5.1: no EXPUNGE during FETCH, STORE or SEARCH; NOOP reports it first."""
    connect, account = imap
    for n in (1, 2, 3):
        await account.deliver(n)
    a, b = await connect(), await connect()
    await a.transact("OK", "SELECT INBOX")
    await b.transact("OK", "SELECT INBOX")
    await b.transact("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    await b.transact("OK", "EXPUNGE")

    # Message 2 is gone, but a still numbers it 2 until it is told: 3 is still 3.
    assert await a.transact("OK", "FETCH 3 (UID)") == ["* 3 FETCH (UID 3)"]
    assert await a.transact("OK", "SEARCH ALL") == [f"* ESEARCH (TAG \"{a.tag}\") ALL 1,3"]
    assert await a.transact("OK", "STORE 3 +FLAGS (\\Seen)") == [
        "* 3 FETCH (FLAGS (\\Seen))"
    ]
    assert await a.transact("OK", "NOOP") == ["* 2 EXPUNGE"]
    assert await a.transact("OK", "FETCH 2 (UID)") == ["* 2 FETCH (UID 3)"]


async def test_uid_commands_may_see_an_expunge(imap: tuple[Connect, Account]) -> None:
    connect, account = imap
    await account.deliver(1)
    await account.deliver(2)
    a, b = await connect(), await connect()
    await a.transact("OK", "SELECT INBOX")
    await b.transact("OK", "SELECT INBOX")
    await b.transact("OK", "UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.transact("OK", "UID EXPUNGE 1")
    # After the command's own answer, with the numbers it used.
    assert await a.transact("OK", "UID FETCH 2 (FLAGS)") == [
        "* 2 FETCH (FLAGS () UID 2)",
        "* 1 EXPUNGE",
    ]


async def test_qresync_reports_vanished_and_the_new_highestmodseq(
    imap: tuple[Connect, Account],
) -> None:
    """RFC 7162 §3.2.7, §3.2.10: VANISHED instead of EXPUNGE, HIGHESTMODSEQ in the OK."""
    connect, account = imap
    for n in (1, 2, 3):
        await account.deliver(n)
    c = await connect()
    await c.transact("OK", "ENABLE QRESYNC")
    await c.transact("OK", "SELECT INBOX")
    await c.transact("OK", "STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert await c.transact("OK", "EXPUNGE") == ["* VANISHED 1,3"]
    assert c.last_reply.startswith(c.last_reply.split()[0] + " OK [HIGHESTMODSEQ ")


async def test_select_leaves_pending_updates_of_the_old_mailbox_behind(
    imap: tuple[Connect, Account],
) -> None:
    connect, account = imap
    await account.deliver(1)
    a = await connect()
    await a.transact("OK", "SELECT INBOX")
    await account.deliver(2)  # pending for a; the next command is a SELECT
    untagged = await a.transact("OK", "EXAMINE INBOX")
    assert untagged[0] == "* OK [CLOSED] Previous mailbox closed"  # RFC 9051 §7.1
    assert [line for line in untagged if line.endswith("EXISTS")] == ["* 2 EXISTS"]


async def test_idle_pushes_new_mail_as_it_commits(imap: tuple[Connect, Account]) -> None:
    connect, account = imap
    c = await connect()
    await c.transact("OK", "SELECT INBOX")
    c.peer.send_line("i1 IDLE")
    assert await c.line() == "+ idling"
    await account.deliver(1)
    assert await c.line() == "* 1 EXISTS"
    c.peer.send_line("DONE")
    assert await c.reply("i1", "OK") == []


async def test_logout_says_bye_then_ok_and_closes(imap: tuple[Connect, Account]) -> None:
    connect, _ = imap
    c = await connect()
    await c.transact("OK", "SELECT INBOX")
    assert await c.transact("OK", "LOGOUT") == ["* BYE Logging out"]
    await c.peer.wait_closed()


async def test_a_bug_in_a_handler_is_no_serverbug_and_the_session_goes_on(
    imap: tuple[Connect, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What production does with a bug (the sanity flag is off): NO [SERVERBUG], nothing of
    the exception on the wire, and the session carries on."""
    monkeypatch.delenv(sanity.ENV_VAR)
    connect, account = imap
    c = await connect()

    async def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("internal detail")

    monkeypatch.setattr(account.store, "list_subscriptions", broken)
    assert await c.transact("NO", 'LIST "" *') == []
    assert c.last_reply.endswith("NO [SERVERBUG] Internal error, the problem was logged")
    assert "internal detail" not in bytes(c.peer.transcript).decode()
    assert await c.transact("OK", "NOOP") == []


async def test_notify_ends_when_pushed_output_is_not_read(imap: tuple[Connect, Account]) -> None:
    """RFC 5465 §5.8: a client that stops reading while NOTIFY pushes to it gets one
    OK [NOTIFICATIONOVERFLOW] and no more notifications, instead of an ever-growing
    buffer."""
    connect, _ = imap
    watcher, other = await connect(), await connect()
    await watcher.transact("OK", "NOTIFY SET (personal (MailboxName))")
    watcher.peer.unread = 5 * 1024 * 1024  # as if 5 MiB pushed were still unread
    await other.transact("OK", "CREATE One")
    assert await watcher.line() == '* LIST (\\HasNoChildren) "/" "One"'
    assert await watcher.line() == (
        "* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off"
    )
    watcher.peer.unread = 0
    await other.transact("OK", "CREATE Two")
    assert await watcher.transact("OK", "NOOP") == []
