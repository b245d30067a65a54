"""Submission (587, STARTTLS then AUTH) and submissions (465, implicit TLS)."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from tests.smtp.conftest import (
    PASSWORD,
    Connect,
    Mailserver,
    MakeServer,
    message,
    strip_trace,
    trace_headers,
)

ALICE = "Alice <alice@example.org>"


def login(server: Mailserver, client: smtplib.SMTP, user: str = "alice@example.org") -> None:
    client.ehlo("laptop.example")
    client.starttls(context=server.client_context())
    client.ehlo("laptop.example")
    client.login(user, PASSWORD)


def test_auth_is_not_offered_before_tls(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHg=")[0] == 538
        assert client.mail("alice@example.org") == (
            530, b"5.7.0 Must issue a STARTTLS command first")


def test_starttls_then_auth_then_send_anywhere(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.ehlo()
        client.starttls(context=server.client_context())
        client.ehlo()
        assert client.has_extn("auth")
        assert not client.has_extn("starttls")
        assert "PLAIN" in client.esmtp_features["auth"]
        client.login("alice@example.org", PASSWORD)
        refused = client.sendmail("alice@example.org", ["bob@example.org", "carol@remote.example"],
                                  message("submitted", author=ALICE))
        assert refused == {}
    [stored] = server.messages(server.bob)
    assert strip_trace(stored) == message("submitted", author=ALICE)
    trace = trace_headers(stored).decode().replace("\r\n\t", " ")
    assert "with ESMTPSA (TLSv1." in trace
    assert "(authenticated as alice@example.org)" in trace
    [queued] = server.queue()
    assert queued.envelope.mail_from == "alice@example.org"
    assert [r.address for r in queued.envelope.recipients] == ["carol@remote.example"]
    assert queued.envelope.auth_user == "alice@example.org"
    body = server.call(server.store.read_blob(queued.blob_id))
    assert body.startswith(b"Received: ")  # no Return-Path: that is for final delivery
    assert strip_trace(body) == message("submitted", author=ALICE)


def test_implicit_tls_submissions_and_auth_login(server: Mailserver) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.ehlo()
        assert client.has_extn("auth")
        client.user, client.password = "bob@example.org", PASSWORD
        assert client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0] == 235
        assert client.sendmail("bob@example.org", ["alice@example.org"],
                               message("tls", author="bob@example.org")) == {}
    assert len(server.messages(server.alice)) == 1


def test_mail_requires_auth_after_tls(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.ehlo()
        client.starttls(context=server.client_context())
        client.ehlo()
        assert client.mail("alice@example.org") == (530, b"5.7.0 Authentication required")


def test_wrong_password_and_unknown_user_get_the_same_535(server: Mailserver) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong_password:
            client.login("alice@example.org", "wrong")
        assert wrong_password.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError) as unknown_user:
            client.login("nobody@example.org", "wrong")
        # Nothing tells which accounts exist.
        assert (unknown_user.value.smtp_code, unknown_user.value.smtp_error) == (
            535, wrong_password.value.smtp_error)
        # The failures ended nothing: the right password still works on this connection.
        assert client.login("alice@example.org", PASSWORD)[0] == 235


def test_auth_cancel_and_bad_mechanism(server: Mailserver) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.ehlo()
        assert client.docmd("AUTH", "CRAM-MD5")[0] == 504
        assert client.docmd("AUTH", "LOGIN")[0] == 334
        assert client.docmd("*")[0] == 501
        assert client.docmd("AUTH", "PLAIN !!!notbase64")[0] == 501
        client.login("alice@example.org", PASSWORD)
        assert client.docmd("AUTH", "PLAIN")[0] == 503  # already authenticated


def test_sender_must_be_own_address_or_alias(server: Mailserver) -> None:
    server.call(server.store.add_alias("sales@example.org", ["alice@example.org"]))
    server.call(server.store.add_alias("@example.org", ["alice@example.org"]))  # catch-all
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.ehlo()
        client.login("alice@example.org", PASSWORD)
        for own in ("alice@example.org", "Alice+news@EXAMPLE.org", "sales@example.org"):
            assert client.mail(own)[0] == 250, own
            client.rset()
        for foreign in ("bob@example.org", "anything@example.org", "boss@remote.example", ""):
            code, text = client.mail(foreign)
            assert (code, text[:5]) == (553, b"5.7.1"), foreign
            client.rset()


def test_starttls_discards_pipelined_plaintext(server: Mailserver, raw: Connect) -> None:
    client = raw("submission")
    client.command(b"EHLO x")
    # A man in the middle appends a command after STARTTLS in the same packet.
    client.send(b"STARTTLS\r\nMAIL FROM:<alice@example.org>\r\n")
    assert client.reply()[0] == 220
    client.starttls(server.client_context())
    # The injected MAIL must not have been executed over TLS: the next reply is to EHLO.
    code, lines = (client.send(b"EHLO x\r\n"), client.reply())[1]
    assert code == 250 and lines[0].startswith(b"localhost")
    assert client.command(b"RCPT TO:<bob@example.org>")[0] == 503


def test_starttls_forgets_helo_and_refuses_second_starttls(
    server: Mailserver, raw: Connect
) -> None:
    client = raw("smtp")
    client.command(b"EHLO x")
    assert client.command(b"STARTTLS")[0] == 220
    client.starttls(server.client_context())
    assert client.command(b"MAIL FROM:<a@remote.example>")[0] == 503  # EHLO again first
    client.command(b"EHLO x")
    assert client.command(b"STARTTLS")[0] == 503


def test_mx_received_header_records_tls(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
        client.starttls(context=server.client_context())
        client.sendmail("s@remote.example", ["alice@example.org"], message("over tls"))
    [stored] = server.messages(server.alice)
    assert b"with ESMTPS (TLSv1." in trace_headers(stored)


def test_plaintext_auth_when_the_admin_allows_it(make_server: MakeServer) -> None:
    server = make_server({"auth": {"allow_plaintext": True}})
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.ehlo()
        assert client.has_extn("auth")
        client.login("alice@example.org", PASSWORD)
        assert client.sendmail("alice@example.org", ["bob@example.org"],
                               message("plain", author=ALICE)) == {}


def test_tls_handshake_failure_is_quiet(server: Mailserver) -> None:
    context = ssl.create_default_context()  # does not trust the self-signed certificate
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.ehlo()
        with pytest.raises(ssl.SSLError):
            client.starttls(context=context)
    # The server carries on serving others.
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
        assert client.noop()[0] == 250


def test_failed_logins_are_throttled(make_server: MakeServer) -> None:
    server = make_server({"auth": {"max_failures": 1, "lockout_failures": 2}})
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.ehlo()
        codes = []
        for _ in range(3):
            try:
                client.login("alice@example.org", "wrong")
            except smtplib.SMTPAuthenticationError as exc:
                codes.append(exc.smtp_code)
        assert codes[0] == 535
        assert codes[-1] == 454  # locked out: 454 4.7.0 even before checking the password
    # The lock is per account and address, shared with IMAP and POP3 (one Throttle).
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login("alice@example.org", PASSWORD)
        assert failure.value.smtp_code == 454


def test_bare_lf_from_a_logged_in_client_becomes_crlf(server: Mailserver) -> None:
    """``curl --upload-file`` of a Unix text file sends bare LF; it was refused with
    ``550 5.5.2``. Smuggling is not a risk from an authenticated client; the MX still
    refuses bare LF (test_smtp_limits)."""
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        login(server, client)
        assert client.mail("alice@example.org")[0] == 250
        assert client.rcpt("bob@example.org")[0] == 250
        assert client.docmd("DATA")[0] == 354
        client.send(b"From: alice@example.org\nSubject: unix\n\nline one\nline two\r\n.\r\n")
        assert client.getreply()[0] == 250
    [stored] = server.messages(server.bob)
    assert strip_trace(stored) == (
        b"From: alice@example.org\r\nSubject: unix\r\n\r\nline one\r\nline two\r\n")
