"""POP3 sessions as transcripts: what the client sends, and exactly what comes back.

A real session runs on a real store; its connection is a script (no socket, no sleep).
Each test reads top to bottom as the conversation it checks.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mailstead.core import sanity
from mailstead.core.errors import StorageUnavailable
from mailstead.core.types import SEEN, Pop3Policy, TLSMode
from mailstead.net.tls import TLSContexts
from mailstead.pop3.commands import COMMANDS
from mailstead.pop3.commands.arguments import no_arguments
from mailstead.pop3.maildrop import POP3_DELETED
from mailstead.pop3.session import CommandSpec, LoginDelay
from mailstead.pop3.states import TRANSACTION
from mailstead.store.models import User
from mailstead.testing.transport import POP3Transcript
from tests.pop3.conftest import PASSWORD, Mailstore, message

NOT_IN_STATE = "-ERR command not valid in this state"
PLAINTEXT_REFUSED = (
    "-ERR [AUTH] plaintext authentication disallowed on non-secure connections, use STLS"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def logged_in(mailstore: Mailstore, user: User, **config: Any) -> POP3Transcript:
    pop = mailstore.connect(**config)
    await pop.greeting()
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("+OK", f"PASS {PASSWORD}")
    return pop


async def wire_lines(pop: POP3Transcript) -> list[bytes]:
    """The rest of a multi-line response exactly as sent: still dot-stuffed, up to and
    including the terminating ``.``."""
    lines: list[bytes] = []
    while (line := await pop.peer.readline()) != b".\r\n":
        lines.append(line)
    return [*lines, line]


# -- greeting, login ------------------------------------------------------------------------


async def test_greeting_and_quit_before_login(mailstore: Mailstore) -> None:
    pop = mailstore.connect()
    assert await pop.greeting() == "+OK pop.example.org POP3 server ready"
    assert await pop.transact("+OK", "QUIT") == ["+OK bye"]
    await pop.peer.wait_closed()
    assert pop.peer.pending() == b""


async def test_user_pass(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))
    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("+OK", f"USER {user.address}") == ["+OK send PASS"]
    # RFC 1939 §7: the whole rest of the line is the password, spaces included.
    assert " " in PASSWORD
    assert await pop.transact("+OK", f"PASS {PASSWORD}") == [
        f"+OK maildrop has 1 messages ({len(message(1))} octets)"
    ]
    assert await pop.transact("+OK", "STAT") == [f"+OK 1 {len(message(1))}"]


async def test_failed_login_stays_in_authorization(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    # Unknown account and wrong password look alike, and USER never tells.
    assert await pop.transact("+OK", "USER nobody@example.org") == ["+OK send PASS"]
    assert await pop.transact("-ERR", f"PASS {PASSWORD}") == [
        "-ERR [AUTH] authentication failed"
    ]
    await pop.transact("+OK", f"USER {user.address}")
    assert await pop.transact("-ERR", "PASS wrong") == ["-ERR [AUTH] authentication failed"]
    assert await pop.transact("-ERR", "STAT") == [NOT_IN_STATE]
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("+OK", f"PASS {PASSWORD}")
    assert await pop.transact("+OK", "STAT") == ["+OK 0 0"]


async def test_pass_must_follow_user_directly(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("-ERR", f"PASS {PASSWORD}") == ["-ERR USER first"]
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("+OK", "CAPA", multiline=True)  # any command in between ...
    assert await pop.transact("-ERR", f"PASS {PASSWORD}") == ["-ERR USER first"]  # ... forgets
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("-ERR", "PASS wrong")
    # A failed PASS uses the name up too.
    assert await pop.transact("-ERR", f"PASS {PASSWORD}") == ["-ERR USER first"]
    assert await pop.transact("-ERR", "USER") == ["-ERR user name required"]


async def test_auth_plain_with_initial_response(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    plain = b64(f"\0{user.address}\0{PASSWORD}")
    assert await pop.transact("+OK", f"AUTH PLAIN {plain}") == [
        "+OK maildrop has 0 messages (0 octets)"
    ]


async def test_auth_plain_and_login_by_challenge(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("+", "AUTH PLAIN") == ["+ "]  # RFC 5034 §4: empty challenge
    assert await pop.transact("+OK", b64(f"\0{user.address}\0{PASSWORD}")) == [
        "+OK maildrop has 0 messages (0 octets)"
    ]
    assert await pop.transact("+OK", "QUIT") == ["+OK bye, 0 message(s) deleted"]

    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("+", "AUTH LOGIN") == ["+ VXNlcm5hbWU6"]  # "Username:"
    assert await pop.transact("+", b64(user.address)) == ["+ UGFzc3dvcmQ6"]  # "Password:"
    assert await pop.transact("+OK", b64(PASSWORD)) == ["+OK maildrop has 0 messages (0 octets)"]


async def test_auth_refusals(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("+OK", "AUTH", multiline=True) == [
        "+OK mechanisms follow", "PLAIN", "LOGIN"
    ]
    assert await pop.transact("-ERR", "AUTH CRAM-MD5") == [
        "-ERR unsupported authentication mechanism"
    ]
    assert await pop.transact("-ERR", "AUTH PLAIN a b") == [
        "-ERR syntax: AUTH mechanism [initial-response]"
    ]
    await pop.transact("+", "AUTH PLAIN")
    assert await pop.transact("-ERR", "*") == ["-ERR authentication cancelled"]
    wrong = b64(f"\0{user.address}\0nope")
    assert await pop.transact("-ERR", f"AUTH PLAIN {wrong}") == [
        "-ERR [AUTH] authentication failed"
    ]
    assert await pop.transact("-ERR", "AUTH PLAIN !!notbase64") == [
        "-ERR [AUTH] authentication failed"
    ]
    # Still in AUTHORIZATION: the next attempt may succeed.
    right = b64(f"\0{user.address}\0{PASSWORD}")
    await pop.transact("+OK", f"AUTH PLAIN {right}")


async def test_no_credentials_in_the_clear(mailstore: Mailstore) -> None:
    """RFC 2595 §2.2: without TLS (and no STLS offered here), no way to log in."""
    pop = mailstore.connect(allow_plaintext=False)
    await pop.greeting()
    assert await pop.transact("+OK", "CAPA", multiline=True) == [
        "+OK capability list follows",
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
        "UTF8 USER", "EXPIRE NEVER", "IMPLEMENTATION mailstead",
    ]
    for command in ("USER a@example.org", "PASS x", "AUTH", "AUTH PLAIN AGFAYg=="):
        assert await pop.transact("-ERR", command) == [PLAINTEXT_REFUSED], command
    assert await pop.transact("-ERR", "STLS") == ["-ERR STLS not available"]
    # Refusals for policy are not the client's fault: they use up no error budget.
    for _ in range(10):
        await pop.transact("-ERR", "USER a@example.org")
    assert await pop.transact("+OK", "QUIT") == ["+OK bye"]


async def test_utf8(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("+OK", "UTF8") == ["+OK UTF8 enabled"]
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("+OK", f"PASS {PASSWORD}")
    assert await pop.transact("-ERR", "UTF8") == [NOT_IN_STATE]


async def test_login_delay(mailstore: Mailstore) -> None:
    """RFC 2449 §8.1.1: announced, enforced, and over once the time has passed."""
    mailstore.login_delay = LoginDelay(3600, mailstore.clock)
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    assert "LOGIN-DELAY 3600" in await pop.transact("+OK", "CAPA", multiline=True)
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("+OK", f"PASS {PASSWORD}")
    await pop.transact("+OK", "QUIT")

    again = mailstore.connect()
    await again.greeting()
    await again.transact("+OK", f"USER {user.address}")
    assert await again.transact("-ERR", f"PASS {PASSWORD}") == [
        "-ERR [LOGIN-DELAY] logged in too recently, try again later"
    ]
    mailstore.clock.advance(3600)
    await again.transact("+OK", f"USER {user.address}")
    await again.transact("+OK", f"PASS {PASSWORD}")


async def test_maildrop_in_use(mailstore: Mailstore) -> None:
    """RFC 2449 §8.1.2: one session per maildrop; the lock goes with the session."""
    user = await mailstore.add_user()
    first = await logged_in(mailstore, user)
    second = mailstore.connect()
    await second.greeting()
    await second.transact("+OK", f"USER {user.address}")
    assert await second.transact("-ERR", f"PASS {PASSWORD}") == [
        "-ERR [IN-USE] maildrop already locked by another session"
    ]
    await first.transact("+OK", "QUIT")
    await mailstore.ended(first)
    await second.transact("+OK", f"USER {user.address}")
    await second.transact("+OK", f"PASS {PASSWORD}")


# -- CAPA -----------------------------------------------------------------------------------


async def test_capa_before_and_after_login(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = mailstore.connect()
    await pop.greeting()
    assert await pop.transact("+OK", "CAPA", multiline=True) == [
        "+OK capability list follows",
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
        "USER", "SASL PLAIN LOGIN", "UTF8 USER", "EXPIRE NEVER", "IMPLEMENTATION mailstead",
    ]
    await pop.transact("+OK", f"USER {user.address}")
    await pop.transact("+OK", f"PASS {PASSWORD}")
    assert await pop.transact("+OK", "CAPA", multiline=True) == [
        "+OK capability list follows",
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
        "EXPIRE NEVER", "IMPLEMENTATION mailstead",
    ]


async def test_capa_offers_stls_where_it_can(
    mailstore: Mailstore, tls_contexts: TLSContexts
) -> None:
    """RFC 2595 §4: STLS on a plaintext STLS listener with a certificate, before login."""
    starttls = mailstore.connect(allow_plaintext=False, tls=tls_contexts)
    await starttls.greeting()
    assert await starttls.transact("+OK", "CAPA", multiline=True) == [
        "+OK capability list follows",
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
        "STLS", "UTF8 USER", "EXPIRE NEVER", "IMPLEMENTATION mailstead",
    ]
    plain = mailstore.connect(allow_plaintext=False, tls=tls_contexts, tls_mode=TLSMode.NONE)
    await plain.greeting()
    assert "STLS" not in await plain.transact("+OK", "CAPA", multiline=True)
    assert await plain.transact("-ERR", "STLS") == ["-ERR STLS not available"]


# -- state, unknown commands, limits --------------------------------------------------------


async def test_commands_outside_their_state(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))
    pop = mailstore.connect()
    await pop.greeting()
    for command in ("STAT", "LIST", "UIDL 1", "RETR 1", "TOP 1 0", "DELE 1", "NOOP", "RSET"):
        assert await pop.transact("-ERR", command) == [NOT_IN_STATE], command
    # The state is checked before the arguments: a malformed one changes nothing.
    assert await pop.transact("-ERR", "RETR x") == [NOT_IN_STATE]
    pop = await logged_in(mailstore, user)  # a new session: that one used 9 of 10 errors
    for command in ("USER x", "PASS x", "AUTH PLAIN", "STLS", "UTF8"):
        assert await pop.transact("-ERR", command) == [NOT_IN_STATE], command


async def test_unknown_commands(mailstore: Mailstore) -> None:
    pop = mailstore.connect()
    await pop.greeting()
    # APOP is not offered: it needs the password in a recoverable form.
    for command in ("APOP user 0123456789abcdef", "XYZZY", "STATUS", "stat2"):
        assert await pop.transact("-ERR", command) == ["-ERR unknown command"], command
    assert await pop.transact("-ERR", "") == ["-ERR empty command"]
    assert await pop.transact("-ERR", "CAPA \x01") == ["-ERR control characters in command"]


async def test_error_budget_closes_the_connection(mailstore: Mailstore) -> None:
    """Ten counted errors (bad syntax, wrong state, unknown commands) and it is over."""
    pop = mailstore.connect()
    await pop.greeting()
    for _ in range(9):
        await pop.transact("-ERR", "BOGUS")
    assert await pop.transact("-ERR", "STAT") == [NOT_IN_STATE]
    assert await pop.line() == "-ERR too many errors, closing connection"
    await pop.peer.wait_closed()


async def test_ordinary_refusals_do_not_count(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    pop = await logged_in(mailstore, user)
    for _ in range(15):
        assert await pop.transact("-ERR", "RETR 9") == ["-ERR no such message"]
    assert await pop.transact("+OK", "NOOP") == ["+OK"]


async def test_line_too_long(mailstore: Mailstore) -> None:
    """The read loop refuses an over-long line whole and reads on (RFC 2449 §4)."""
    pop = mailstore.connect(max_line_length=100)
    await pop.greeting()
    pop.peer.send_line("USER " + "x" * 200)
    assert await pop.line() == "-ERR line too long"
    assert await pop.transact("+OK", "QUIT") == ["+OK bye"]


async def test_long_lines_use_up_the_error_budget(mailstore: Mailstore) -> None:
    """An over-long line is a counted error like any other: the tenth one closes."""
    pop = mailstore.connect(max_line_length=100)
    await pop.greeting()
    pop.peer.send(("x" * 200 + "\r\n") * 12)
    assert [await pop.line() for _ in range(11)] == [
        *["-ERR line too long"] * 10, "-ERR too many errors, closing connection"
    ]
    await pop.peer.wait_closed()
    assert pop.peer.pending() == b""


async def test_idle_session_is_closed_without_committing(mailstore: Mailstore) -> None:
    """RFC 1939 §3: the autologout timer closes without entering UPDATE."""
    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))
    pop = await logged_in(mailstore, user, idle_timeout=0.05)
    await pop.transact("+OK", "DELE 1")
    await pop.peer.wait_closed()  # the client says nothing more
    await mailstore.ended(pop)
    assert len(await mailstore.messages(user)) == 1
    assert mailstore.locks.acquire(user.id)  # released


async def test_dropped_connection_commits_nothing(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))
    pop = await logged_in(mailstore, user)
    await pop.transact("+OK", "DELE 1")
    pop.peer.hang_up()
    await mailstore.ended(pop)
    assert len(await mailstore.messages(user)) == 1
    assert mailstore.locks.acquire(user.id)


async def test_internal_error_is_generic(
    mailstore: Mailstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a handler: a generic -ERR, no detail, the session closed, nothing
    committed, and the lock released (what production does: the sanity flag is off)."""
    monkeypatch.delenv(sanity.ENV_VAR)

    async def broken(session: Any, state: Any, args: None) -> None:
        raise RuntimeError("secret internal detail")

    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))
    table = {**COMMANDS, "NOOP": CommandSpec(no_arguments, broken, TRANSACTION)}
    pop = await logged_in(mailstore, user, commands=table)
    await pop.transact("+OK", "DELE 1")
    assert await pop.transact("-ERR", "NOOP") == ["-ERR [SYS/TEMP] internal server error"]
    await pop.peer.wait_closed()
    assert b"secret" not in pop.peer.transcript
    assert len(await mailstore.messages(user)) == 1
    await logged_in(mailstore, user)  # the lock was released


# -- the maildrop ---------------------------------------------------------------------------


async def test_stat_list_uidl(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    uids = [await mailstore.deliver(user, message(n)) for n in (1, 2)]
    validity = (await mailstore.store.get_mailbox(user.id, "INBOX")).uidvalidity
    sizes = [len(message(1)), len(message(2))]
    pop = await logged_in(mailstore, user)
    assert await pop.transact("+OK", "STAT") == [f"+OK 2 {sum(sizes)}"]
    assert await pop.transact("+OK", "LIST", multiline=True) == [
        f"+OK 2 messages ({sum(sizes)} octets)", f"1 {sizes[0]}", f"2 {sizes[1]}"
    ]
    assert await pop.transact("+OK", "LIST 2") == [f"+OK 2 {sizes[1]}"]
    assert await pop.transact("+OK", "UIDL", multiline=True) == [
        "+OK unique-id listing follows", f"1 {validity}.{uids[0]}", f"2 {validity}.{uids[1]}"
    ]
    assert await pop.transact("+OK", "UIDL 1") == [f"+OK 1 {validity}.{uids[0]}"]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("RETR", "-ERR message number required"),
        ("RETR x", "-ERR invalid number"),
        ("RETR 0", "-ERR invalid message number"),
        ("RETR 2", "-ERR no such message"),
        ("LIST 2", "-ERR no such message"),
        ("UIDL 01x", "-ERR invalid number"),
        ("DELE", "-ERR message number required"),
        ("TOP 1", "-ERR syntax: TOP msg lines"),
        ("TOP 1 x", "-ERR invalid number"),
        ("TOP 1 2 3", "-ERR syntax: TOP msg lines"),
    ],
)
async def test_bad_message_arguments(mailstore: Mailstore, command: str, reply: str) -> None:
    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))
    pop = await logged_in(mailstore, user)
    assert await pop.transact("-ERR", command) == [reply]
    assert await pop.transact("+OK", "NOOP") == ["+OK"]  # the session goes on


async def test_retr_is_dot_stuffed(mailstore: Mailstore) -> None:
    """RFC 1939 §3: a line starting with "." gets another; the body ends with ".CRLF"."""
    body = b".starts with a dot\r\n..two dots\r\n.\r\nnot the end\r\n"
    raw = message(1, body)
    user = await mailstore.add_user()
    await mailstore.deliver(user, raw)
    pop = await logged_in(mailstore, user)
    pop.peer.send_line("RETR 1")
    assert await pop.line() == f"+OK {len(raw)} octets"
    lines = await wire_lines(pop)
    assert lines[-5:] == [
        b"..starts with a dot\r\n", b"...two dots\r\n", b"..\r\n", b"not the end\r\n", b".\r\n"
    ]
    assert b"".join(lines[:-1]).replace(b"\r\n..", b"\r\n.") == raw


async def test_top(mailstore: Mailstore) -> None:
    """RFC 1939 §7: the header, the blank line, then n lines of the body, stuffed too."""
    raw = message(1, b"line 1\r\n.line 2\r\nline 3\r\n")
    header = raw[: raw.index(b"\r\n\r\n") + 4]
    user = await mailstore.add_user()
    await mailstore.deliver(user, raw)
    pop = await logged_in(mailstore, user)
    for n, expected in [
        (0, header),
        (2, header + b"line 1\r\n..line 2\r\n"),
        (99, header + b"line 1\r\n..line 2\r\nline 3\r\n"),
    ]:
        pop.peer.send_line(f"TOP 1 {n}")
        assert await pop.line() == "+OK top of message follows"
        assert b"".join(await wire_lines(pop)) == expected + b".\r\n", n


async def test_top_without_a_header_or_a_body(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    await mailstore.deliver(user, b"\r\nbody line\r\nsecond\r\n")
    await mailstore.deliver(user, b"Subject: only a header\r\n")
    pop = await logged_in(mailstore, user)
    assert await pop.transact("+OK", "TOP 1 1", multiline=True) == [
        "+OK top of message follows", "", "body line"
    ]
    assert await pop.transact("+OK", "TOP 2 5", multiline=True) == [
        "+OK top of message follows", "Subject: only a header"
    ]


async def test_dele_and_rset(mailstore: Mailstore) -> None:
    user = await mailstore.add_user()
    for n in (1, 2):
        await mailstore.deliver(user, message(n))
    total = len(message(1)) + len(message(2))
    pop = await logged_in(mailstore, user)
    assert await pop.transact("+OK", "DELE 1") == ["+OK message 1 deleted"]
    assert await pop.transact("+OK", "STAT") == [f"+OK 1 {len(message(2))}"]
    for command in ("DELE 1", "RETR 1", "LIST 1", "UIDL 1", "TOP 1 0"):
        assert await pop.transact("-ERR", command) == ["-ERR message 1 already deleted"]
    assert await pop.transact("+OK", "LIST", multiline=True) == [
        f"+OK 1 messages ({len(message(2))} octets)", f"2 {len(message(2))}"
    ]
    assert await pop.transact("+OK", "RSET") == [f"+OK maildrop has 2 messages ({total} octets)"]
    assert await pop.transact("+OK", "QUIT") == ["+OK bye, 0 message(s) deleted"]
    assert len(await mailstore.messages(user)) == 2


@pytest.mark.parametrize("policy", list(Pop3Policy))
async def test_quit_commits_under_the_policy(mailstore: Mailstore, policy: Pop3Policy) -> None:
    """RFC 1939 §6: QUIT commits the marks; the account's policy says what that means."""
    user = await mailstore.add_user(policy)
    uids = [await mailstore.deliver(user, message(n)) for n in (1, 2)]
    pop = await logged_in(mailstore, user)
    await pop.transact("+OK", "DELE 1")
    outcome = "deleted" if policy is Pop3Policy.DELETE else policy.value
    assert await pop.transact("+OK", "QUIT") == [f"+OK bye, 1 message(s) {outcome}"]
    await pop.peer.wait_closed()
    inbox = {m.uid: m for m in await mailstore.messages(user)}
    archived = await mailstore.messages(user, "Archive")
    match policy:
        case Pop3Policy.DELETE:
            assert list(inbox) == [uids[1]] and archived == []
        case Pop3Policy.ARCHIVE:
            assert list(inbox) == [uids[1]] and len(archived) == 1
        case Pop3Policy.KEEP | Pop3Policy.MARK_READ:
            assert list(inbox) == uids and archived == []
            assert inbox[uids[0]].flags == (
                {POP3_DELETED, SEEN} if policy is Pop3Policy.MARK_READ else {POP3_DELETED}
            )
    # Whatever the policy, the next session does not offer the message again.
    again = await logged_in(mailstore, user)
    assert await again.transact("+OK", "STAT") == [f"+OK 1 {len(message(2))}"]


async def test_quit_that_cannot_commit_changes_nothing(
    mailstore: Mailstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await mailstore.add_user()
    await mailstore.deliver(user, message(1))

    async def unavailable(*args: object) -> None:
        raise StorageUnavailable("disk full")

    pop = await logged_in(mailstore, user)
    await pop.transact("+OK", "DELE 1")
    monkeypatch.setattr(mailstore.store, "delete_messages", unavailable)
    assert await pop.transact("-ERR", "QUIT") == [
        "-ERR [SYS/TEMP] some deleted messages not removed, nothing was changed"
    ]
    await pop.peer.wait_closed()
    monkeypatch.undo()
    assert len(await mailstore.messages(user)) == 1
    assert mailstore.locks.acquire(user.id)


async def test_message_expunged_since_login(mailstore: Mailstore) -> None:
    """RFC 1939 §8: the list is fixed at login; a body gone since is an in-band -ERR."""
    raw = message(1, b"only here\r\n")
    user = await mailstore.add_user()
    uid = await mailstore.deliver(user, raw)
    pop = await logged_in(mailstore, user)
    inbox = await mailstore.store.get_mailbox(user.id, "INBOX")
    await mailstore.store.delete_messages(inbox.id, [uid])
    await mailstore.store.collect_garbage(0)
    assert await pop.transact("-ERR", "RETR 1") == ["-ERR message is no longer available"]
    assert await pop.transact("+OK", "LIST 1") == [f"+OK 1 {len(raw)}"]


# -- pipelining -----------------------------------------------------------------------------


async def test_pipelining(mailstore: Mailstore) -> None:
    """RFC 2449 §6.6: many commands in one send, answered in order."""
    user = await mailstore.add_user()
    for n in (1, 2):
        await mailstore.deliver(user, message(n))
    pop = mailstore.connect()
    await pop.greeting()
    pop.peer.send(
        f"USER {user.address}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nRETR 2\r\n"
        "DELE 2\r\nBOGUS\r\nRSET\r\nDELE 1\r\nQUIT\r\n"
    )
    size1, size2 = len(message(1)), len(message(2))
    assert [await pop.line() for _ in range(5)] == [
        "+OK send PASS",
        f"+OK maildrop has 2 messages ({size1 + size2} octets)",
        f"+OK 2 {size1 + size2}",
        f"+OK 2 messages ({size1 + size2} octets)",
        f"1 {size1}",
    ]
    assert [await pop.line() for _ in range(3)] == [f"2 {size2}", ".", f"+OK {size2} octets"]
    assert b"".join(await wire_lines(pop)) == message(2) + b".\r\n"
    assert [await pop.line() for _ in range(5)] == [
        "+OK message 2 deleted",
        "-ERR unknown command",
        f"+OK maildrop has 2 messages ({size1 + size2} octets)",
        "+OK message 1 deleted",
        "+OK bye, 1 message(s) deleted",
    ]
    await pop.peer.wait_closed()
    assert len(await mailstore.messages(user)) == 1
