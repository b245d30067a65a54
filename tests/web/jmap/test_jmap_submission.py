"""JMAP Identity, EmailSubmission (RFC 8621 §6, §7) and Quota (RFC 9425) against a running
server, raw JSON over httpx: a draft made with Email/set is sent through the same delivery
transaction SMTP submission uses, lands in a local recipient's INBOX (read over IMAP) and
moves to Sent by onSuccessUpdateEmail."""

from __future__ import annotations

import email
import email.policy
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import httpx
import jmapc
import pytest

from mailstead.core.types import SendAs
from mailstead.delivery.dkim import generate_key
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import ServerThread, deep_merge
from mailstead.testing.waiting import poll_until

PASSWORD = "a long enough password"
CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
QUOTA = "urn:ietf:params:jmap:quota"
_users = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("jmapsubmit"), config) as srv:
        yield srv


class Account:
    """A fresh account of the server with a raw JSON JMAP client."""

    def __init__(
        self,
        server: ServerThread,
        *,
        quota_bytes: int = 0,
        send_as: SendAs = SendAs.OWN,
        address: str | None = None,
    ) -> None:
        self.server = server
        self.address = address or f"sender{next(_users)}@example.org"
        self.user = server.add_user(
            self.address, PASSWORD, quota_bytes=quota_bytes, send_as=send_as
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{server.port('http')}",
            auth=(self.address, PASSWORD),
            timeout=30,
        )
        self.session = self.http.get("/jmap/session").json()
        self.account_id: str = self.session["primaryAccounts"][MAIL]

    def call(self, *calls: tuple[str, dict[str, Any]]) -> list[list[Any]]:
        body = {
            "using": [CORE, MAIL, SUBMISSION, QUOTA],
            "methodCalls": [
                [name, {"accountId": self.account_id, **args}, str(n)]
                for n, (name, args) in enumerate(calls)
            ],
        }
        response = self.http.post("/jmap/api", json=body)
        assert response.status_code == 200, response.text
        answers: list[list[Any]] = response.json()["methodResponses"]
        return answers

    def one(self, name: str, **args: Any) -> dict[str, Any]:
        [[answered, result, _]] = self.call((name, args))
        assert answered == name, result
        return result  # type: ignore[no-any-return]

    def mailbox(self, role: str) -> str:
        listed = self.one("Mailbox/get", ids=None)["list"]
        return str(next(m["id"] for m in listed if m["role"] == role))

    def identity(self) -> str:
        [own] = [i for i in self.one("Identity/get", ids=None)["list"] if not i["mayDelete"]]
        return str(own["id"])

    def draft(self, **headers: Any) -> str:
        obj = {
            "mailboxIds": {self.mailbox("drafts"): True},
            "keywords": {"$draft": True, "$seen": True},
            "from": [{"email": self.address}],
            "subject": "Plans",
            "bodyValues": {"t": {"value": "Shall we meet?\n"}},
            "textBody": [{"partId": "t", "type": "text/plain"}],
            **headers,
        }
        created = self.one("Email/set", create={"d": obj})["created"]["d"]
        return str(created["id"])


@pytest.fixture
def account(server: ServerThread) -> Iterator[Account]:
    made = Account(server)
    yield made
    made.http.close()


def test_the_session_announces_submission_and_quota(account: Account) -> None:
    caps = account.session["accounts"][account.account_id]["accountCapabilities"]
    assert caps[SUBMISSION] == {"maxDelayedSend": 0, "submissionExtensions": {}}
    assert caps[QUOTA] == {}
    assert SUBMISSION in account.session["capabilities"]


def test_the_own_address_is_an_identity_with_a_stable_id(account: Account) -> None:
    first = account.one("Identity/get", ids=None)
    [own] = first["list"]
    assert own["email"] == account.address and own["mayDelete"] is False
    assert own["id"].startswith("I")
    second = account.one("Identity/get", ids=None)
    assert second["list"] == [own] and second["state"] == first["state"]
    refused = account.one("Identity/set", destroy=[own["id"]])
    assert refused["notDestroyed"][own["id"]]["type"] == "forbidden"


def test_identities_for_owned_addresses_only(account: Account) -> None:
    state = account.one("Identity/get", ids=None)["state"]
    local, domain = account.address.split("@")
    result = account.one(
        "Identity/set",
        create={
            "tag": {
                "email": f"{local}+news@{domain}",
                "name": "News",
                "replyTo": [{"name": None, "email": account.address}],
                "textSignature": "-- \nme",
            },
            "other": {"email": "boss@example.org"},
            "outside": {"email": "someone@example.net"},
        },
    )
    assert set(result["created"]) == {"tag"}
    assert result["notCreated"]["other"]["type"] == "forbiddenFrom"
    assert result["notCreated"]["outside"]["type"] == "forbiddenFrom"
    made = result["created"]["tag"]["id"]
    changed = account.one("Identity/set", update={made: {"name": "Newsletter"}})
    assert made in changed["updated"]
    fixed = account.one("Identity/set", update={made: {"email": account.address}})
    assert fixed["notUpdated"][made]["type"] == "invalidProperties"
    got = account.one("Identity/get", ids=[made])["list"][0]
    assert got["name"] == "Newsletter" and got["textSignature"] == "-- \nme"
    assert got["replyTo"] == [{"name": None, "email": account.address}]
    changes = account.one("Identity/changes", sinceState=state)
    assert changes["created"] == [made] and changes["destroyed"] == []
    gone = account.one("Identity/set", destroy=[made])
    assert gone["destroyed"] == [made]
    after = account.one("Identity/changes", sinceState=changes["newState"])
    assert after["destroyed"] == [made]


def test_an_account_allowed_any_sender_may_have_any_identity(server: ServerThread) -> None:
    anyone = Account(server, send_as=SendAs.ANY)
    result = anyone.one("Identity/set", create={"x": {"email": "someone@example.net"}})
    assert "x" in result["created"]


def test_sending_a_draft_to_local_accounts_moves_it_to_sent(
    server: ServerThread, account: Account
) -> None:
    to, bcc = Account(server), Account(server)
    draft = account.draft(
        to=[{"email": to.address}], bcc=[{"email": bcc.address}], subject="Dinner"
    )
    drafts, sent = account.mailbox("drafts"), account.mailbox("sent")
    responses = account.call(
        (
            "EmailSubmission/set",
            {
                "create": {"s": {"identityId": account.identity(), "emailId": draft}},
                "onSuccessUpdateEmail": {
                    "#s": {
                        f"mailboxIds/{drafts}": None,
                        f"mailboxIds/{sent}": True,
                        "keywords/$draft": None,
                    }
                },
            },
        )
    )
    [[name, result, _], [implicit, email_set, call_id]] = responses
    assert name == "EmailSubmission/set", result
    created = result["created"]["s"]
    assert created["undoStatus"] == "final"
    assert (implicit, call_id) == ("Email/set", "0") and email_set["updated"] == {draft: None}
    moved = account.one("Email/get", ids=[draft], properties=["mailboxIds", "keywords"])
    assert moved["list"][0]["mailboxIds"] == {sent: True}
    assert moved["list"][0]["keywords"] == {"$seen": True}
    # Both recipients got it; the Bcc field went to neither.
    for recipient in (to, bcc):
        [raw] = server.inbox_messages(recipient.address)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == "Dinner" and parsed["Bcc"] is None
        assert f"authenticated as {account.address}" in raw.decode()
    got = account.one("EmailSubmission/get", ids=[created["id"]])["list"][0]
    assert got["emailId"] == draft and got["identityId"] == account.identity()
    assert got["envelope"]["mailFrom"]["email"] == account.address
    assert [r["email"] for r in got["envelope"]["rcptTo"]] == [to.address, bcc.address]
    assert {a: s["delivered"] for a, s in got["deliveryStatus"].items()} == {
        to.address: "yes",
        bcc.address: "yes",
    }


def test_a_foreign_from_is_forbidden(server: ServerThread, account: Account) -> None:
    to = Account(server)
    draft = account.draft(**{"from": [{"email": "ceo@example.org"}]}, to=[{"email": to.address}])
    result = account.one(
        "EmailSubmission/set", create={"s": {"identityId": account.identity(), "emailId": draft}}
    )
    assert result["notCreated"]["s"]["type"] == "forbiddenFrom"
    assert server.inbox_messages(to.address) == []


def test_an_unreadable_author_is_an_invalid_email(server: ServerThread, account: Account) -> None:
    to = Account(server)
    two = [{"email": account.address}, {"email": to.address}]
    draft = account.draft(**{"from": two}, to=[{"email": to.address}])
    result = account.one(
        "EmailSubmission/set", create={"s": {"identityId": account.identity(), "emailId": draft}}
    )
    assert result["notCreated"]["s"]["type"] == "invalidEmail"
    assert server.inbox_messages(to.address) == []


def test_envelope_errors(server: ServerThread, account: Account) -> None:
    identity = account.identity()
    nobody = account.draft()
    result = account.one(
        "EmailSubmission/set",
        create={
            "none": {"identityId": identity, "emailId": nobody},
            "unknown": {
                "identityId": identity,
                "emailId": nobody,
                "envelope": {
                    "mailFrom": {"email": account.address},
                    "rcptTo": [{"email": "ghost@example.org"}],
                },
            },
            "mailfrom": {
                "identityId": identity,
                "emailId": nobody,
                "envelope": {
                    "mailFrom": {"email": "other@example.org"},
                    "rcptTo": [{"email": account.address}],
                },
            },
            "noidentity": {"identityId": "I999999", "emailId": nobody},
            "noemail": {"identityId": identity, "emailId": "M" + "0" * 64},
        },
    )
    errors = {k: v["type"] for k, v in result["notCreated"].items()}
    assert errors == {
        "none": "noRecipients",
        "unknown": "invalidRecipients",
        "mailfrom": "forbiddenMailFrom",
        "noidentity": "invalidProperties",
        "noemail": "invalidProperties",
    }
    assert result["notCreated"]["unknown"]["invalidRecipients"] == ["ghost@example.org"]


def test_query_changes_and_destroy(server: ServerThread, account: Account) -> None:
    to = Account(server)
    identity = account.identity()
    state = account.one("EmailSubmission/get", ids=[])["state"]
    first, second = (
        account.draft(to=[{"email": to.address}]),
        account.draft(to=[{"email": to.address}], subject="Second"),
    )
    made = account.one(
        "EmailSubmission/set",
        create={
            "a": {"identityId": identity, "emailId": first},
            "b": {"identityId": identity, "emailId": second},
        },
    )["created"]
    ids = [made["a"]["id"], made["b"]["id"]]
    query = account.one("EmailSubmission/query", filter={"emailIds": [second]})
    assert query["ids"] == [ids[1]]
    everything = account.one(
        "EmailSubmission/query",
        sort=[{"property": "sentAt", "isAscending": False}],
        filter={"undoStatus": "final", "identityIds": [identity]},
    )
    assert sorted(everything["ids"]) == sorted(ids)
    changes = account.one("EmailSubmission/changes", sinceState=state)
    assert sorted(changes["created"]) == sorted(ids)
    unsend = account.one("EmailSubmission/set", update={ids[0]: {"undoStatus": "canceled"}})
    assert unsend["notUpdated"][ids[0]]["type"] == "cannotUnsend"
    gone = account.one("EmailSubmission/set", destroy=[ids[0]])
    assert gone["destroyed"] == [ids[0]]
    assert account.one("EmailSubmission/get", ids=[ids[0]])["notFound"] == [ids[0]]
    later = account.one("EmailSubmission/changes", sinceState=changes["newState"])
    assert later["destroyed"] == [ids[0]]
    moved = account.one(
        "EmailSubmission/queryChanges",
        sinceQueryState=query["queryState"],
        filter={"emailIds": [second]},
    )
    assert moved["removed"] == [ids[0]] and moved["added"] == []
    # The message was delivered; destroying its submission took nothing back.
    assert len(server.inbox_messages(to.address)) == 2


def test_destroying_the_email_on_success(server: ServerThread, account: Account) -> None:
    to = Account(server)
    draft = account.draft(to=[{"email": to.address}])
    [_, [implicit, result, _]] = account.call(
        (
            "EmailSubmission/set",
            {
                "create": {"s": {"identityId": account.identity(), "emailId": draft}},
                "onSuccessDestroyEmail": ["#s"],
            },
        )
    )
    assert implicit == "Email/set" and result["destroyed"] == [draft]
    assert account.one("Email/get", ids=[draft])["notFound"] == [draft]
    assert len(server.inbox_messages(to.address)) == 1


def test_quota_of_an_account_with_one(server: ServerThread) -> None:
    limited = Account(server, quota_bytes=10_000_000)
    got = limited.one("Quota/get", ids=None)
    [quota] = got["list"]
    assert quota["resourceType"] == "octets" and quota["scope"] == "account"
    assert quota["hardLimit"] == 10_000_000 and quota["types"] == ["Mail"]
    assert quota["warnLimit"] is None and quota["softLimit"] is None
    used = quota["used"]
    server.deliver(limited.user.id, b"From: a@example.net\r\nSubject: x\r\n\r\n" + b"x" * 5000)
    changes = limited.one("Quota/changes", sinceState=got["state"])
    assert changes["updated"] == [quota["id"]]
    again = limited.one("Quota/get", ids=[quota["id"]])["list"][0]
    assert again["used"] > used + 5000
    query = limited.one("Quota/query", filter={"resourceType": "octets", "type": "Mail"})
    assert query["ids"] == [quota["id"]]
    assert limited.one("Quota/query", filter={"scope": "domain"})["ids"] == []


def test_no_quota_no_quota_object(account: Account) -> None:
    got = account.one("Quota/get", ids=None)
    assert got["list"] == []
    assert account.one("Quota/query")["ids"] == []


# -- to another server: the outbound queue, DKIM, deliveryStatus from the queue -------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ServerThread, ServerThread, TestDNSServer]]:
    """Server A (JMAP, outbound delivery on) and server B, the MX of b.test, found through
    a DNS server on loopback; A signs for a.test with a key published there."""
    with (
        TestDNSServer() as dns_server,
        ServerThread(tmp_path / "b", {"hostname": "mx.b.test"}) as b,
    ):
        b.add_user("bob@b.test", PASSWORD)
        key = generate_key(tmp_path / "a" / "data", "a.test", "s1", "rsa2048")
        dns_server.add_many(
            [
                ("b.test", "MX", "10 mx.b.test"),
                ("mx.b.test", "A", "127.0.0.1"),
                (key.record_name, "TXT", key.txt_value),
            ]
        )
        config: dict[str, Any] = deep_merge(
            dns_server.settings(),
            {
                "hostname": "mx.a.test",
                "auth": {"allow_plaintext": True},
                "delivery": {"enabled": True, "smtp_port": b.port("smtp"), "poll_seconds": 0.2},
            },
        )
        with ServerThread(tmp_path / "a", config) as a:
            yield a, b, dns_server


def test_sending_to_another_server(pair: tuple[ServerThread, ServerThread, TestDNSServer]) -> None:
    a, b, dns_server = pair
    alice = Account(a, address="alice@a.test")
    draft = alice.draft(
        to=[{"email": "bob@b.test"}], bcc=[{"email": "carol@b.test"}], subject="Across"
    )
    result = alice.one(
        "EmailSubmission/set",
        create={
            "s": {
                "identityId": alice.identity(),
                "emailId": draft,
                "envelope": {
                    "mailFrom": {"email": alice.address, "parameters": None},
                    "rcptTo": [{"email": "bob@b.test", "parameters": None}],
                },
            }
        },
    )
    sid = result["created"]["s"]["id"]
    [raw] = b.wait_for_inbox("bob@b.test", 1)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Across" and parsed["Bcc"] is None
    # Signed by A as SMTP submission signs: for the From domain, with the published key.
    start = raw.index(b"DKIM-Signature:")
    assert b"d=a.test" in raw and b"s=s1" in raw
    assert dkim.verify(raw[start:], dnsfunc=dns_server.lookup_txt)

    # When A's queue retires the message, the outcome is kept and the submission changes.
    def retired() -> bool | None:
        return True if a.call(a.store.queued_messages()) == [] else None

    poll_until(retired, timeout=30, failure=lambda: "A's queue did not empty")
    changes = alice.one("EmailSubmission/changes", sinceState=result["newState"])
    assert changes["updated"] == [sid]
    got = alice.one("EmailSubmission/get", ids=[sid])["list"][0]
    assert list(got["deliveryStatus"]) == ["bob@b.test"]
    status = got["deliveryStatus"]["bob@b.test"]
    assert status["delivered"] == "yes" and status["smtpReply"].startswith("250")


def test_jmapc_sends_a_draft_as_its_readme_shows(server: ServerThread) -> None:
    """jmapc, a real client, over https: a draft and its submission in one request,
    the submission naming the draft by its creation id, the draft destroyed on success."""
    sender, to = Account(server), Account(server)
    client = jmapc.Client.create_with_password(
        f"localhost:{server.port('https')}", sender.address, PASSWORD
    )
    client.requests_session.trust_env = False
    client.requests_session.verify = str(server.cert_path)
    identities = client.request(jmapc.methods.IdentityGet())
    assert isinstance(identities, jmapc.methods.IdentityGetResponse)
    [identity] = identities.data
    assert identity.email == sender.address
    answers = client.request(
        [
            jmapc.methods.EmailSet(
                create={
                    "draft": jmapc.Email(
                        mail_from=[jmapc.EmailAddress(name="Sender", email=sender.address)],
                        to=[jmapc.EmailAddress(email=to.address)],
                        subject="From jmapc",
                        keywords={"$draft": True},
                        mailbox_ids={sender.mailbox("drafts"): True},
                        body_values={"body": jmapc.EmailBodyValue(value="Hello from jmapc")},
                        text_body=[jmapc.EmailBodyPart(part_id="body", type="text/plain")],
                    )
                }
            ),
            jmapc.methods.EmailSubmissionSet(
                on_success_destroy_email=["#sendIt"],
                create={
                    "sendIt": jmapc.EmailSubmission(
                        email_id="#draft",
                        identity_id=identity.id,
                        envelope=jmapc.Envelope(
                            mail_from=jmapc.Address(email=sender.address),
                            rcpt_to=[jmapc.Address(email=to.address)],
                        ),
                    )
                },
            ),
        ]
    )
    submitted = answers[1].response
    assert isinstance(submitted, jmapc.methods.EmailSubmissionSetResponse)
    assert submitted.created is not None and "sendIt" in submitted.created
    destroyed = answers[2].response
    assert isinstance(destroyed, jmapc.methods.EmailSetResponse) and destroyed.destroyed
    [raw] = server.inbox_messages(to.address)
    assert b"Subject: From jmapc" in raw and b"Hello from jmapc" in raw
