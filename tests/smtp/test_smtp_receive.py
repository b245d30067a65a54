"""MX receive end to end with smtplib: delivered bytes, trace headers, replies and limits."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.smtp.conftest import Connect, Mailserver, message, strip_trace, trace_headers

ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3} ")


def test_message_is_stored_byte_identical_with_trace_headers(server: Mailserver) -> None:
    original = message("identical", b"line one\r\n.starts with a dot\r\n\r\n\xe2\x82\xac 8bit\r\n")
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo("client.example")
        assert client.sendmail("sender@remote.example", ["alice@example.org"], original,
                               mail_options=["BODY=8BITMIME"]) == {}
    [stored] = server.messages(server.alice)
    assert strip_trace(stored) == original
    trace = trace_headers(stored).decode()
    assert trace.startswith("Return-Path: <sender@remote.example>\r\n"
                            "Delivered-To: alice@example.org\r\nReceived: from client.example")
    assert "[127.0.0.1]" in trace
    assert "by localhost (mailstead)" in trace
    assert "with ESMTP\r\n\tid " in trace
    assert "for <alice@example.org>;" in trace


def test_every_reply_after_the_greeting_has_an_enhanced_code(raw: Connect) -> None:
    client = raw()
    client.send(b"EHLO x.example\r\n")
    client.reply()  # RFC 2034 §4: the EHLO reply is exempt (its first line is the domain)
    for line in (b"NOOP", b"HELP", b"VRFY alice", b"EXPN list", b"MAIL FROM:<a@remote.example>",
                 b"RCPT TO:<nobody@example.org>", b"RCPT TO:<x@remote.example>", b"RSET",
                 b"BOGUS", b"MAIL FROM:<bad", b"DATA", b"QUIT"):
        client.send(line + b"\r\n")
        code, lines = client.reply()
        for text in lines:
            assert ENHANCED.match(text), (line, code, text)


def test_unknown_recipient_is_550_511(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("sender@remote.example")
        assert client.rcpt("nobody@example.org") == (550, b"5.1.1 No such user here")


def test_remote_recipient_without_auth_is_relay_denied(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("sender@remote.example")
        assert client.rcpt("someone@remote.example") == (554, b"5.7.1 Relay access denied")
    assert server.queue() == []


def test_vrfy_never_reveals_users(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        assert client.verify("alice@example.org")[0] == 252
        assert client.verify("nobody@example.org")[0] == 252
        assert client.verify("alice@example.org") == client.verify("nobody@example.org")


def test_one_blob_for_all_local_recipients(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.sendmail("sender@remote.example", ["alice@example.org", "bob@example.org"],
                        message("shared"))
    [alice] = server.blob_ids(server.alice)
    [bob] = server.blob_ids(server.bob)
    assert alice == bob
    [stored] = server.messages(server.alice)
    # Several envelope recipients share one body: no Delivered-To, no "for" (Bcc privacy).
    assert b"Delivered-To" not in trace_headers(stored)
    assert b" for <" not in trace_headers(stored)
    assert strip_trace(stored) == message("shared")


def test_duplicate_recipients_get_one_copy(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.sendmail("s@remote.example", ["alice@example.org", "ALICE@Example.org"],
                        message("dup"))
    assert len(server.messages(server.alice)) == 1


def test_null_sender_and_postmaster(server: Mailserver) -> None:
    postmaster = server.srv.add_user("postmaster@localhost", "pw")
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        assert client.mail("")[0] == 250
        assert client.rcpt("Postmaster")[0] == 250  # RFC 5321 §4.1.1.3
        assert client.data(message("bounce"))[0] == 250
    [stored] = server.messages(postmaster)
    assert stored.startswith(b"Return-Path: <>\r\n")


def test_helo_gets_smtp_protocol_and_no_extensions(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        assert client.helo("old.example")[0] == 250
        assert client.sendmail("s@remote.example", ["bob@example.org"], message("helo")) == {}
    [stored] = server.messages(server.bob)
    assert b"with SMTP id" in trace_headers(stored).replace(b"\r\n\t", b" ")


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        ([b"MAIL FROM:<a@remote.example>"], 503),  # before EHLO
        ([b"EHLO x", b"RCPT TO:<alice@example.org>"], 503),  # RCPT before MAIL
        ([b"EHLO x", b"DATA"], 503),
        ([b"EHLO x", b"MAIL FROM:<a@remote.example>", b"MAIL FROM:<a@remote.example>"], 503),
        ([b"EHLO x", b"MAIL FROM:<a@remote.example>", b"DATA"], 554),  # no valid recipients
        ([b"EHLO"], 501),
        ([b"EHLO x", b"MAIL FROM:a@remote.example"], 501),
        ([b"EHLO x", b"MAIL FROM:<a@remote.example> FOO=BAR"], 555),
        ([b"EHLO x", b"MAIL FROM:<a@remote.example> BODY=BINARYMIME"], 501),
        ([b"EHLO x", b"MAIL FROM:<a@remote.example> SIZE=99999999999"], 552),
        ([b"EHLO x", b"MAIL FROM:<a@remote.example>", b"RCPT TO:<alice@example.org> X=1"], 555),
        ([b"EHLO x", b"RSET now"], 501),
        ([b"EHLO x", b"VRFY"], 501),
        ([b"EHLO x", b"BOGUS"], 500),
        ([b"EHLO x", b"AUTH PLAIN"], 502),  # no AUTH on the MX listener
    ],
)
def test_sequence_and_syntax_errors(raw: Connect, commands: list[bytes], expected: int) -> None:
    client = raw()
    code = 0
    for line in commands:
        code, _ = client.command(line)
    assert code == expected


def test_rset_and_new_transaction(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("a@remote.example")
        client.rcpt("alice@example.org")
        assert client.rset()[0] == 250
        assert client.sendmail("b@remote.example", ["bob@example.org"], message("after")) == {}
    assert server.messages(server.alice) == []
    assert len(server.messages(server.bob)) == 1


def test_many_messages_in_one_session(server: Mailserver) -> None:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        for n in range(20):
            client.sendmail("s@remote.example", ["alice@example.org"], message(f"m{n}"))
    stored = server.messages(server.alice)
    assert [strip_trace(m) for m in stored] == [message(f"m{n}") for n in range(20)]


def test_quit_closes(raw: Connect) -> None:
    client = raw()
    assert client.command(b"QUIT")[0] == 221
    assert client.closed()
