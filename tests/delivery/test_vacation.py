"""The vacation engine: the RFC 3834 / RFC 5230 decision (pure), the reply it builds, and
the responder on a real store (memory per sender and handle, dates, the hook in commit)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.core.errors import StoreError
from mailstead.core.types import Address
from mailstead.delivery.clock import ManualClock
from mailstead.delivery.deliver import Deliverer, Envelope, LocalArrival, TraceInfo
from mailstead.delivery.router import Router
from mailstead.delivery.vacation import (
    DEFAULT_TEXT,
    AutoReply,
    MimeReason,
    Responder,
    Sent,
    Skip,
    TextReason,
    build_reply,
    days_period,
    decide,
    html_text,
    is_active,
    is_system_sender,
    read_original,
    seconds_period,
    vacation_reply,
)
from mailstead.store.models import VacationFields
from mailstead.store.sql.sqlite import SQLiteStore

ALICE = "alice@example.org"
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PERSONAL = (
    b"From: Carol <carol@remote.example>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: =?utf-8?q?Lunch_=C3=A0_midi?=\r\n"
    b"Message-ID: <m1@remote.example>\r\n"
    b"References: <m0@remote.example>\r\n"
    b"\r\n"
    b"Shall we?\r\n"
)
OWN = frozenset({ALICE})


def with_header(line: bytes, raw: bytes = PERSONAL) -> bytes:
    return line + b"\r\n" + raw


# -- the decision -------------------------------------------------------------------------------


def test_personal_mail_is_answered() -> None:
    assert decide(read_original(PERSONAL), "carol@remote.example", OWN) is None


@pytest.mark.parametrize(
    "sender",
    [
        "",
        "MAILER-DAEMON@remote.example",
        "owner-list@remote.example",
        "list-request@remote.example",
        "LISTSERV@remote.example",
        "majordomo@remote.example",
    ],
)
def test_null_and_system_senders_are_not_answered(sender: str) -> None:
    assert decide(read_original(PERSONAL), sender, OWN) in (Skip.NULL_SENDER, Skip.SYSTEM_SENDER)


def test_own_sender_is_not_answered() -> None:
    assert decide(read_original(PERSONAL), "Alice@example.org", OWN) is Skip.OWN_SENDER


@pytest.mark.parametrize(
    "value",
    [b"auto-generated", b"auto-replied", b"auto-notified", b"Auto-Generated; owner-email=x@y"],
)
def test_auto_submitted_is_not_answered(value: bytes) -> None:
    original = read_original(with_header(b"Auto-Submitted: " + value))
    assert decide(original, "carol@remote.example", OWN) is Skip.AUTO_SUBMITTED


def test_auto_submitted_no_is_personal() -> None:
    original = read_original(with_header(b"Auto-Submitted: no"))
    assert decide(original, "carol@remote.example", OWN) is None


@pytest.mark.parametrize("value", [b"bulk", b"list", b"JUNK"])
def test_bulk_precedence_is_not_answered(value: bytes) -> None:
    original = read_original(with_header(b"Precedence: " + value))
    assert decide(original, "carol@remote.example", OWN) is Skip.BULK


@pytest.mark.parametrize(
    "line",
    [
        b"List-Id: <team.lists.example>",
        b"List-Unsubscribe: <mailto:leave@lists.example>",
        b"list-post: <mailto:team@lists.example>",
    ],
)
def test_list_mail_is_not_answered(line: bytes) -> None:
    assert decide(read_original(with_header(line)), "carol@remote.example", OWN) is Skip.LIST


def test_spam_is_not_answered() -> None:
    original = read_original(PERSONAL)
    assert decide(original, "carol@remote.example", OWN, spam=True) is Skip.SPAM


def test_mail_not_naming_the_account_is_not_answered() -> None:
    raw = PERSONAL.replace(b"To: Alice <alice@example.org>", b"To: team@example.org")
    assert decide(read_original(raw), "carol@remote.example", OWN) is Skip.NOT_ADDRESSED
    # The same message counts when the caller found team@ to be the account's.
    own = OWN | {"team@example.org"}
    assert decide(read_original(raw), "carol@remote.example", own) is None


@pytest.mark.parametrize("name", [b"Cc", b"Bcc", b"Resent-To", b"Resent-Cc", b"Resent-Bcc"])
def test_every_recipient_header_names_the_account(name: bytes) -> None:
    raw = PERSONAL.replace(
        b"To: Alice <alice@example.org>",
        b"To: someone@else.example\r\n" + name + b": alice@example.org",
    )
    assert decide(read_original(raw), "carol@remote.example", OWN) is None


@given(st.text(min_size=1, max_size=30).filter(lambda s: "@" not in s))
def test_system_sender_shapes(local: str) -> None:
    assert is_system_sender(f"owner-{local}@d.example")
    assert is_system_sender(f"{local}-request@d.example")
    plain = local.strip("-") or "x"
    assert is_system_sender(f"{plain}@d.example") == (
        plain.casefold() in {"mailer-daemon", "listserv", "majordomo"}
        or plain.casefold().startswith("owner-")
        or plain.casefold().endswith("-request")
    )


@given(st.binary(max_size=2000))
def test_read_original_takes_any_octets(raw: bytes) -> None:
    original = read_original(raw)
    decide(original, "carol@remote.example", OWN)


@given(
    st.sampled_from(["Auto-Submitted", "auto-submitted", "AUTO-SUBMITTED"]),
    st.sampled_from(["auto-generated", "auto-replied", "auto-notified", "x-custom"]),
)
def test_auto_submitted_any_case(name: str, value: str) -> None:
    original = read_original(with_header(f"{name}: {value}".encode()))
    assert decide(original, "carol@remote.example", OWN) is Skip.AUTO_SUBMITTED


# -- dates and periods -------------------------------------------------------------------------


def test_active_window() -> None:
    on = VacationFields(
        is_enabled=True, from_date=NOW - timedelta(days=1), to_date=NOW + timedelta(days=1)
    )
    assert is_active(on, NOW)
    assert not is_active(on, NOW - timedelta(days=2))
    assert not is_active(on, NOW + timedelta(days=1))  # toDate itself is outside
    assert is_active(on, NOW - timedelta(days=1))  # fromDate itself is inside
    assert not is_active(VacationFields(is_enabled=False), NOW)
    assert is_active(VacationFields(is_enabled=True), NOW)


@given(st.integers(-10, 1000))
def test_days_are_at_least_one(days: int) -> None:
    period = days_period(days)
    assert timedelta(days=1) <= period <= timedelta(days=365)


@given(st.integers(-10, 10**9))
def test_seconds_may_be_zero(seconds: int) -> None:
    period = seconds_period(seconds)
    assert timedelta(0) <= period <= timedelta(days=365)
    assert period == min(timedelta(seconds=max(0, seconds)), timedelta(days=365))


def test_handle_follows_the_content() -> None:
    one = AutoReply(TextReason("away"))
    assert one.memory_handle == AutoReply(TextReason("away")).memory_handle
    assert one.memory_handle != AutoReply(TextReason("back soon")).memory_handle
    assert one.memory_handle != AutoReply(TextReason("away"), subject="x").memory_handle
    assert AutoReply(TextReason("away"), handle="h").memory_handle == "h"


# -- the reply ---------------------------------------------------------------------------------


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_reply_headers() -> None:
    raw = build_reply(
        AutoReply(TextReason("I am away.")),
        read_original(PERSONAL),
        from_address=ALICE,
        to="carol@remote.example",
        hostname="mx.example.org",
        now=NOW,
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    message = parsed(raw)
    assert message["From"] == ALICE
    assert message["To"] == "carol@remote.example"
    assert message["Subject"] == "Auto: Lunch à midi"  # RFC 3834 §3.1.5
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<m1@remote.example>"
    assert message["References"] == "<m0@remote.example> <m1@remote.example>"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "I am away."


def test_reply_with_text_and_html_is_alternative() -> None:
    reply = AutoReply(
        TextReason("Away — back Monday.", "<p>Away — back <b>Monday</b>.</p>"),
        subject="Out of office",
    )
    message = parsed(
        build_reply(
            reply,
            read_original(PERSONAL),
            from_address=ALICE,
            to="carol@remote.example",
            hostname="mx",
            now=NOW,
        )
    )
    assert message["Subject"] == "Out of office"
    assert message.get_content_type() == "multipart/alternative"
    text, html = list(message.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert "back Monday" in text.get_content()
    assert html.get_content_type() == "text/html"
    assert "<b>Monday</b>" in html.get_content()


def test_reply_html_only_and_default_text() -> None:
    only_html = parsed(
        build_reply(
            AutoReply(TextReason(None, "<p>x</p>")),
            read_original(PERSONAL),
            from_address=ALICE,
            to="c@r.example",
            hostname="mx",
            now=NOW,
        )
    )
    assert only_html.get_content_type() == "multipart/alternative"
    made, html = list(only_html.iter_parts())
    assert made.get_content().strip() == "x"  # RFC 8621 §8: text made from the HTML
    assert html.get_content().strip() == "<p>x</p>"
    default = parsed(
        build_reply(
            AutoReply(TextReason()),
            read_original(b"\r\n"),
            from_address=ALICE,
            to="c@r.example",
            hostname="mx",
            now=NOW,
        )
    )
    assert "automatic reply" in default.get_content()
    assert default["Subject"] == "Auto: (no subject)"
    assert default["In-Reply-To"] is None


def test_reply_with_a_mime_reason() -> None:
    entity = b"Content-Type: text/plain; charset=utf-8\r\nX-Dropped: yes\r\n\r\nGone fishing.\r\n"
    message = parsed(
        build_reply(
            AutoReply(MimeReason(entity)),
            read_original(PERSONAL),
            from_address=ALICE,
            to="c@r.example",
            hostname="mx",
            now=NOW,
        )
    )
    assert message["X-Dropped"] is None
    assert message["Auto-Submitted"] == "auto-replied"
    assert message.get_content().strip() == "Gone fishing."


# -- the responder on a store ------------------------------------------------------------------


TRACE = TraceInfo("mx.example.org", "client.example", "192.0.2.7", session_id="smtp-1")


async def inbox(store: SQLiteStore, address: str) -> list[bytes]:
    user = await store.find_user(address)
    assert user is not None
    box = await store.get_mailbox(user.id, "INBOX")
    return [await store.read_blob(m.blob_id) for m in await store.list_messages(box.id)]


def wired(store: SQLiteStore, clock: ManualClock) -> tuple[Deliverer, Responder]:
    router = Router(store)
    responder = Responder(
        store, router, Deliverer(store, router), hostname="mx.example.org", clock=clock
    )
    return Deliverer(store, router, responder=responder), responder


async def send(deliverer: Deliverer, sender: str, to: str, raw: bytes) -> None:
    delivery = deliverer.start(Envelope(Address.parse(sender)), TRACE, relay_allowed=False)
    await delivery.add_rcpt(Address.parse(to))
    await delivery.commit(raw)


FROM_BOB = (
    b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: hello\r\n"
    b"Message-ID: <b1@example.org>\r\n\r\nhi\r\n"
)


async def test_reply_once_per_period_then_again(store: SQLiteStore) -> None:
    clock = ManualClock(NOW)
    deliverer, _ = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    await store.set_vacation(alice.id, VacationFields(is_enabled=True, text_body="Away."))
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    replies = await inbox(store, "bob@example.org")
    assert len(replies) == 1
    assert replies[0].startswith(b"Return-Path: <>\r\n")  # RFC 3834 §3.3: null sender
    reply = parsed(replies[0])
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<b1@example.org>"
    assert reply["From"] == ALICE
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    assert len(await inbox(store, "bob@example.org")) == 1  # within 7 days: no second one
    clock.advance(timedelta(days=7).total_seconds())
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    assert len(await inbox(store, "bob@example.org")) == 2
    assert len(await inbox(store, ALICE)) == 3  # every message itself was delivered


async def test_changed_text_is_sent_again(store: SQLiteStore) -> None:
    clock = ManualClock(NOW)
    deliverer, _ = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    await store.set_vacation(alice.id, VacationFields(is_enabled=True, text_body="Away."))
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    await store.set_vacation(alice.id, VacationFields(is_enabled=True, text_body="Still away."))
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    assert len(await inbox(store, "bob@example.org")) == 2


async def test_disabled_and_out_of_dates_send_nothing(store: SQLiteStore) -> None:
    clock = ManualClock(NOW)
    deliverer, _ = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)  # never set: off
    await store.set_vacation(alice.id, VacationFields(is_enabled=False, text_body="Away."))
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    await store.set_vacation(
        alice.id,
        VacationFields(is_enabled=True, text_body="Away.", from_date=NOW + timedelta(hours=1)),
    )
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    await store.set_vacation(
        alice.id,
        VacationFields(is_enabled=True, text_body="Away.", to_date=NOW - timedelta(hours=1)),
    )
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    assert await inbox(store, "bob@example.org") == []
    assert len(await inbox(store, ALICE)) == 4


async def test_seconds_zero_answers_every_message(store: SQLiteStore) -> None:
    clock = ManualClock(NOW)
    _, responder = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    arrival = LocalArrival(alice.id, ALICE, "bob@example.org", (ALICE,), FROM_BOB)
    reply = AutoReply(TextReason("Away."), period=seconds_period(0))
    assert isinstance(await responder.respond(arrival, reply), Sent)
    assert isinstance(await responder.respond(arrival, reply), Sent)
    once = AutoReply(TextReason("Away."), period=seconds_period(60), handle="h")
    assert isinstance(await responder.respond(arrival, once), Sent)
    assert await responder.respond(arrival, once) is Skip.ANSWERED
    clock.advance(60)
    assert isinstance(await responder.respond(arrival, once), Sent)


async def test_from_must_be_the_accounts(store: SQLiteStore) -> None:
    clock = ManualClock(NOW)
    _, responder = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    arrival = LocalArrival(alice.id, ALICE, "bob@example.org", (ALICE,), FROM_BOB)
    reply = AutoReply(TextReason("Away."), from_address="Boss <bob@example.org>")
    assert isinstance(await responder.respond(arrival, reply), Sent)
    [got] = await inbox(store, "bob@example.org")
    assert parsed(got)["From"] == ALICE  # alice may not send as bob


async def test_expired_memory_is_purged(store: SQLiteStore) -> None:
    alice = await store.find_user(ALICE)
    assert alice is not None
    assert await store.claim_auto_reply(
        alice.id, "h", "Bob@example.org", NOW, NOW + timedelta(days=1)
    )
    assert not await store.claim_auto_reply(
        alice.id, "h", "bob@EXAMPLE.org", NOW, NOW + timedelta(days=1)
    )
    assert await store.claim_auto_reply(
        alice.id, "other", "bob@example.org", NOW, NOW + timedelta(days=1)
    )
    assert await store.expire_auto_replies(NOW) == 0
    assert await store.expire_auto_replies(NOW + timedelta(days=1)) == 2
    assert await store.claim_auto_reply(
        alice.id, "h", "bob@example.org", NOW, NOW + timedelta(days=1)
    )


async def test_a_broken_responder_never_fails_the_delivery(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(NOW)
    deliverer, _ = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    await store.set_vacation(alice.id, VacationFields(is_enabled=True, text_body="Away."))

    async def broken(*args: object) -> bool:
        raise StoreError("disk on fire")

    monkeypatch.setattr(store, "claim_auto_reply", broken)
    await send(deliverer, "bob@example.org", ALICE, FROM_BOB)
    assert len(await inbox(store, ALICE)) == 1
    assert await inbox(store, "bob@example.org") == []


def test_html_text() -> None:
    html = (
        "<html><head><title>t</title><style>p {}</style></head><body>"
        "<p>I am <b>away</b> &amp; back<br>on Monday.</p><ul><li>one</li><li>two</li></ul>"
        "</body></html>"
    )
    assert html_text(html) == "I am away & back\non Monday.\n\none\ntwo\n"
    assert html_text("<p></p>") == DEFAULT_TEXT


@given(st.text(max_size=300))
def test_html_text_takes_anything(html: str) -> None:
    assert html_text(html).endswith("\n")


def test_vacation_reply_from_settings() -> None:
    reply = vacation_reply(
        VacationFields(is_enabled=True, subject="Away", text_body="t", html_body="<p>h</p>")
    )
    assert reply.reason == TextReason("t", "<p>h</p>")
    assert reply.subject == "Away"
    assert reply.period == timedelta(days=7)


async def test_alias_and_blind_copies(store: SQLiteStore) -> None:
    """An alias that delivers to the account counts as its address; a message that names
    none of its addresses (a blind copy) is not answered."""
    clock = ManualClock(NOW)
    deliverer, _ = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    await store.add_alias("team@example.org", [ALICE])
    await store.set_vacation(alice.id, VacationFields(is_enabled=True, text_body="Away."))
    blind = FROM_BOB.replace(b"To: alice@example.org", b"To: carol@remote.example")
    await send(deliverer, "bob@example.org", ALICE, blind)
    assert await inbox(store, "bob@example.org") == []
    to_team = FROM_BOB.replace(b"To: alice@example.org", b"To: Team <team@example.org>")
    await send(deliverer, "bob@example.org", ALICE, to_team)  # the header names the alias
    assert len(await inbox(store, "bob@example.org")) == 1


async def test_remote_sender_gets_a_queued_reply(store: SQLiteStore) -> None:
    clock = ManualClock(NOW)
    deliverer, _ = wired(store, clock)
    alice = await store.find_user(ALICE)
    assert alice is not None
    await store.set_vacation(alice.id, VacationFields(is_enabled=True, text_body="Away."))
    await send(deliverer, "carol@remote.example", ALICE, PERSONAL)
    [queued] = await store.list_queue()
    assert queued.envelope.mail_from == ""  # RFC 3834 §3.3
    assert [r.address for r in queued.envelope.recipients] == ["carol@remote.example"]
    reply = parsed(await store.read_blob(queued.blob_id))
    assert reply["To"] == "carol@remote.example"
    assert reply["Subject"] == "Auto: Lunch à midi"
