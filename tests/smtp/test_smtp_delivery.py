"""Routing as seen through SMTP: aliases, catch-all, groups, +tag folders."""

from __future__ import annotations

import smtplib

from tests.smtp.conftest import Mailserver, message, strip_trace, trace_headers


def send(server: Mailserver, rcpts: list[str], subject: str) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        return client.sendmail("s@remote.example", rcpts, message(subject))


def test_plus_tag_into_folder_when_enabled(server: Mailserver) -> None:
    carol = server.srv.add_user("carol@example.org", "pw", plus_folders=True)
    server.call(server.store.create_mailbox(carol.id, "receipts"))
    assert send(server, ["carol+receipts@example.org"], "tagged") == {}
    assert send(server, ["carol+nofolder@example.org"], "untagged") == {}
    assert send(server, ["alice+receipts@example.org"], "alice") == {}  # not enabled
    assert [strip_trace(m) for m in server.messages(carol, "receipts")] == [message("tagged")]
    assert [strip_trace(m) for m in server.messages(carol)] == [message("untagged")]
    assert [strip_trace(m) for m in server.messages(server.alice)] == [message("alice")]
    [tagged] = server.messages(carol, "receipts")
    assert b"Delivered-To: carol+receipts@example.org\r\n" in trace_headers(tagged)


def test_group_expands_and_queues_external_members(server: Mailserver) -> None:
    server.call(server.store.add_group(
        "team@example.org", ["alice@example.org", "bob@example.org", "ext@remote.example"]))
    assert send(server, ["team@example.org"], "team") == {}
    [alice] = server.messages(server.alice)
    [bob] = server.messages(server.bob)
    assert alice == bob
    assert b"Delivered-To: team@example.org\r\n" in trace_headers(alice)
    [queued] = server.queue()
    assert [r.address for r in queued.envelope.recipients] == ["ext@remote.example"]
    assert queued.envelope.mail_from == "s@remote.example"


def test_alias_and_catch_all(server: Mailserver) -> None:
    server.call(server.store.add_alias("info@example.org", ["alice@example.org"]))
    server.call(server.store.add_alias("@example.org", ["bob@example.org"]))
    assert send(server, ["info@example.org"], "alias") == {}
    assert send(server, ["random@example.org"], "catch") == {}
    assert [strip_trace(m) for m in server.messages(server.alice)] == [message("alias")]
    assert [strip_trace(m) for m in server.messages(server.bob)] == [message("catch")]


def test_unknown_domain_user_is_not_caught_by_other_domains(server: Mailserver) -> None:
    server.call(server.store.add_domain("other.example"))
    server.call(server.store.add_alias("@example.org", ["bob@example.org"]))
    with smtplib.SMTP("127.0.0.1", server.port()) as client:
        client.ehlo()
        client.mail("s@remote.example")
        assert client.rcpt("random@other.example")[0] == 550
