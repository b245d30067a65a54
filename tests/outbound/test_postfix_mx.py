"""Postfix (the Debian package) as the remote MX: mailstead instance A finds it through an
MX record served by the loopback DNS server and delivers to it; Postfix's Maildir copy
carries A's DKIM signature, which verifies against the key published in the test zone. A
recipient Postfix does not know (550 at RCPT) comes back to the sender as a bounce.

Postfix runs as a private instance (tests/interop/postfix.py) on a free 127.0.0.1 port;
the test is skipped when Postfix is not installed."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailstead.delivery.dkim import generate_key
from mailstead.delivery.remote import ClientTLS, OutMessage, OutRecipient, RemoteSession, TLSPolicy
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import ServerThread, deep_merge
from tests.interop.postfix import Postfix, PostfixUnavailable

from .conftest import SENDER_PASSWORD, record_writes, submit

pytestmark = pytest.mark.interop

PASSWORD = SENDER_PASSWORD
DOMAIN = "pf.test"


@pytest.fixture
def postfix_mx() -> Iterator[Postfix]:
    instance = Postfix(DOMAIN, ["bob"])
    try:
        instance.start()
    except PostfixUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def sender(tmp_path: Path, dns_server: TestDNSServer, postfix_mx: Postfix
           ) -> Iterator[ServerThread]:
    key = generate_key(tmp_path / "a" / "data", "a.test", "s1", "rsa2048")
    dns_server.add_many([
        (DOMAIN, "MX", f"10 mx.{DOMAIN}"), (f"mx.{DOMAIN}", "A", "127.0.0.1"),
        (key.record_name, "TXT", key.txt_value),
    ])
    config: dict[str, Any] = deep_merge(dns_server.settings(), {
        "hostname": "mx.a.test",
        "delivery": {"enabled": True, "smtp_port": postfix_mx.port, "poll_seconds": 0.2},
    })
    with ServerThread(tmp_path / "a", config) as a:
        a.add_user("alice@a.test", PASSWORD)
        yield a


def test_mail_arrives_in_postfix_maildir_signed(sender: ServerThread, postfix_mx: Postfix,
                                                dns_server: TestDNSServer) -> None:
    submit(sender, f"bob@{DOMAIN}", subject="to postfix", message_id="pf1@a.test")
    [stored] = postfix_mx.wait_maildir("bob", 1)
    # Maildir files use the local line ending; the wire form (and the signature) is CRLF.
    raw = stored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "to postfix"
    assert parsed["Delivered-To"] == f"bob@{DOMAIN}"
    assert parsed["Return-Path"] == "<alice@a.test>"
    assert "Hello Bob." in raw.decode()
    # Postfix's Received line names mailstead's EHLO.
    assert b"mx.a.test" in raw.split(b"\r\n\r\n")[0]
    start = raw.index(b"DKIM-Signature:")
    assert b"d=a.test" in raw and b"s=s1" in raw
    assert dkim.verify(raw[start:], dnsfunc=dns_server.lookup_txt)
    assert sender.call(sender.store.queued_messages()) == []
    assert "status=sent (delivered to maildir)" in postfix_mx.log()


def test_unknown_postfix_user_bounces_to_the_sender(sender: ServerThread,
                                                    postfix_mx: Postfix) -> None:
    submit(sender, f"nobody@{DOMAIN}", subject="to postfix", message_id="pf1@a.test")
    [raw] = sender.wait_for_inbox("alice@a.test", 1)
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    text = raw.decode("utf-8", "replace")
    assert f"<nobody@{DOMAIN}>" in text and "550 5.1.1" in text
    assert "User unknown in virtual mailbox table" in text
    assert "Action: failed" in text
    assert postfix_mx.count("bob") == 0

    async def queue_empty() -> bool | None:
        # The bounce is stored in the same settlement that drops the queued message,
        # which may finish a moment after the bounce shows in the inbox.
        return True if await sender.store.queued_messages() == [] else None

    sender.wait_for(queue_empty, timeout=10, what="the outbound queue emptying")


async def test_our_client_sends_postfix_one_bdat_chunk(postfix_mx: Postfix,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Postfix offers CHUNKING (since 3.4): the message goes as one BDAT chunk, as it is,
    and its lines that start with a dot arrive as they were (RFC 3030 §2)."""
    data = (f"From: <alice@a.test>\r\nTo: <bob@{DOMAIN}>\r\nSubject: chunked\r\n\r\n"
            ".leading dot\r\n.\r\nend\r\n").encode()
    session = await RemoteSession.connect(
        f"mx.{DOMAIN}", "127.0.0.1", postfix_mx.port, helo="mx.a.test",
        tls=TLSPolicy(ClientTLS.OPPORTUNISTIC), connect_timeout=10, command_timeout=30,
        data_timeout=30)
    assert "CHUNKING" in session.extensions and "PIPELINING" in session.extensions
    writes = record_writes(session, monkeypatch)
    result = await session.send(OutMessage("alice@a.test", [OutRecipient(f"bob@{DOMAIN}")],
                                           data))
    await session.close()
    assert result.replies[f"bob@{DOMAIN}"].is_positive
    assert f"BDAT {len(data)} LAST\r\n".encode() in writes
    [stored] = postfix_mx.wait_maildir("bob", 1)
    assert stored.replace(b"\r\n", b"\n").endswith(data.split(b"\r\n\r\n", 1)[1]
                                                    .replace(b"\r\n", b"\n"))
