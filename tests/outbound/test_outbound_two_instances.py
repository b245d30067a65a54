"""Two real mailstead instances: A delivers to B found through MX records served by a DNS
server on loopback; B's copy carries a DKIM signature that verifies against the key
published in the test zone. A refusal by B comes back to the sender as a bounce."""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailstead.delivery.dkim import generate_key
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import ServerThread, deep_merge
from mailstead.testing.waiting import poll_until

from .conftest import SENDER_PASSWORD, submit

PASSWORD = SENDER_PASSWORD


@pytest.fixture
def pair(tmp_path: Path, dns_server: TestDNSServer) -> Iterator[tuple[ServerThread, ServerThread]]:
    with ServerThread(tmp_path / "b", {"hostname": "mx.b.test"}) as b:
        b.add_user("bob@b.test", PASSWORD)
        key = generate_key(tmp_path / "a" / "data", "a.test", "s1", "rsa2048")
        dns_server.add_many([
            ("b.test", "MX", "10 mx.b.test"), ("mx.b.test", "A", "127.0.0.1"),
            (key.record_name, "TXT", key.txt_value),
        ])
        config: dict[str, Any] = deep_merge(dns_server.settings(), {
            "hostname": "mx.a.test",
            "delivery": {"enabled": True, "smtp_port": b.port("smtp"), "poll_seconds": 0.2},
        })
        with ServerThread(tmp_path / "a", config) as a:
            a.add_user("alice@a.test", PASSWORD)
            yield a, b


def test_mail_crosses_to_the_other_instance_signed(pair: tuple[ServerThread, ServerThread],
                                                   dns_server: TestDNSServer) -> None:
    a, b = pair
    submit(a, "bob@b.test", subject="across", message_id="x1@a.test")
    [raw] = b.wait_for_inbox("bob@b.test", 1)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "across"
    assert "Hello Bob." in raw.decode()
    # B's Received line says it came from A over TLS (opportunistic STARTTLS).
    assert b"TLS" in raw.split(b"\r\n\r\n")[0]
    start = raw.index(b"DKIM-Signature:")
    assert b"d=a.test" in raw and b"s=s1" in raw
    assert dkim.verify(raw[start:], dnsfunc=dns_server.lookup_txt)

    async def queue_empty() -> bool | None:
        # B stored the message before answering 250; A retires it once it reads the 250.
        return True if await a.store.queued_messages() == [] else None

    a.wait_for(queue_empty, what="A's queue emptying")


def test_refusal_by_the_other_instance_bounces_to_the_sender(
        pair: tuple[ServerThread, ServerThread], caplog: pytest.LogCaptureFixture) -> None:
    a, _ = pair
    caplog.set_level(logging.INFO, logger="mailstead.delivery")
    submit(a, "nobody@b.test", subject="across", message_id="x1@a.test")
    [raw] = a.wait_for_inbox("alice@a.test", 1)
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    text = raw.decode("utf-8", "replace")
    assert "<nobody@b.test>" in text and "550 5.1.1" in text
    assert "Action: failed" in text
    bounces = [r.getMessage() for r in caplog.records if ": DSN to <" in r.getMessage()]
    assert len(bounces) == 1 and bounces[0].endswith(
        ": DSN to <alice@a.test>: nobody@b.test failed")  # the bounce is logged, once


def test_the_queue_id_is_in_the_reply_the_trace_and_every_outcome_line(
        pair: tuple[ServerThread, ServerThread], caplog: pytest.LogCaptureFixture) -> None:
    """The 250 says `queued as ID`; the copy B stores has ID in A's Received line; A logs
    one line per recipient outcome with ID, the recipient, where it went and the reply."""
    import smtplib
    import ssl

    a, b = pair
    caplog.set_level(logging.INFO, logger="mailstead.delivery")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", a.port("submission"), timeout=30) as client:
        client.starttls(context=context)
        client.login("alice@a.test", PASSWORD)
        client.mail("alice@a.test")
        client.rcpt("bob@b.test")
        code, reply = client.data(b"From: <alice@a.test>\r\nSubject: ids\r\n\r\nhi\r\n")
    assert code == 250
    match = re.fullmatch(rb"2\.0\.0 OK: queued as ([0-9a-f]{16})", reply)
    assert match, reply
    queue_id = match.group(1).decode()
    [raw] = b.wait_for_inbox("bob@b.test", 1)
    assert f"id {queue_id}".encode() in raw  # A's Received line, kept by B
    line = poll_until(
        lambda: next((r.getMessage() for r in caplog.records
                      if r.getMessage().startswith(f"{queue_id}: to=<bob@b.test>")), None),
        timeout=10, failure=lambda: "no outcome line for the message")
    assert " delivered via mx.b.test[127.0.0.1]:" in line and line.endswith("queued as "
                                                                           + line[-16:])
