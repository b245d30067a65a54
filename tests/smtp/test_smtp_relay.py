"""The open-relay battery: every classic trick is refused, and nothing reaches the queue."""

from __future__ import annotations

import smtplib

import pytest

from tests.smtp.conftest import Connect, Mailserver, message

TRICKS = [
    # (RCPT argument, acceptable reply codes)
    ("<someone@remote.example>", {554}),  # plain unauthenticated relay
    ("<someone@REMOTE.example.>", {554}),
    ("<someone@[192.0.2.1]>", {554}),  # address literal
    ("<someone@[127.0.0.1]>", {554}),
    ("<someone%remote.example@example.org>", {550}),  # percent hack
    ("<someone%remote.example@[127.0.0.1]>", {554}),
    ("<remote.example!someone@example.org>", {550}),  # UUCP bang path
    ("<remote.example!someone>", {501}),
    ("<@example.org:someone@remote.example>", {501}),  # source route
    ("<@example.org,@localhost:someone@remote.example>", {501}),
    ('<"someone@remote.example"@example.org>', {550}),  # quoted local part
    ('<"someone@remote.example">', {501}),
    ('<"someone%remote.example"@example.org>', {550}),
    ("<someone@remote.example@example.org>", {501}),
    ("<someone@remote.example> NOTIFY=NEVER", {554}),
    ("someone@remote.example", {501}),  # no brackets
]


@pytest.mark.parametrize(("rcpt", "codes"), TRICKS)
def test_relay_tricks_on_mx_are_refused(
    server: Mailserver, raw: Connect, rcpt: str, codes: set[int]
) -> None:
    client = raw("smtp")
    client.command(b"EHLO attacker.example")
    assert client.command(b"MAIL FROM:<alice@example.org>")[0] == 250  # spoofed local sender
    code, text = client.command(f"RCPT TO:{rcpt}".encode())
    assert code in codes, (rcpt, code, text)
    client.command(b"DATA")
    assert server.queue() == []


def test_tricks_with_a_catch_all_stay_local(server: Mailserver) -> None:
    server.call(server.store.add_alias("@example.org", ["bob@example.org"]))
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
        client.ehlo()
        client.mail("x@remote.example")
        for rcpt in ("someone%remote.example@example.org", "remote.example!someone@example.org",
                     '"someone@remote.example"@example.org'):
            assert client.rcpt(rcpt)[0] == 250  # local catch-all, not a route
        assert client.rcpt("someone@remote.example")[0] == 554
        assert client.data(message("caught"))[0] == 250
    assert server.queue() == []
    assert len(server.messages(server.bob)) == 1


def test_submission_without_auth_cannot_send_as_a_local_user(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.ehlo()
        client.starttls(context=server.client_context())
        client.ehlo()
        assert client.mail("alice@example.org")[0] == 530
        assert client.rcpt("bob@example.org")[0] == 503
        assert client.rcpt("someone@remote.example")[0] == 503
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.ehlo()
        assert client.mail("alice@example.org")[0] == 530
    assert server.queue() == []
    assert server.messages(server.bob) == []


def test_authenticated_user_cannot_spoof_another_user(server: Mailserver) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.login("bob@example.org", "correct horse battery staple")
        assert client.mail("alice@example.org")[0] == 553
        assert client.mail("alice%example.org@example.org")[0] == 553
        assert client.mail("postmaster@remote.example")[0] == 553
    assert server.queue() == []


def test_relay_via_alias_or_group_to_outside_is_forwarding_not_relay(server: Mailserver) -> None:
    # The administrator decides that a local address forwards outside: that is allowed.
    server.call(server.store.add_alias("fwd@example.org", ["out@remote.example"]))
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
        assert client.sendmail("x@remote.example", ["fwd@example.org"], message("fwd")) == {}
    [queued] = server.queue()
    assert [r.address for r in queued.envelope.recipients] == ["out@remote.example"]
