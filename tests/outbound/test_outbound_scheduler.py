"""The scheduler end to end against SMTP sinks, on a manual clock: delivery, retries,
bounces, delay notices, DSN rules, MX routing, limits, connection reuse, hold/retry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mailstead.core import sanity
from mailstead.store.models import QueuedRecipient
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.sink import SinkServer
from mailstead.testing.waiting import eventually

from .conftest import SENDER, Outbound, human_text, message_bytes, report_fields


def routed(sink: SinkServer, **delivery: Any) -> dict[str, Any]:
    return {"delivery": {"routes": {"b.test": f"127.0.0.1:{sink.port}"}, **delivery}}


async def test_delivers_and_retires_the_message(outbound_factory: Any, sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    await out.queue("bob@b.test", "carol@b.test")
    await out.run()
    [got] = sink.received
    assert got.mail_from == SENDER and sorted(got.rcpt_tos) == ["bob@b.test", "carol@b.test"]
    assert got.data == message_bytes()
    assert await out.store.queued_messages() == []
    assert await out.inbox() == []  # no DSN asked for, none sent


async def test_4xx_then_250_is_delivered_after_the_retry_interval(
        outbound_factory: Any, sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    sink.script("451 4.3.0 try again later")
    await out.queue("bob@b.test")
    await out.run()
    r = (await out.recipients())["bob@b.test"]
    assert r.status == "deferred" and r.attempts == 1
    assert r.last_error == "451 4.3.0 try again later"
    assert (r.next_attempt - out.clock.now()).total_seconds() == 60  # first interval
    await out.run()  # not due yet: nothing happens
    assert sink.received == [] and (await out.recipients())["bob@b.test"].attempts == 1
    await out.run(advance=60)
    assert len(sink.received) == 1
    assert await out.store.queued_messages() == []
    assert await out.inbox() == []


async def test_5xx_bounces_to_the_sender_with_the_remote_reply(
        outbound_factory: Any, sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    sink.refuse("nobody@b.test", "550 5.1.1 <nobody@b.test>: no such user")
    await out.queue("nobody@b.test", "bob@b.test", envid="E1")
    await out.run()
    assert [r.rcpt_tos for r in sink.received] == [["bob@b.test"]]
    [dsn] = await out.inbox()
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    text = human_text(dsn)
    assert "<nobody@b.test>" in text and "550 5.1.1 <nobody@b.test>: no such user" in text
    assert "bob@b.test" not in text
    per_message, per_rcpt = report_fields(dsn)
    assert per_message["original-envelope-id"] == "E1"
    assert per_rcpt["action"] == "failed" and per_rcpt["status"] == "5.1.1"
    assert per_rcpt["final-recipient"] == "rfc822;nobody@b.test"
    assert await out.store.queued_messages() == []


async def test_unreachable_host_defers_warns_then_bounces_at_max_age(
        outbound_factory: Any) -> None:
    from mailstead.testing.server import free_port

    dead = free_port()  # nothing listens there
    out: Outbound = outbound_factory({"delivery": {
        "routes": {"b.test": f"127.0.0.1:{dead}"}, "delay_warning_seconds": 4 * 3600,
        "max_age_seconds": 5 * 86400, "retry_intervals_seconds": [60, 300]}})
    await out.queue("bob@b.test")
    await out.run()
    r = (await out.recipients())["bob@b.test"]
    assert r.status == "deferred" and "connect to" in r.last_error
    await out.run(advance=60)
    r = (await out.recipients())["bob@b.test"]
    assert r.attempts == 2 and (r.next_attempt - out.clock.now()).total_seconds() == 300
    assert await out.inbox() == []  # not four hours yet
    await out.run(advance=4 * 3600)
    [delay] = await out.inbox()
    assert delay["Subject"].startswith("Delayed Mail")
    assert report_fields(delay)[1]["action"] == "delayed"
    assert "will-retry-until" in report_fields(delay)[1]
    await out.run(advance=3600)  # another failure: still only one delay notice
    assert len(await out.inbox()) == 1
    await out.run(advance=5 * 86400)
    delay, bounce = await out.inbox()
    assert bounce["Subject"] == "Undelivered Mail Returned to Sender"
    fields = report_fields(bounce)[1]
    assert fields["action"] == "failed" and fields["status"] == "4.4.7"
    assert "gave up after" in human_text(bounce)
    assert await out.store.queued_messages() == []


async def test_notify_never_null_sender_and_success_dsn(
        outbound_factory: Any, sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    for address in ("x1@b.test", "x2@b.test", "x3@b.test"):
        sink.refuse(address, "550 5.1.1 no")
    await out.queue(QueuedRecipient("x1@b.test", ("NEVER",)))
    await out.queue("x2@b.test", mail_from="")  # a bounce never bounces
    await out.queue(QueuedRecipient("x3@b.test", ("DELAY",)))  # FAILURE not asked
    await out.queue(QueuedRecipient("ok@b.test", ("SUCCESS",)))
    await out.run()
    [dsn] = await out.inbox()
    fields = report_fields(dsn)[1]
    assert fields["action"] == "relayed"  # the sink does not offer DSN
    assert fields["final-recipient"] == "rfc822;ok@b.test"
    assert await out.store.queued_messages() == []


async def test_ret_full_bounce_carries_the_message(outbound_factory: Any,
                                                   sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    sink.refuse("nobody@b.test", "550 5.1.1 no")
    await out.queue("nobody@b.test", data=message_bytes(body="Full body here.\r\n"), ret="FULL")
    await out.run()
    [dsn] = await out.inbox()
    returned = list(dsn.iter_parts())[2]
    assert returned.get_content_type() == "message/rfc822"
    assert b"Full body here." in dsn.as_bytes()


async def test_local_recipients_never_touch_the_network(outbound_factory: Any,
                                                        sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    await out.store.add_user("dave@a.test", "x")  # a.test is ours
    await out.queue("dave@a.test")
    await out.run()
    assert sink.received == []
    [got] = await out.inbox("dave@a.test")
    assert got["Subject"] == "hello 1"


async def test_mx_lookup_preference_and_fallback(
        outbound_factory: Any, sink: SinkServer, dns_server: TestDNSServer) -> None:
    dns_server.add_many([
        ("b.test", "MX", "10 down.b.test"), ("b.test", "MX", "20 up.b.test"),
        ("down.b.test", "AAAA", "::1"),  # the sink listens on 127.0.0.1 only: refused
        ("up.b.test", "A", "127.0.0.1"),
    ])
    config = dns_server.settings()
    config["delivery"]["smtp_port"] = sink.port
    out: Outbound = outbound_factory(config)
    await out.queue("bob@b.test", QueuedRecipient("carol@b.test", ("SUCCESS",)))
    await out.run()
    assert len(sink.received) == 1
    asked = [q for q in dns_server.queries if q[1] in ("A", "AAAA")]
    assert asked.index(("down.b.test.", "AAAA")) < asked.index(("up.b.test.", "A"))
    [dsn] = await out.inbox()
    assert report_fields(dsn)[1]["remote-mta"] == "dns; up.b.test"


async def test_null_mx_and_nxdomain_bounce_without_connecting(
        outbound_factory: Any, dns_server: TestDNSServer) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    out: Outbound = outbound_factory(dns_server.settings())
    await out.queue("x@nomail.test")
    await out.queue("y@nowhere.test")
    await out.run()
    first, second = await out.inbox()
    assert report_fields(first)[1]["status"] == "5.1.10"
    assert "null MX" in human_text(first)
    assert report_fields(second)[1]["status"] == "5.1.2"
    assert await out.store.queued_messages() == []


async def test_dns_failure_is_temporary(outbound_factory: Any,
                                        dns_server: TestDNSServer) -> None:
    dns_server.add("flaky.test", "MX", "10 mx.flaky.test")
    dns_server.break_name("flaky.test")
    out: Outbound = outbound_factory(dns_server.settings())
    await out.queue("x@flaky.test")
    await out.run()
    r = (await out.recipients())["x@flaky.test"]
    assert r.status == "deferred" and r.status_code == "4.4.3"


async def test_utf8_message_to_a_server_without_smtputf8_bounces_clearly(
        outbound_factory: Any, tmp_path: Path) -> None:
    with SinkServer(tmp_path, smtputf8=False) as plain:
        out: Outbound = outbound_factory(routed(plain))
        await out.queue("bøb@b.test", smtputf8=True)
        await out.run()
        assert plain.received == []
    [dsn] = await out.inbox()
    assert "SMTPUTF8" in human_text(dsn)
    assert "5.6.7" in dsn.as_string()


async def test_connection_reuse_and_per_domain_limit(outbound_factory: Any,
                                                     sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink, max_connections_per_domain=1))
    for n in range(12):
        await out.queue("bob@b.test", data=message_bytes(n))
    await out.run()
    assert len(sink.received) == 12
    assert sink.connections == 1  # twelve messages, one connection
    out2: Outbound = outbound_factory(routed(sink, max_connections_per_domain=3,
                                             max_messages_per_connection=2))
    sink.connections = sink.max_active = 0
    for n in range(30):
        await out2.queue("bob@b.test", data=message_bytes(n))
    await out2.run()
    assert len(sink.received) == 42
    assert sink.max_active <= 3
    assert sink.connections >= 15  # two messages per connection at most


@pytest.mark.parametrize(("reuse", "connections"), [(30, 1), (0, 2)])
async def test_an_idle_connection_waits_for_more_mail_to_its_destination(
        outbound_factory: Any, sink: SinkServer, reuse: int, connections: int) -> None:
    """Mail that trickles in: with ``connection_reuse_seconds`` the connection that sent the
    first message is still open for the second (no new DNS lookup, handshake or EHLO);
    with 0 each message opens its own. stop() does not wait out the idle time."""
    out: Outbound = outbound_factory(routed(sink, connection_reuse_seconds=reuse))
    await out.scheduler.start()
    try:
        for n in (1, 2):
            await out.queue("bob@b.test", data=message_bytes(n))
            out.scheduler.wake()
            await eventually(lambda n=n: len(sink.received) == n, timeout=10,
                             what=f"message {n} reaching the sink")
    finally:
        await asyncio.wait_for(out.scheduler.stop(), timeout=10)
    assert sink.connections == connections


async def test_opportunistic_tls_is_used_and_recorded(outbound_factory: Any,
                                                      tmp_path: Path) -> None:
    with SinkServer(tmp_path, starttls=True) as tls_sink:
        out: Outbound = outbound_factory(routed(tls_sink))
        tls_sink.script("451 4.3.0 later")
        await out.queue(QueuedRecipient("bob@b.test", ("SUCCESS",)))
        await out.run()
        r = (await out.recipients())["bob@b.test"]
        assert r.tls is not None and r.tls.startswith("TLSv1")
        await out.run(advance=60)
        [got] = tls_sink.received
        assert got.tls is not None and got.tls.startswith("TLSv1")
    [dsn] = await out.inbox()
    assert "over TLSv1" in human_text(dsn)


async def test_required_tls_without_starttls_stays_queued(outbound_factory: Any,
                                                          sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink, require_tls=["b.test"]))
    await out.queue("bob@b.test")
    await out.run()
    assert sink.received == []
    r = (await out.recipients())["bob@b.test"]
    assert r.status == "deferred" and r.status_code == "4.7.10"


async def test_smarthost_with_auth_over_starttls(outbound_factory: Any, tmp_path: Path) -> None:
    password = tmp_path / "relay-password"
    password.write_text("s3cret\n")
    with SinkServer(tmp_path, starttls=True, auth=("relayuser", "s3cret")) as relay:
        out: Outbound = outbound_factory({"delivery": {"relay": {
            "host": f"127.0.0.1:{relay.port}", "tls": "starttls",
            "verify_certificate": False, "username": "relayuser",
            "password_file": str(password)}}})
        await out.queue("bob@b.test", "x@c.test")
        await out.run()
        [got] = relay.received  # two domains, one relay: one transaction
        assert sorted(got.rcpt_tos) == ["bob@b.test", "x@c.test"]


async def test_hold_release_and_retry(outbound_factory: Any, sink: SinkServer) -> None:
    out: Outbound = outbound_factory(routed(sink))
    queue_id = await out.queue("bob@b.test")
    await out.store.set_queue_held(queue_id, True)
    await out.run()
    assert sink.received == []
    await out.store.set_queue_held(queue_id, False)
    sink.script("421 4.3.2 closing")
    await out.run()
    assert (await out.recipients())["bob@b.test"].status == "deferred"
    assert await out.store.retry_queue(queue_id, out.clock.now()) == 1
    await out.run()
    assert len(sink.received) == 1


async def test_eight_bit_body_to_a_server_without_8bitmime_bounces(
        outbound_factory: Any, tmp_path: Path) -> None:
    with SinkServer(tmp_path, remove_extensions=["8BITMIME"]) as old:
        out: Outbound = outbound_factory(routed(old))
        await out.queue("bob@b.test", data=message_bytes(body="Grüße\r\n"), body="8BITMIME")
        await out.run()
        assert old.received == []
    [dsn] = await out.inbox()
    assert "8BITMIME" in human_text(dsn)


@pytest.mark.parametrize("sanity_on", [True, False])
async def test_a_failing_round_is_logged_and_raises_only_under_the_sanity_flag(
        outbound_factory: Any, monkeypatch: pytest.MonkeyPatch, sanity_on: bool) -> None:
    """Degrade in production (the next round retries), fail under test."""
    if not sanity_on:
        monkeypatch.delenv(sanity.ENV_VAR)
    out: Outbound = outbound_factory({})
    called = asyncio.Event()

    async def broken(now: object, limit: int) -> list[object]:
        called.set()
        raise RuntimeError("a bug in a round")

    monkeypatch.setattr(out.store, "claim_queue", broken)
    await out.scheduler.start()
    await called.wait()
    if sanity_on:
        with pytest.raises(RuntimeError, match="a bug in a round"):
            await out.scheduler.stop()
    else:
        await out.scheduler.stop()
