"""VacationResponse (RFC 8621 §8) against a running server: set over JMAP, mail sent over
SMTP submission by another account, the auto-reply (or its absence) read over IMAP."""

from __future__ import annotations

import email
import email.policy
import imaplib
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from mailstead.testing.server import ServerThread
from tests.web.jmap.test_jmap_mail import CORE, MAIL, PASSWORD, Account

VACATION = "urn:ietf:params:jmap:vacationresponse"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("vacation"), config) as srv:
        yield srv


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Account]:
    made = Account(server)
    yield made
    made.http.close()


@pytest.fixture
def bob(server: ServerThread) -> Iterator[Account]:
    made = Account(server)
    yield made
    made.http.close()


def vacation_call(account: Account, name: str, **args: Any) -> dict[str, Any]:
    body = {
        "using": [CORE, MAIL, VACATION],
        "methodCalls": [[name, {"accountId": account.account_id, **args}, "0"]],
    }
    response = account.http.post("/jmap/api", json=body)
    assert response.status_code == 200, response.text
    [[answered, result, _]] = response.json()["methodResponses"]
    assert answered == name, result
    return result  # type: ignore[no-any-return]


def set_vacation(account: Account, **patch: Any) -> dict[str, Any]:
    result = vacation_call(account, "VacationResponse/set", update={"singleton": patch})
    assert result["updated"] == {"singleton": None}, result
    return result


def send(server: ServerThread, sender: Account, to: Account, *headers: str) -> None:
    """``sender`` submits a message to ``to`` over SMTP (submissions, logged in)."""
    message = "\r\n".join(
        [
            f"From: {sender.address}",
            f"To: {to.address}",
            "Subject: Are you there?",
            f"Message-ID: <{sender.address.replace('@', '.')}.{len(headers)}@example.org>",
            *headers,
            "",
            "Hello.",
            "",
        ]
    )
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("submissions"), context=server.client_ssl_context()
    ) as smtp:
        smtp.login(sender.address, PASSWORD)
        smtp.sendmail(sender.address, [to.address], message.encode())


def inbox(account: Account) -> list[EmailMessage]:
    """Every message in the account's INBOX, read over IMAP."""
    client: imaplib.IMAP4 = account.imap()
    try:
        client.select("INBOX")
        _, data = client.uid("SEARCH", "ALL")
        found = []
        for uid in data[0].split():
            _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = fetched[0]
            assert isinstance(raw, tuple)
            parsed = email.message_from_bytes(
                raw[1], _class=EmailMessage, policy=email.policy.default
            )
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
        return found
    finally:
        client.logout()


def test_capability_and_default(alice: Account) -> None:
    assert VACATION in alice.session["capabilities"]
    assert alice.session["accounts"][alice.account_id]["accountCapabilities"][VACATION] == {}
    got = vacation_call(alice, "VacationResponse/get", ids=None)
    assert got["list"] == [
        {
            "id": "singleton",
            "isEnabled": False,
            "fromDate": None,
            "toDate": None,
            "subject": None,
            "textBody": None,
            "htmlBody": None,
        }
    ]
    assert got["notFound"] == []
    other = vacation_call(alice, "VacationResponse/get", ids=["singleton", "x"])
    assert [o["id"] for o in other["list"]] == ["singleton"]
    assert other["notFound"] == ["x"]


def test_set_moves_the_state_and_is_a_singleton(alice: Account) -> None:
    before = vacation_call(alice, "VacationResponse/get", ids=None)["state"]
    result = set_vacation(alice, isEnabled=True, textBody="Away", fromDate="2026-07-01T00:00:00Z")
    assert result["oldState"] == before
    assert result["newState"] != before
    got = vacation_call(alice, "VacationResponse/get", ids=["singleton"], properties=["toDate"])
    assert got["state"] == result["newState"]
    assert got["list"] == [{"id": "singleton", "toDate": None}]
    full = vacation_call(alice, "VacationResponse/get", ids=None)["list"][0]
    assert full["fromDate"] == "2026-07-01T00:00:00Z"
    assert full["textBody"] == "Away"
    refused = vacation_call(
        alice,
        "VacationResponse/set",
        create={"new": {"isEnabled": True}},
        destroy=["singleton"],
        update={"other": {"isEnabled": False}},
    )
    assert refused["notCreated"]["new"]["type"] == "singleton"
    assert refused["notDestroyed"]["singleton"]["type"] == "singleton"
    assert refused["notUpdated"]["other"]["type"] == "notFound"
    bad = vacation_call(
        alice,
        "VacationResponse/set",
        update={"singleton": {"fromDate": "yesterday", "isEnabled": "yes"}},
    )
    assert bad["notUpdated"]["singleton"]["type"] == "invalidProperties"
    backwards = vacation_call(
        alice,
        "VacationResponse/set",
        update={
            "singleton": {"fromDate": "2026-07-02T00:00:00Z", "toDate": "2026-07-01T00:00:00Z"}
        },
    )
    assert backwards["notUpdated"]["singleton"]["type"] == "invalidProperties"


def test_auto_reply_once_to_a_local_sender(
    server: ServerThread, alice: Account, bob: Account
) -> None:
    set_vacation(alice, isEnabled=True, subject=None, textBody="I am away until Monday.")
    send(server, bob, alice)
    [reply] = inbox(bob)
    assert reply["From"] == alice.address
    assert reply["To"] == bob.address
    assert reply["Subject"] == "Auto: Are you there?"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == f"<{bob.address.replace('@', '.')}.0@example.org>"
    assert reply["Return-Path"] == "<>"  # RFC 3834 §3.3: sent with MAIL FROM:<>
    assert reply.get_content().strip() == "I am away until Monday."
    send(server, bob, alice)
    assert len(inbox(bob)) == 1  # within the period: no second reply
    assert len(inbox(alice)) == 2


def test_text_and_html_reply(server: ServerThread, alice: Account, bob: Account) -> None:
    set_vacation(
        alice, isEnabled=True, subject="Out of office", textBody="Away", htmlBody="<p>Away</p>"
    )
    send(server, bob, alice)
    [reply] = inbox(bob)
    assert reply["Subject"] == "Out of office"
    assert reply.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    "header",
    [
        "List-Id: <team.lists.example.org>",
        "Auto-Submitted: auto-generated",
        "Precedence: bulk",
    ],
)
def test_no_reply_to_automatic_mail(
    server: ServerThread, alice: Account, bob: Account, header: str
) -> None:
    set_vacation(alice, isEnabled=True, textBody="Away")
    send(server, bob, alice, header)
    assert len(inbox(alice)) == 1
    assert inbox(bob) == []
    send(server, bob, alice)  # the same sender's personal mail is answered
    assert len(inbox(bob)) == 1


def test_no_reply_when_disabled(server: ServerThread, alice: Account, bob: Account) -> None:
    set_vacation(alice, isEnabled=True, textBody="Away")
    set_vacation(alice, isEnabled=False)
    send(server, bob, alice)
    assert len(inbox(alice)) == 1
    assert inbox(bob) == []


@pytest.mark.parametrize("days", [(1, 2), (-2, -1)])
def test_no_reply_outside_the_dates(
    server: ServerThread, alice: Account, bob: Account, days: tuple[int, int]
) -> None:
    now = datetime.now(UTC)
    start, end = ((now + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in days)
    set_vacation(alice, isEnabled=True, textBody="Away", fromDate=start, toDate=end)
    send(server, bob, alice)
    assert len(inbox(alice)) == 1
    assert inbox(bob) == []


def test_reply_inside_the_dates(server: ServerThread, alice: Account, bob: Account) -> None:
    now = datetime.now(UTC)
    start, end = ((now + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (-1, 1))
    set_vacation(alice, isEnabled=True, textBody="Away", fromDate=start, toDate=end)
    send(server, bob, alice)
    assert len(inbox(bob)) == 1
