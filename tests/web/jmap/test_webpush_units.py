"""The pieces of JMAP push to a URL without a server: the SSRF guard of outbound POSTs
(net/outbound_http.py) and the sender's retries (http/jmap/webpush.py)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.http.jmap.webpush import WebPushSender
from mailstead.net.outbound_http import (
    Answer,
    Destination,
    DestinationRefused,
    PostFailed,
    checked_addresses,
    is_public,
)
from mailstead.store.models import PushSubscription

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


async def test_a_name_with_a_private_address_is_refused() -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    destination = Destination.parse("https://push.example.com/x", allow_http=False)
    with pytest.raises(DestinationRefused):
        await checked_addresses(destination, allow_private=False, resolver=rebinding)
    assert await checked_addresses(destination, allow_private=True, resolver=rebinding) == [
        "93.184.215.14",
        "127.0.0.1",
    ]
    with pytest.raises(DestinationRefused):
        await checked_addresses(
            Destination.parse("https://[::1]:8443/x", allow_http=False), allow_private=False
        )


async def test_a_name_that_does_not_resolve_is_a_failure_not_a_refusal() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    destination = Destination.parse("https://push.example.com/x", allow_http=False)
    with pytest.raises(PostFailed):
        await checked_addresses(destination, allow_private=False, resolver=nothing)


def test_destination_parsing() -> None:
    parsed = Destination.parse("https://Push.Example.com:8443/a/b?c=d#frag", allow_http=False)
    assert parsed == Destination("https", "push.example.com", 8443, "/a/b?c=d")
    assert parsed.host_header == "push.example.com:8443"
    assert Destination.parse("http://[::1]/", allow_http=True).host_header == "[::1]"
    for url in (
        "http://push.example.com/",
        "ftp://push.example.com/",
        "https:///x",
        "https://user:pw@push.example.com/",
        "https://push.example.com/a b",
        "https://push.example.com:99999/",
        "https://push.example.com:0/",
        "https://" + "a" * 3000,
    ):
        with pytest.raises(DestinationRefused):
            Destination.parse(url, allow_http=False)


@given(st.text(max_size=200), st.booleans())
def test_destination_parse_refuses_or_gives_a_usable_destination(url: str, http: bool) -> None:
    try:
        parsed = Destination.parse(url, allow_http=http)
    except DestinationRefused:
        return
    assert parsed.scheme == "https" or (http and parsed.scheme == "http")
    assert parsed.host and 0 < parsed.port <= 65535 and parsed.target.startswith("/")
    assert "\r" not in parsed.target and "\n" not in parsed.target and " " not in parsed.target


@dataclass
class FakeStore:
    """What the sender asks of the store when it starts and when a URL is gone."""

    removed: list[int] = field(default_factory=list)
    expiries: int = 0

    async def expire_push_subscriptions(self, now: datetime) -> int:
        self.expiries += 1
        return 0

    async def active_push_subscriptions(self, now: datetime) -> list[PushSubscription]:
        return []

    async def remove_push_subscription(self, user_id: int, subscription_id: int) -> None:
        self.removed.append(subscription_id)


def _subscription() -> PushSubscription:
    return PushSubscription(
        id=7,
        user_id=1,
        device_client_id="d",
        url="https://push.example.com/x",
        keys=None,
        verification_code="code",
        verified=False,
        expires=NOW + timedelta(days=1),
        types=None,
    )


async def _sender(
    answers: list[Answer | Exception], store: FakeStore
) -> tuple[WebPushSender, list[float], list[bytes]]:
    slept: list[float] = []
    posted: list[bytes] = []

    async def post(url: str, body: bytes, headers: object) -> Answer:
        posted.append(body)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sender = WebPushSender(
        store,
        account_id=lambda n: f"A{n}",
        post=post,
        now=lambda: NOW,  # type: ignore[arg-type]
        sleep=sleep,
        retry_delays=(1.0, 5.0, 30.0),
        expire_every=None,
    )
    await sender.start()
    return sender, slept, posted


async def _settle(sender: WebPushSender) -> None:
    while sender._tasks:
        await next(iter(sender._tasks))


async def test_failures_are_retried_with_growing_delays() -> None:
    answers: list[Answer | Exception] = [
        PostFailed("connection refused"),
        Answer(503, (("retry-after", "20"),), b""),
        Answer(429, (), b""),
        Answer(201, (), b""),
    ]
    sender, slept, posted = await _sender(answers, FakeStore())
    sender.verification_needed(_subscription())
    await _settle(sender)
    assert len(posted) == 4 and not answers
    assert slept == [1.0, 20.0, 30.0]  # Retry-After honoured up to the longest delay
    await sender.stop()


async def test_the_sender_gives_up_and_drops_on_other_answers() -> None:
    store = FakeStore()
    sender, slept, posted = await _sender([PostFailed("down")] * 4, store)
    sender.verification_needed(_subscription())
    await _settle(sender)
    assert len(posted) == 4 and slept == [1.0, 5.0, 30.0] and store.removed == []
    sender2, slept2, posted2 = await _sender([Answer(400, (), b"")], store)
    sender2.verification_needed(_subscription())
    await _settle(sender2)
    assert len(posted2) == 1 and slept2 == [] and store.removed == []
    sender3, _, _ = await _sender([Answer(404, (), b"")], store)
    sender3.verification_needed(_subscription())
    await _settle(sender3)
    assert store.removed == [7]
    for each in (sender, sender2, sender3):
        await each.stop()


async def test_expired_subscriptions_are_destroyed_at_start_and_every_round() -> None:
    store = FakeStore()
    rounds: list[float] = []
    more = asyncio.Event()

    async def sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) > 2:
            await more.wait()  # the test is done: wait until stopped

    sender = WebPushSender(
        store,  # type: ignore[arg-type]
        account_id=lambda n: f"A{n}",
        post=None,  # type: ignore[arg-type]
        now=lambda: NOW,
        sleep=sleep,
        expire_every=60.0,
    )
    await sender.start()
    while len(rounds) < 3:
        await asyncio.sleep(0)
    assert store.expiries == 3 and rounds == [60.0, 60.0, 60.0]
    await sender.stop()


def test_the_vapid_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    from mailstead.http.jmap.vapid import VapidKey

    path = tmp_path / "webpush-vapid.pem"
    made = VapidKey.load_or_create(path, "mailto:postmaster@example.org")
    assert path.stat().st_mode & 0o777 == 0o600
    again = VapidKey.load_or_create(path, "mailto:postmaster@example.org")
    assert again.application_server_key == made.application_server_key
    assert len(base64.urlsafe_b64decode(made.application_server_key + "=")) == 65  # X9.62
