"""What EmailSubmission does to a message before it is sent, without a server: the Bcc
field removed (RFC 5322 §3.6.3), the default recipients read from To, Cc and Bcc (RFC 8621
§7.5), and the queue's recipient states as DeliveryStatus (§7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailstead.http.jmap.mail.submissions import (
    delivery_status,
    header_recipients,
    without_bcc,
)
from mailstead.store.models import QueueStatus, RecipientOutcome

MESSAGE = (
    b"From: a@example.org\r\n"
    b"To: B <b@example.net>, c@example.net\r\n"
    b"Bcc: secret@example.net,\r\n"
    b"\tother@example.net\r\n"
    b"Cc: undisclosed:;, C@example.NET\r\n"
    b"Subject: Bcc: in the subject stays\r\n"
    b"\r\n"
    b"Bcc: in the body stays\r\n"
)


def test_the_bcc_field_and_its_folded_lines_go() -> None:
    sent = without_bcc(MESSAGE)
    assert b"secret@" not in sent and b"other@" not in sent
    assert b"Subject: Bcc: in the subject stays\r\n" in sent
    assert sent.endswith(b"\r\n\r\nBcc: in the body stays\r\n")
    assert without_bcc(sent) == sent


def test_a_message_with_bare_line_feeds_keeps_its_body() -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    sent = without_bcc(lf)
    assert b"secret@" not in sent and sent.endswith(b"\n\nBcc: in the body stays\n")
    assert without_bcc(b"\r\nBcc: body only\r\n") == b"\r\nBcc: body only\r\n"


def test_the_default_recipients_are_to_cc_and_bcc_once_each() -> None:
    assert header_recipients(MESSAGE) == [
        "b@example.net",
        "c@example.net",
        "secret@example.net",
        "other@example.net",
    ]


_NAMES = st.sampled_from(["To", "Cc", "Bcc", "BCC", "bcc", "Subject", "X-Bcc", "Bccx"])
_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@given(
    st.lists(st.tuples(_NAMES, _VALUES, st.booleans()), max_size=8),
    st.binary(max_size=40).filter(lambda b: b"\r\n\r\n" not in b),
)
def test_only_bcc_fields_are_removed(fields: list[tuple[str, str, bool]], body: bytes) -> None:
    head = b"".join(
        f"{name}: {value}\r\n".encode() + (b" folded\r\n" if folded else b"")
        for name, value, folded in fields
    )
    sent = without_bcc(head + b"\r\n" + body)
    kept = b"".join(
        f"{name}: {value}\r\n".encode() + (b" folded\r\n" if folded else b"")
        for name, value, folded in fields
        if name.lower() != "bcc"
    )
    assert sent == kept + b"\r\n" + body


def test_delivery_status_of_each_queue_state() -> None:
    def delivered(status: QueueStatus) -> str:
        return delivery_status(RecipientOutcome(status))["delivered"]

    assert [delivered(s) for s in QueueStatus] == ["queued", "queued", "queued", "yes", "no"]
    failed = delivery_status(RecipientOutcome(QueueStatus.FAILED, "550 5.1.1 No such user"))
    assert failed["smtpReply"] == "550 5.1.1 No such user"
    assert delivery_status(None)["delivered"] == "unknown"
