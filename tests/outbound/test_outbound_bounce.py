"""DSN messages (RFC 3464): structure, fields, and what of the original goes back."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from mailstead.delivery.bounce import DSNRecipient, build_dsn
from mailstead.wire.smtp import ReplyParser, xtext_decode

from .conftest import human_text, message_bytes, report_fields

ORIGINAL = message_bytes(body="The secret body.\r\n")


def failed(address: str = "bob@b.test", **kw: object) -> DSNRecipient:
    values: dict[str, object] = {
        "recipient": address, "action": "failed", "status": "5.1.1",
        "reason": "host mx.b.test[192.0.2.1] said: 550 5.1.1 No such user",
        "reply": "550 5.1.1 No such user", "remote_mta": "mx.b.test",
        "last_attempt": datetime(2026, 11, 25, 10, 0, tzinfo=UTC)}
    values.update(kw)
    return DSNRecipient(**values)  # type: ignore[arg-type]


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_failure_report_has_the_three_parts_and_the_reason() -> None:
    raw = build_dsn(hostname="mx.a.test", sender="alice@a.test", recipients=[failed()],
                    original=ORIGINAL, envid="env-42",
                    arrival=datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    dsn = parse(raw)
    assert dsn["From"] == "Mail Delivery System <MAILER-DAEMON@mx.a.test>"
    assert b"To: <alice@a.test>" in raw
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    parts = [p.get_content_type() for p in dsn.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    text = human_text(dsn)
    assert "<bob@b.test>" in text and "550 5.1.1 No such user" in text
    per_message, per_rcpt = report_fields(dsn)
    assert per_message["reporting-mta"] == "dns; mx.a.test"
    assert per_message["original-envelope-id"] == "env-42"
    assert per_rcpt["final-recipient"] == "rfc822;bob@b.test"
    assert per_rcpt["action"] == "failed"
    assert per_rcpt["status"] == "5.1.1"
    assert per_rcpt["remote-mta"] == "dns; mx.b.test"
    assert per_rcpt["diagnostic-code"] == "smtp; 550 5.1.1 No such user"
    headers = list(dsn.iter_parts())[2].get_payload()
    assert "Subject: hello 1" in str(headers)
    assert b"secret body" not in raw  # RET not FULL: headers only


def test_ret_full_returns_the_whole_message_for_failures_only() -> None:
    raw = build_dsn(hostname="h", sender="s@a.test", recipients=[failed()], original=ORIGINAL,
                    ret="FULL")
    dsn = parse(raw)
    assert [p.get_content_type() for p in dsn.iter_parts()][2] == "message/rfc822"
    assert b"The secret body." in raw
    delayed = failed(action="delayed", status="4.4.1")
    raw = build_dsn(hostname="h", sender="s@a.test", recipients=[delayed], original=ORIGINAL,
                    ret="FULL")
    assert b"The secret body." not in raw  # RFC 3461 §4.3: only failures carry the body
    assert parse(raw)["Subject"].startswith("Delayed Mail")


def test_orcpt_is_xtext_decoded_and_utf8_uses_global_types() -> None:
    assert xtext_decode("bob+2Bext@b.test") == "bob+ext@b.test"
    rcpt = failed("bøb@b.test", original_recipient="rfc822;b+2Bb@b.test")
    original = "From: Ålice <alice@a.test>\r\nSubject: hæ\r\n\r\nbody\r\n".encode()
    raw = build_dsn(hostname="h", sender="alice@a.test", recipients=[rcpt], original=original)
    dsn = parse(raw)
    types = [p.get_content_type() for p in dsn.iter_parts()]
    assert types == ["text/plain", "message/global-delivery-status", "message/global-headers"]
    assert b"Original-Recipient: rfc822;b+b@b.test" in raw
    assert "Final-Recipient: utf-8;bøb@b.test".encode() in raw


def status_of(code: int, text: str) -> str:
    [reply] = ReplyParser().feed(f"{code} {text}\r\n".encode())
    return reply.status


def test_status_from_replies_and_no_dsn_to_the_null_sender() -> None:
    assert status_of(550, "5.7.1 relay denied") == "5.7.1"
    assert status_of(451, "try later") == "4.0.0"
    assert status_of(550, "4.1.1 inconsistent") == "5.0.0"
    with pytest.raises(ValueError):
        build_dsn(hostname="h", sender="", recipients=[failed()], original=ORIGINAL)


def test_an_orcpt_that_decodes_to_a_line_break_stays_xtext() -> None:
    """``+0D+0A`` in ORCPT once wrote a raw CRLF, and with it forged fields, into the DSN
    sent to an unverified sender."""
    forged = "b+40b.test+0D+0AAction:+20delivered+0D+0A+0D+0AForged:+20part"
    rcpt = failed(original_recipient=f"rfc822;{forged}")
    raw = build_dsn(hostname="h", sender="alice@a.test", recipients=[rcpt], original=ORIGINAL)
    assert f"Original-Recipient: rfc822;{forged}\r\n".encode() in raw
    assert b"\r\nAction: delivered" not in raw and b"Forged:" not in raw.replace(
        forged.encode(), b"")
    _, per_rcpt = report_fields(parse(raw))
    assert per_rcpt["action"] == "failed"
    stored = failed(original_recipient="rfc822;bad\r\nInjected: 1")  # a row written by hand
    raw = build_dsn(hostname="h", sender="alice@a.test", recipients=[stored], original=ORIGINAL)
    assert b"\r\nInjected:" not in raw
