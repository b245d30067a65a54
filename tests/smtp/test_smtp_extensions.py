"""PIPELINING, CHUNKING/BDAT, SMTPUTF8, 8BITMIME, SIZE and DSN parameters."""

from __future__ import annotations

import smtplib

from tests.smtp.conftest import (
    Connect,
    Mailserver,
    MakeServer,
    RawClient,
    message,
    strip_trace,
    trace_headers,
)


def test_pipelined_transaction_gets_ordered_replies(server: Mailserver, raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO pipe.example")
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
                b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<x@remote.example>\r\n"
                b"RCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert [code for code, _ in client.replies(6)] == [250, 250, 550, 554, 250, 354]
    body = message("pipelined")
    # The next transaction is pipelined right behind the end of the data.
    client.send(body + b".\r\nMAIL FROM:<t@remote.example>\r\nRCPT TO:<bob@example.org>\r\n"
                b"DATA\r\n")
    assert [code for code, _ in client.replies(4)] == [250, 250, 250, 354]
    client.send(b"second\r\n.\r\nQUIT\r\n")
    assert [code for code, _ in client.replies(2)] == [250, 221]
    assert [strip_trace(m) for m in server.messages(server.alice)] == [body]
    assert [strip_trace(m) for m in server.messages(server.bob)] == [body, b"second\r\n"]


def test_pipelined_data_after_failed_recipients_is_refused(raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n")
    assert [code for code, _ in client.replies(3)] == [250, 550, 554]
    assert client.command(b"NOOP")[0] == 250


def test_bdat_chunks_pipelined_with_last(server: Mailserver, raw: Connect) -> None:
    body = message("chunked", b"binary-ish \x00\xff\r\nbare\nlf is fine in BDAT\r\n")
    one, two = body[:37], body[37:]
    client = raw()
    client.command(b"EHLO x")
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
                + b"BDAT %d\r\n" % len(one) + one
                + b"BDAT %d LAST\r\n" % len(two) + two
                + b"NOOP\r\n")
    replies = client.replies(5)
    assert [code for code, _ in replies] == [250, 250, 250, 250, 250]
    assert replies[2][1] == b"2.0.0 37 octets received"
    [stored] = server.messages(server.alice)
    assert strip_trace(stored) == body


def test_bdat_zero_last_and_smtplib_style_single_chunk(server: Mailserver, raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.org>\r\n"
                b"BDAT 6\r\nHello\nBDAT 0 LAST\r\n")
    assert [code for code, _ in client.replies(4)] == [250, 250, 250, 250]
    assert [strip_trace(m) for m in server.messages(server.bob)] == [b"Hello\n"]


def test_bdat_out_of_sequence_consumes_its_chunk(raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    # The chunk looks like commands; it must be swallowed, not executed.
    chunk = b"RSET\r\nQUIT\r\n"
    client.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
    assert [code for code, _ in client.replies(2)] == [503, 250]
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<nobody@example.org>\r\n"
                b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
    assert [code for code, _ in client.replies(4)] == [250, 550, 554, 250]


def test_data_is_refused_inside_bdat_and_bdat_size_limit(make_server: MakeServer) -> None:
    server = make_server({"limits": {"max_message_size": 100}})
    client = RawClient(server.port())
    client.reply()
    client.command(b"EHLO x")
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
                b"BDAT 3\r\nabcDATA\r\n")
    assert [code for code, _ in client.replies(4)] == [250, 250, 250, 503]
    big = b"x" * 150
    client.send(b"BDAT %d LAST\r\n" % len(big) + big)
    assert client.reply()[0] == 552
    # The transaction is gone; a new one works.
    client.send(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
                b"BDAT 5 LAST\r\nsmall")
    assert [code for code, _ in client.replies(3)] == [250, 250, 250]
    client.close()
    assert len(server.messages(server.alice)) == 1


def test_size_is_advertised_and_enforced_at_mail_and_in_data(make_server: MakeServer) -> None:
    server = make_server({"limits": {"max_message_size": 1000}})
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "1000"
        assert client.mail("s@remote.example", ["SIZE=1001"])[0] == 552
        client.rset()
        client.mail("s@remote.example", ["SIZE=500"])  # lies about the size
        client.rcpt("alice@example.org")
        code, text = client.data(b"x" * 2000 + b"\r\n")
        assert (code, text[:5]) == (552, b"5.3.4")
        # The session goes on.
        assert client.sendmail("s@remote.example", ["alice@example.org"], b"small\r\n") == {}
    assert [strip_trace(m) for m in server.messages(server.alice)] == [b"small\r\n"]


def test_smtputf8_addresses_and_headers_stored_as_given(server: Mailserver) -> None:
    server.call(server.store.add_alias("jörg@example.org", ["alice@example.org"]))
    original = "From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        refused = client.sendmail("jörg@bücher.example", ["jörg@example.org"], original,
                                  mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
    [stored] = server.messages(server.alice)
    assert strip_trace(stored) == original
    trace = trace_headers(stored).decode("utf-8")
    assert "Return-Path: <jörg@bücher.example>" in trace
    assert "with UTF8SMTP" in trace


def test_utf8_address_without_smtputf8_is_553_567(raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    assert client.command("MAIL FROM:<jörg@bücher.example>".encode()) == (
        553, b"5.6.7 Non-ASCII address needs SMTPUTF8")
    client.command(b"MAIL FROM:<s@remote.example>")
    code, text = client.command("RCPT TO:<jörg@example.org>".encode())
    assert (code, text[:5]) == (553, b"5.6.7")


def test_dsn_parameters_are_stored_with_the_queued_message(server: Mailserver) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"),
                          context=server.client_context()) as client:
        client.login("alice@example.org", "correct horse battery staple")
        refused = client.sendmail(
            "alice@example.org", ["carol@remote.example", "bob@example.org"],
            message("dsn", author="alice@example.org"),
            mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;carol@remote.example"],
        )
        assert refused == {}
    [queued] = server.queue()
    env = queued.envelope
    assert (env.ret, env.envid) == ("HDRS", "QQ+314")
    by_address = {r.address: r for r in env.recipients}
    carol = by_address["carol@remote.example"]
    assert (carol.notify, carol.orcpt, carol.status) == (
        ("SUCCESS", "FAILURE"), "rfc822;carol@remote.example", "queued")
    # Bob is local and asked for a success notice: kept for the outbound side to send.
    assert by_address["bob@example.org"].status == "delivered"
    assert len(server.messages(server.bob)) == 1


def test_bad_dsn_parameters(raw: Connect) -> None:
    client = raw()
    client.command(b"EHLO x")
    assert client.command(b"MAIL FROM:<s@remote.example> RET=ALL")[0] == 501
    assert client.command(b"MAIL FROM:<s@remote.example> ENVID=" + b"x" * 101)[0] == 501
    assert client.command(b"MAIL FROM:<s@remote.example> RET=FULL ENVID=abc")[0] == 250
    for bad in (b"NOTIFY=NEVER,SUCCESS", b"NOTIFY=SOMETIMES", b"ORCPT=nosemicolon",
                b"NOTIFY=SUCCESS NOTIFY=FAILURE"):
        assert client.command(b"RCPT TO:<alice@example.org> " + bad)[0] == 501, bad
    assert client.command(b"RCPT TO:<alice@example.org> NOTIFY=NEVER")[0] == 250


def test_many_transactions_pipelined_back_to_back(server: Mailserver, raw: Connect) -> None:
    """Exim-style pipelining across transactions: replies stay in order, commits overlap."""
    client = raw()
    client.command(b"EHLO x")
    batch = b""
    expected = []
    for n in range(40):
        rcpt = b"nobody@example.org" if n == 17 else b"alice@example.org"
        body = b"Subject: %d\r\n\r\nmessage %d\r\n" % (n, n)
        batch += (b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<" + rcpt + b">\r\n"
                  + b"BDAT %d LAST\r\n" % len(body) + body)
        expected += [250, 550, 554] if n == 17 else [250, 250, 250]
    client.send(batch + b"QUIT\r\n")
    assert [code for code, _ in client.replies(len(expected) + 1)] == [*expected, 221]
    stored = [strip_trace(m) for m in server.messages(server.alice)]
    assert stored == [b"Subject: %d\r\n\r\nmessage %d\r\n" % (n, n) for n in range(40) if n != 17]


def test_pipelined_commit_failure_keeps_its_place(server: Mailserver, raw: Connect) -> None:
    small = server.srv.add_user("small@example.org", "pw", quota_bytes=300)
    client = raw()
    client.command(b"EHLO x")
    big, fits = b"x" * 400 + b"\r\n", b"fits\r\n"
    group = b""
    for rcpt, body in ((b"alice", fits), (b"small", big), (b"small", fits)):
        group += (b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<" + rcpt + b"@example.org>\r\n"
                  + b"BDAT %d LAST\r\n" % len(body) + body)
    client.send(group + b"NOOP\r\n")
    replies = client.replies(10)
    assert [code for code, _ in replies] == [250, 250, 250, 250, 250, 452, 250, 250, 250, 250]
    assert len(server.messages(small)) == 1
