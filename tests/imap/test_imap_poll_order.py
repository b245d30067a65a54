"""NOOP and CHECK report pending expunges before flag changes (RFC 9051 §7.5.1 allows
EXPUNGE there: they name no messages), so the FETCH carries the new sequence number."""

from __future__ import annotations

from mailstead.testing.server import ServerThread
from tests.imap.conftest import Raw, append, connect


def test_noop_sends_expunge_before_flag_fetch(server: ServerThread, account: str) -> None:
    other = connect(server, account)
    for _ in range(3):
        append(other)
    raw = Raw(server.port("imap"), login=account)
    raw.command("SELECT INBOX")
    other.select("INBOX")
    other.store("2", "+FLAGS", "(\\Seen)")
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = raw.command("NOOP")
    assert lines[0] == b"* 1 EXPUNGE\r\n"
    assert b"* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n" in lines
    assert not any(b"* 2 FETCH" in line for line in lines)
    # A command with a sequence set still sees the numbers the client knew: no EXPUNGE
    # before COPY resolves "2".
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = raw.command("COPY 2 INBOX")
    assert lines[-1].split()[1] == b"OK"
    assert lines.index(b"* 1 EXPUNGE\r\n") < len(lines) - 1
    assert b"[COPYUID" in lines[-1] and b" 3 " in lines[-1]  # message 2 was UID 3
    other.logout()
    raw.close()


def test_subscribe_to_a_name_that_does_not_exist(server: ServerThread, account: str) -> None:
    """RFC 9051 §6.3.7: subscriptions are names; LIST shows a missing one \\NonExistent."""
    raw = Raw(server.port("imap"), login=account)
    assert raw.command("SUBSCRIBE later")[-1].split()[1] == b"OK"
    lines = raw.command('LIST (SUBSCRIBED) "" "later"')
    assert lines[0] == b'* LIST (\\NonExistent \\Subscribed) "/" "later"\r\n'
    assert raw.command("UNSUBSCRIBE later")[-1].split()[1] == b"OK"
    raw.close()
