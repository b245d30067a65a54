"""The delivery transaction, trace headers, loop checks and the durable outbound queue."""

from __future__ import annotations

import os
import re
import time

import pytest

from mailstead.core.errors import QuotaExceeded
from mailstead.core.types import Address, SendAs
from mailstead.delivery.deliver import (
    Deliverer,
    Envelope,
    TraceInfo,
    check_loops,
    received_header,
)
from mailstead.delivery.dkim import Signer, generate_key, header_from
from mailstead.delivery.router import DeliveryError, Router
from mailstead.store.models import OutboundEnvelope, QueuedRecipient, Recipient
from mailstead.store.sql.sqlite import SQLiteStore

TRACE = TraceInfo("mx.example.org", "client.example", "192.0.2.7", tls="TLSv1.3 TLS_AES_128",
                  auth_user=None, session_id="smtp-1")
BODY = b"Subject: hi\r\n\r\nhello\r\n"


def start(store: SQLiteStore, *, relay: bool = False, sender: str = "s@remote.example",
          size: int = 0):  # type: ignore[no-untyped-def]
    envelope = Envelope(Address.parse(sender), size=size)
    return Deliverer(store, Router(store)).start(envelope, TRACE, relay_allowed=relay)


async def inbox(store: SQLiteStore, address: str) -> list[bytes]:
    user = await store.find_user(address)
    assert user is not None
    box = await store.get_mailbox(user.id, "INBOX")
    return [await store.read_blob(m.blob_id) for m in await store.list_messages(box.id)]


def test_received_header_shape() -> None:
    header = received_header(
        TraceInfo("mx.example.org", "client.example", "2001:db8::1", tls="TLSv1.3 X",
                  auth_user="alice@example.org"),
        Envelope(None, smtputf8=True), ["alice@example.org"],
    ).decode()
    assert header.startswith("Received: from client.example ([IPv6:2001:db8::1])\r\n"
                             "\tby mx.example.org (mailstead) with UTF8SMTPSA (TLSv1.3 X)\r\n"
                             "\t(authenticated as alice@example.org)\r\n\tid ")
    assert " for <alice@example.org>;\r\n\t" in header
    assert header.endswith("\r\n")


def test_received_header_with_junk_helo() -> None:
    header = received_header(
        TraceInfo("mx", "bad (helo) \\ name", "192.0.2.1", esmtp=False), Envelope(None), []
    ).decode()
    assert header.startswith("Received: from unknown ([192.0.2.1] helo=bad ?helo? ? name)")
    assert "with SMTP" in header
    assert " for " not in header


def test_loop_checks() -> None:
    check_loops(b"Received: a\r\n" * 99 + b"\r\nReceived: in body\r\n" * 10, [])
    with pytest.raises(DeliveryError):
        check_loops(b"Received: a\r\n" * 100 + b"\r\n", [])
    with pytest.raises(DeliveryError) as failure:
        check_loops(b"Delivered-To: Alice@example.org\r\nSubject: x\r\n\r\n", ["alice@example.org"])
    assert failure.value.enhanced == "5.4.6"


async def test_local_and_remote_commit_together(store: SQLiteStore) -> None:
    delivery = start(store, relay=True)
    await delivery.add_rcpt(Address.parse("alice@example.org"))
    await delivery.add_rcpt(
        Address.parse("x@remote.example"), ("FAILURE",), "rfc822;x@remote.example"
    )
    await delivery.commit(BODY)
    [local] = await inbox(store, "alice@example.org")
    assert local.startswith(b"Return-Path: <s@remote.example>\r\n"
                            b"Delivered-To: alice@example.org\r\nReceived: ")
    assert local.endswith(BODY)
    [queued] = await store.list_queue()
    assert [(r.address, r.notify, r.orcpt) for r in queued.envelope.recipients] == [
        ("x@remote.example", ("FAILURE",), "rfc822;x@remote.example")]
    body = await store.read_blob(queued.blob_id)
    assert body.startswith(b"Received: ") and body.endswith(BODY)


async def test_quota_failure_leaves_nothing_queued_either(store: SQLiteStore) -> None:
    await store.set_quota("alice@example.org", 100)
    delivery = start(store, relay=True)
    await delivery.add_rcpt(Address.parse("alice@example.org"))
    await delivery.add_rcpt(Address.parse("x@remote.example"))
    with pytest.raises(DeliveryError) as failure:
        await delivery.commit(BODY + b"x" * 200)
    assert (failure.value.code, failure.value.enhanced) == (452, "4.2.2")
    assert await inbox(store, "alice@example.org") == []
    assert await store.list_queue() == []
    assert await store.integrity_check() == []


async def test_store_enqueue_is_all_or_nothing(store: SQLiteStore) -> None:
    await store.set_quota("bob@example.org", 10)
    bob = await store.find_user("bob@example.org")
    assert bob is not None
    envelope = OutboundEnvelope("s@x.example", (QueuedRecipient("r@remote.example"),))
    with pytest.raises(QuotaExceeded):
        await store.enqueue(BODY, envelope, BODY, [Recipient(bob.id)])
    assert await store.list_queue() == []


async def test_queue_survives_reopen_and_keeps_its_body_from_gc(store: SQLiteStore) -> None:
    envelope = OutboundEnvelope("s@x.example", (QueuedRecipient("r@remote.example", ("NEVER",)),),
                                envid="e1", ret="FULL", body="8BITMIME", smtputf8=False)
    _, queue_id = await store.enqueue(BODY, envelope)
    assert queue_id is not None
    await store.close()
    await store.open()
    [queued] = await store.list_queue()
    assert queued.envelope.recipients[0].notify == ("NEVER",)
    assert (queued.envelope.envid, queued.envelope.ret, queued.envelope.body) == (
        "e1", "FULL", "8BITMIME")
    path = store.blobs.path_for(queued.blob_id)
    if path.exists():  # large bodies are files; make this one look old enough to collect
        old = time.time() - 7200
        os.utime(path, (old, old))
    assert await store.collect_garbage(grace_seconds=60) == 0
    assert await store.read_blob(queued.blob_id) == BODY
    await store.remove_queued(queued.id)
    assert await store.list_queue() == []
    assert await store.collect_garbage(grace_seconds=60) == 1


async def test_add_rcpt_refusals(store: SQLiteStore) -> None:
    delivery = start(store)
    with pytest.raises(DeliveryError) as relay:
        await delivery.add_rcpt(Address.parse("x@remote.example"))
    assert (relay.value.code, relay.value.enhanced) == (554, "5.7.1")
    with pytest.raises(DeliveryError) as unknown:
        await delivery.add_rcpt(Address.parse("nobody@example.org"))
    assert unknown.value.code == 550
    with pytest.raises(DeliveryError) as empty:
        await delivery.commit(BODY)
    assert empty.value.code == 554


async def test_group_member_over_quota_is_skipped_not_blocking(store: SQLiteStore) -> None:
    await store.add_group("all@example.org", ["alice@example.org", "bob@example.org"])
    await store.set_quota("bob@example.org", 2)
    bob = await store.find_user("bob@example.org")
    assert bob is not None
    await store.deliver(b"xx", [Recipient(bob.id)])  # bob is now over quota
    with pytest.raises(QuotaExceeded):
        await store.deliver(b"yy", [Recipient(bob.id)])
    delivery = start(store)
    await delivery.add_rcpt(Address.parse("all@example.org"))
    await delivery.commit(BODY)
    assert len(await inbox(store, "alice@example.org")) == 1


async def test_a_nearly_full_group_member_does_not_block_the_others(
        store: SQLiteStore) -> None:
    """Room at RCPT, none for the message itself: the whole group message failed with
    452 after the data, and no member received it."""
    await store.add_group("all@example.org", ["alice@example.org", "bob@example.org"])
    await store.set_quota("bob@example.org", 100)
    bob = await store.find_user("bob@example.org")
    assert bob is not None
    await store.deliver(b"x" * 90, [Recipient(bob.id)])  # 10 bytes left
    delivery = start(store)
    await delivery.add_rcpt(Address.parse("all@example.org"))
    await delivery.commit(BODY + b"longer than ten bytes\r\n")
    assert len(await inbox(store, "alice@example.org")) == 1
    assert len(await inbox(store, "bob@example.org")) == 1  # only the 90 bytes from before
    direct = start(store)  # named directly, bob's own copy is not optional: 452, nothing
    await direct.add_rcpt(Address.parse("bob@example.org"))
    await direct.add_rcpt(Address.parse("alice@example.org"))
    with pytest.raises(DeliveryError) as full:
        await direct.commit(BODY + b"longer than ten bytes\r\n")
    assert (full.value.code, full.value.enhanced) == (452, "4.2.2")
    assert len(await inbox(store, "alice@example.org")) == 1


@pytest.mark.parametrize(("header", "signed_as"), [
    ("Alice <alice@example.org>", "example.org"),  # her own address: aligned
    ("alice+news@example.org", "example.org"),  # a tag of her own address
    ("ceo@other.test", "example.org"),  # another hosted domain: never other.test
    ('"alice@example.org" <ceo@other.test>', "example.org"),  # an @ in the display name
    ("=?utf-8?q?ceo?= <ceo@other.test>,\r\n alice@example.org", None),  # two authors
    ("bob@example.org", None),  # a colleague: signing would align a forged From
    ("Bob <bob@example.org>", None),
    ("nobody@remote.example", "example.org"),  # not aligned; the signature is hers
    ("", "example.org"),
])
async def test_dkim_signs_only_for_what_the_sender_may_use(
        store: SQLiteStore, header: str, signed_as: str | None) -> None:
    """alice@example.org once got d=other.test on ``From: ceo@other.test``: a
    DMARC-aligned spoof of another hosted domain. She may send as anyone here (else the
    foreign Froms are refused before signing): that allowance never buys a signature."""
    await store.set_send_as("alice@example.org", SendAs.ANY)
    await store.add_domain("other.test")
    await store.add_user("ceo@other.test", "x")
    for domain in ("example.org", "other.test"):
        generate_key(store.data_dir, domain, "s1")
    alice = await store.find_user("alice@example.org")
    assert alice is not None
    deliverer = Deliverer(store, Router(store), signer=Signer(store.data_dir))
    delivery = deliverer.start(Envelope(Address.parse("alice@example.org")),
                               TRACE, relay_allowed=True, sender_id=alice.id)
    await delivery.add_rcpt(Address.parse("r@remote.example"))
    from_line = f"From: {header}\r\n".encode() if header else b""
    await delivery.commit(from_line + BODY)
    [queued] = await store.list_queue()
    raw = await store.read_blob(queued.blob_id)
    signatures = re.findall(rb"DKIM-Signature:.*?; d=([^;]+);", raw, re.S)
    assert signatures == ([signed_as.encode()] if signed_as else [])


def test_the_from_header_is_parsed_not_searched() -> None:
    raw = (b'Subject: x\r\nFrom: "alice@example.org"\r\n <Boss@Other.TEST.>\r\n'
           b"To: a@b.c\r\n\r\nFrom: body@not.header\r\n")
    assert header_from(raw) == [("Boss", "other.test")]
    assert header_from(b"From: a@b.c\r\nFrom: d@e.f\r\n\r\n") == []  # two From fields
    assert header_from(b"From: undisclosed\r\n\r\n") == []
