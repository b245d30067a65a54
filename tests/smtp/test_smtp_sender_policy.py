"""Submission accepts only senders the user may use: MAIL FROM, the header From: and Sender:.

Real smtplib clients against the running server; the refusal comes after the data, as
``550 5.7.1``, and nothing is stored or queued.
"""

from __future__ import annotations

import base64
import smtplib

import pytest

from mailstead.core.types import SendAs
from tests.smtp.conftest import PASSWORD, Connect, Mailserver, strip_trace

ALICE = "alice@example.org"


def letter(header: str) -> bytes:
    return (header.encode() + b"\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello Bob.\r\n")


def submit(server: Mailserver, header: str, *, mail_from: str = ALICE,
           user: str = ALICE) -> tuple[int, bytes]:
    """Send as ``user`` to bob; the reply to DATA."""
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.login(user, PASSWORD)
        assert client.mail(mail_from)[0] == 250
        assert client.rcpt("bob@example.org")[0] == 250
        return client.data(letter(header))


@pytest.fixture
def ours(server: Mailserver) -> Mailserver:
    server.call(server.store.add_alias("sales@example.org", ["alice@example.org"]))
    server.call(server.store.add_alias("team@example.org", ["bob@example.org"]))
    server.call(server.store.add_group("all@example.org", ["alice@example.org"]))
    return server


@pytest.mark.parametrize("header", [
    "From: alice@example.org",
    "From: Alice Example <Alice@EXAMPLE.org>",  # case does not matter
    "From: alice+newsletter@example.org",  # her subaddress
    "From: Sales <sales@example.org>",  # an alias that delivers to her
    '''From: "bob@example.org" <alice@example.org>''',  # a name that looks like Bob's
    "From: =?utf-8?q?B=C3=B6b?= <alice@example.org>",  # an encoded display name
    "From: alice@example.org, sales@example.org\r\nSender: alice@example.org",
    "From: Managing Partners:;\r\nSender: alice@example.org",  # RFC 6854 group, Sender
])
def test_what_she_may_send_as_is_accepted(ours: Mailserver, header: str) -> None:
    code, _ = submit(ours, header)
    assert code == 250
    [stored] = ours.messages(ours.bob)
    assert strip_trace(stored) == letter(header)


@pytest.mark.parametrize(("header", "reason"), [
    ("From: bob@example.org", b"Not authorized to send as <bob@example.org>"),
    ("From: team@example.org", b"Not authorized to send as <team@example.org>"),  # Bob's alias
    ("From: all@example.org", b"Not authorized to send as <all@example.org>"),  # a group
    ("From: boss@remote.example", b"Not authorized to send as <boss@remote.example>"),
    ('''From: "alice@example.org" <evil@remote.example>''',
     b"Not authorized to send as <evil@remote.example>"),
    ("From: =?utf-8?q?alice=40example=2Eorg?= <evil@remote.example>",
     b"Not authorized to send as <evil@remote.example>"),
    ("From: alice@example.org\r\nSender: bob@example.org",
     b"Not authorized to send as <bob@example.org>"),
    ("From: alice@example.org, sales@example.org",
     b"A From: with several addresses or a group needs a Sender: field"),
    ("From: alice@example.org, bob@example.org\r\nSender: alice@example.org",
     b"Not authorized to send as <bob@example.org>"),
    ("From: Everyone:;", b"A From: with several addresses or a group needs a Sender: field"),
    ("From: alice@example.org\r\nFrom: bob@example.org",
     b"Message must have exactly one From: header field"),
    ("X-Note: no From at all", b"Message must have exactly one From: header field"),
    # Read one way here and another way by some mail program: refused, not guessed at.
    ("From: alice@example.org <bob@example.org>",
     b"From: or Sender: header field cannot be read"),
    ("From: alice@example.org; bob@example.org",
     b"From: or Sender: header field cannot be read"),
])
def test_what_she_may_not_send_as_is_refused(
        ours: Mailserver, header: str, reason: bytes) -> None:
    assert submit(ours, header) == (550, b"5.7.1 " + reason)
    assert ours.messages(ours.bob) == []
    assert ours.queue() == []


def test_the_envelope_sender_is_checked_by_the_same_rule(ours: Mailserver) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", ours.port("submissions"),
                          context=ours.client_context()) as client:
        client.login(ALICE, PASSWORD)
        for own in ("alice@example.org", "alice+x@example.org", "sales@example.org"):
            assert client.mail(own)[0] == 250, own
            client.rset()
        for foreign in ("bob@example.org", "team@example.org", "x@remote.example", ""):
            assert client.mail(foreign) == (
                553, b"5.7.1 Sender address not owned by the authenticated user"), foreign
            client.rset()


def test_send_as_any_lets_the_account_use_any_sender(ours: Mailserver) -> None:
    header = "From: Newsletter <news@remote.example>"
    assert submit(ours, header)[0] == 550
    ours.call(ours.store.set_send_as(ALICE, SendAs.ANY))
    assert submit(ours, header, mail_from="bounces@remote.example")[0] == 250
    assert submit(ours, "From: bob@example.org", mail_from="")[0] == 250
    assert len(ours.messages(ours.bob)) == 2
    ours.call(ours.store.set_send_as(ALICE, SendAs.OWN))  # takes effect at the next message
    assert submit(ours, header)[0] == 550


def test_the_mx_does_not_judge_senders(ours: Mailserver) -> None:
    """Mail from the Internet carries other people's addresses, of course."""
    with smtplib.SMTP("127.0.0.1", ours.port("smtp")) as client:
        client.ehlo("mx.remote.example")
        refused = client.sendmail("x@remote.example", ["bob@example.org"],
                                  letter("From: bob@example.org"))
    assert refused == {}


def test_bdat_is_checked_as_data_is(ours: Mailserver, raw: Connect) -> None:
    client = raw("submissions", tls=ours.client_context())
    assert client.command(b"EHLO laptop.example")[0] == 250
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    assert client.command(b"AUTH PLAIN " + token)[0] == 235
    for header, expected in (("From: bob@example.org", 550), ("From: alice@example.org", 250)):
        body = letter(header)
        assert client.command(b"MAIL FROM:<alice@example.org>")[0] == 250
        assert client.command(b"RCPT TO:<bob@example.org>")[0] == 250
        client.send(b"BDAT %d LAST\r\n" % len(body) + body)
        code, lines = client.reply()
        assert code == expected, lines
    assert len(ours.messages(ours.bob)) == 1
