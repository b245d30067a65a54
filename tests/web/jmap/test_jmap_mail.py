"""JMAP mail (RFC 8621) against a running server: raw JSON over httpx, the real client
jmapc over https, and IMAP on the same mailstore at the same time (decision 0033: one
truth, one change log)."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jmapc
import pytest

from mailstead.admin.actors import command_line
from mailstead.cli.serve import build_admin
from mailstead.core.errors import MailsteadError
from mailstead.testing.server import ServerThread

PASSWORD = "a long enough password"
CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
BLOB = "urn:ietf:params:jmap:blob"
_users = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("jmap"), config) as srv:
        yield srv


class Account:
    """One fresh account of the server, with a JMAP client (raw JSON) and IMAP access."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.address = f"user{next(_users)}@example.org"
        self.user = server.add_user(self.address, PASSWORD)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{server.port('http')}",
            auth=(self.address, PASSWORD),
            timeout=30,
        )
        session = self.http.get("/jmap/session").json()
        self.account_id: str = session["primaryAccounts"][MAIL]
        self.session = session

    def call(self, *calls: tuple[str, dict[str, Any]]) -> list[list[Any]]:
        body = {
            "using": [CORE, MAIL, BLOB],
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

    def mailboxes(self) -> dict[str, dict[str, Any]]:
        """Mailbox objects by full IMAP-style name."""
        listed = self.one("Mailbox/get", ids=None)["list"]
        by_id = {m["id"]: m for m in listed}

        def full(m: dict[str, Any]) -> str:
            return (
                m["name"] if m["parentId"] is None else f"{full(by_id[m['parentId']])}/{m['name']}"
            )

        return {full(m): m for m in listed}

    def deliver(self, raw: bytes) -> None:
        self.server.deliver(self.user.id, raw)

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.server.port("imap"))
        client.login(self.address, PASSWORD)
        return client


@pytest.fixture
def account(server: ServerThread) -> Iterator[Account]:
    made = Account(server)
    yield made
    made.http.close()


def mail(n: int, subject: str = "", extra: str = "", body: str = "") -> bytes:
    return (
        f"From: Sender {n} <sender{n}@example.net>\r\nTo: someone@example.org\r\n"
        f"Subject: {subject or f'message {n}'}\r\nMessage-ID: <m{n}@example.net>\r\n"
        f"Date: Mon, 7 Dec 2026 10:00:{n % 60:02d} +0000\r\n{extra}\r\n"
        f"{body or f'Body of message {n}.'}\r\n"
    ).encode()


def test_the_session_names_the_mail_capability(account: Account) -> None:
    assert MAIL in account.session["capabilities"]
    mail_account = account.session["accounts"][account.account_id]
    assert mail_account["accountCapabilities"][MAIL]["mayCreateTopLevelMailbox"] is True
    assert account.session["username"] == account.address


def test_mailboxes_with_roles_and_counts(account: Account) -> None:
    account.deliver(mail(1))
    account.deliver(mail(2))
    boxes = account.mailboxes()
    assert {name: m["role"] for name, m in boxes.items()} == {
        "INBOX": "inbox",
        "Sent": "sent",
        "Drafts": "drafts",
        "Trash": "trash",
        "Junk": "junk",
        "Archive": "archive",
    }
    inbox = boxes["INBOX"]
    assert (inbox["totalEmails"], inbox["unreadEmails"], inbox["totalThreads"]) == (2, 2, 2)
    assert inbox["myRights"]["mayDelete"] is False


def test_mailbox_set_is_what_imap_lists(account: Account) -> None:
    result = account.one(
        "Mailbox/set",
        create={
            "p": {"name": "Projects", "isSubscribed": True},
            "c": {"name": "Alpha", "parentId": "#p"},
        },
    )
    assert set(result["created"]) == {"p", "c"}
    projects = result["created"]["p"]["id"]
    with account.imap() as imap:
        names = {line.decode().rsplit(" ", 1)[1].strip('"') for line in imap.list()[1]}
        assert {"Projects", "Projects/Alpha"} <= names
        assert any(b"Projects" in line for line in imap.lsub()[1])
    renamed = account.one("Mailbox/set", update={projects: {"name": "Work"}})
    assert renamed["updated"] == {projects: None}
    assert "Work/Alpha" in account.mailboxes()
    refused = account.one("Mailbox/set", destroy=[projects])
    assert refused["notDestroyed"][projects]["type"] == "mailboxHasChild"
    alpha = account.mailboxes()["Work/Alpha"]["id"]
    gone = account.one("Mailbox/set", destroy=[alpha, projects])
    assert gone["destroyed"] == [alpha, projects]
    bad = account.one(
        "Mailbox/set", create={"x": {"name": "a/b"}, "y": {"name": "Z", "totalEmails": 3}}
    )
    assert bad["notCreated"]["x"]["type"] == "invalidProperties"
    assert bad["notCreated"]["y"]["properties"] == ["totalEmails"]


def test_query_then_get_through_a_back_reference(account: Account) -> None:
    for n in range(1, 4):
        account.deliver(mail(n, body=f"Hello number {n}, see you."))
    inbox = account.mailboxes()["INBOX"]["id"]
    answers = account.call(
        (
            "Email/query",
            {
                "filter": {"inMailbox": inbox},
                "sort": [{"property": "receivedAt", "isAscending": False}],
                "calculateTotal": True,
            },
        ),
        (
            "Email/get",
            {
                "#ids": {"resultOf": "0", "name": "Email/query", "path": "/ids"},
                "properties": [
                    "subject",
                    "from",
                    "preview",
                    "mailboxIds",
                    "keywords",
                    "textBody",
                    "bodyValues",
                ],
                "fetchTextBodyValues": True,
            },
        ),
    )
    query, got = answers[0][1], answers[1][1]
    assert query["total"] == 3 and len(query["ids"]) == 3
    assert [e["subject"] for e in got["list"]] == ["message 3", "message 2", "message 1"]
    first = got["list"][0]
    assert first["from"] == [{"name": "Sender 3", "email": "sender3@example.net"}]
    assert first["mailboxIds"] == {inbox: True} and first["keywords"] == {}
    assert first["preview"].startswith("Hello number 3")
    part = first["textBody"][0]["partId"]
    assert first["bodyValues"][part]["value"].startswith("Hello number 3")


def test_keywords_are_imap_flags_both_ways(account: Account) -> None:
    account.deliver(mail(1))
    [email] = account.one("Email/query")["ids"]
    state = account.one("Email/get", ids=[email], properties=["keywords"])["state"]
    account.one("Email/set", update={email: {"keywords/$seen": True, "keywords/$label1": True}})
    with account.imap() as imap:
        imap.select("INBOX")
        flags = imap.fetch("1", "(FLAGS)")[1][0]
        assert b"\\Seen" in flags and b"$label1" in flags
        imap.store("1", "+FLAGS", "(\\Flagged)")
    changes = account.one("Email/changes", sinceState=state)
    assert changes["updated"] == [email] and changes["created"] == []
    got = account.one("Email/get", ids=[email], properties=["keywords"])["list"][0]
    assert got["keywords"] == {"$seen": True, "$label1": True, "$flagged": True}


def test_one_email_in_two_mailboxes_and_moves(account: Account) -> None:
    account.deliver(mail(1))
    boxes = account.mailboxes()
    with account.imap() as imap:
        imap.select("INBOX")
        imap.copy("1", "Archive")
    [email] = account.one("Email/query")["ids"]
    got = account.one("Email/get", ids=[email], properties=["mailboxIds"])["list"][0]
    assert got["mailboxIds"] == {boxes["INBOX"]["id"]: True, boxes["Archive"]["id"]: True}
    moved = account.one("Email/set", update={email: {"mailboxIds": {boxes["Trash"]["id"]: True}}})
    assert moved["updated"] == {email: None}
    with account.imap() as imap:
        assert imap.select("INBOX")[1] == [b"0"]
        assert imap.select("Archive")[1] == [b"0"]
        assert imap.select("Trash")[1] == [b"1"]
    gone = account.one("Email/set", destroy=[email])
    assert gone["destroyed"] == [email]
    with account.imap() as imap:
        assert imap.select("Trash")[1] == [b"0"]
    assert account.one("Email/get", ids=[email])["notFound"] == [email]


def test_a_draft_created_in_jmap_is_a_message_in_imap(account: Account) -> None:
    drafts = account.mailboxes()["Drafts"]["id"]
    result = account.one(
        "Email/set",
        create={
            "d": {
                "mailboxIds": {drafts: True},
                "keywords": {"$draft": True, "$seen": True},
                "from": [{"name": "Zoë", "email": account.address}],
                "to": [{"email": "friend@example.net"}],
                "subject": "Plans for Zürich",
                "bodyValues": {"t": {"value": "Shall we meet?\n"}},
                "textBody": [{"partId": "t", "type": "text/plain"}],
            }
        },
    )
    created = result["created"]["d"]
    assert created["id"].startswith("M") and created["size"] > 0
    with account.imap() as imap:
        imap.select("Drafts")
        _, data = imap.fetch("1", "(FLAGS BODY.PEEK[])")
        raw = data[0][1]
        assert b"\\Draft" in data[0][0] and b"Shall we meet?" in raw
        assert re.search(rb"(?im)^subject: =\?utf-8\?", raw)  # RFC 2047 for the umlaut
    got = account.one("Email/get", ids=[created["id"]], properties=["subject", "from"])
    assert got["list"][0]["subject"] == "Plans for Zürich"
    assert got["list"][0]["from"][0]["name"] == "Zoë"


def test_upload_import_and_download(account: Account) -> None:
    raw = mail(7, subject="imported", body="Imported body.")
    uploaded = account.http.post(
        f"/jmap/upload/{account.account_id}",
        content=raw,
        headers={"Content-Type": "message/rfc822"},
    )
    assert uploaded.status_code == 201, uploaded.text
    blob = uploaded.json()["blobId"]
    archive = account.mailboxes()["Archive"]["id"]
    result = account.one(
        "Email/import",
        emails={
            "i": {
                "blobId": blob,
                "mailboxIds": {archive: True},
                "keywords": {"$seen": True},
                "receivedAt": "2026-01-02T03:04:05Z",
            }
        },
    )
    created = result["created"]["i"]
    got = account.one(
        "Email/get", ids=[created["id"]], properties=["receivedAt", "keywords", "subject", "blobId"]
    )["list"][0]
    assert got["receivedAt"] == "2026-01-02T03:04:05Z" and got["subject"] == "imported"
    template = account.session["downloadUrl"]
    url = (
        template.replace("{accountId}", account.account_id)
        .replace("{blobId}", got["blobId"])
        .replace("{name}", "m.eml")
        .replace("{type}", "message/rfc822")
    )
    downloaded = account.http.get(url)
    assert downloaded.status_code == 200 and downloaded.content == raw
    missing = account.one(
        "Email/import", emails={"j": {"blobId": "U" + "0" * 64, "mailboxIds": {archive: True}}}
    )
    assert missing["notCreated"]["j"]["type"] == "blobNotFound"
    other = Account(account.server)
    assert other.http.get(url.replace(account.account_id, other.account_id)).status_code == 404


def test_a_part_downloads_decoded(account: Account) -> None:
    raw = (
        b"From: a@example.net\r\nSubject: with attachment\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
        b"Content-Type: application/octet-stream; name=data.bin\r\n"
        b"Content-Disposition: attachment; filename=data.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b--\r\n"
    )
    account.deliver(raw)
    [email] = account.one("Email/query")["ids"]
    got = account.one("Email/get", ids=[email], properties=["attachments", "hasAttachment"])
    [attachment] = got["list"][0]["attachments"]
    assert got["list"][0]["hasAttachment"] is True
    assert (attachment["name"], attachment["size"]) == ("data.bin", 5)
    answer = account.http.get(
        f"/jmap/download/{account.account_id}/{attachment['blobId']}"
        "/data.bin?accept=application/octet-stream"
    )
    assert answer.content == b"\x00\x01\x02\x03\x04"


def test_a_reply_joins_the_thread(account: Account) -> None:
    account.deliver(mail(1))
    account.deliver(
        mail(
            2,
            subject="Re: message 1",
            extra="In-Reply-To: <m1@example.net>\r\nReferences: <m1@example.net>\r\n",
        )
    )
    account.deliver(mail(3))
    got = account.one("Email/get", ids=None, properties=["threadId", "subject"])["list"]
    threads = {e["subject"]: e["threadId"] for e in got}
    assert threads["message 1"] == threads["Re: message 1"] != threads["message 3"]
    thread = account.one("Thread/get", ids=[threads["message 1"]])["list"][0]
    assert len(thread["emailIds"]) == 2
    collapsed = account.one("Email/query", collapseThreads=True)
    assert len(collapsed["ids"]) == 2 and collapsed["canCalculateChanges"] is False


def test_query_changes_follow_imap(account: Account) -> None:
    for n in range(1, 4):
        account.deliver(mail(n))
    inbox = account.mailboxes()["INBOX"]["id"]
    first = account.one("Email/query", filter={"inMailbox": inbox})
    account.deliver(mail(4))
    with account.imap() as imap:
        imap.select("INBOX")
        imap.store("1", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    changes = account.one(
        "Email/queryChanges", filter={"inMailbox": inbox}, sinceQueryState=first["queryState"]
    )
    now = account.one("Email/query", filter={"inMailbox": inbox})["ids"]
    # Apply the delta to the old result: the same as querying again.
    result = [i for i in first["ids"] if i not in changes["removed"]]
    for added in sorted(changes["added"], key=lambda a: a["index"]):
        result.insert(added["index"], added["id"])
    assert result == now and len(now) == 3


def test_filters(account: Account) -> None:
    account.deliver(mail(1, subject="invoice March", body="Amount due: 12 EUR"))
    account.deliver(mail(2, subject="lunch?", body="pizza or sushi"))
    with account.imap() as imap:
        imap.select("INBOX")
        imap.store("2", "+FLAGS", "(\\Flagged)")

    def subjects(condition: dict[str, Any]) -> list[str]:
        ids = account.one("Email/query", filter=condition)["ids"]
        got = account.one("Email/get", ids=ids, properties=["subject"])["list"]
        return sorted(e["subject"] for e in got)

    assert subjects({"subject": "INVOICE"}) == ["invoice March"]
    assert subjects({"body": "sushi"}) == ["lunch?"]
    assert subjects({"text": "12 eur"}) == ["invoice March"]
    assert subjects({"from": "sender2@"}) == ["lunch?"]
    assert subjects({"hasKeyword": "$flagged"}) == ["lunch?"]
    assert subjects({"operator": "NOT", "conditions": [{"hasKeyword": "$flagged"}]}) == [
        "invoice March"
    ]
    refused = account.call(("Email/query", {"filter": {"nonsense": 1}}))
    assert refused[0][0] == "error" and refused[0][1]["type"] == "unsupportedFilter"


def test_mailbox_changes_report_counts_only(account: Account) -> None:
    state = account.one("Mailbox/get", ids=None)["state"]
    account.deliver(mail(1))
    changes = account.one("Mailbox/changes", sinceState=state)
    assert changes["updated"] == [account.mailboxes()["INBOX"]["id"]]
    assert changes["updatedProperties"] == [
        "totalEmails",
        "unreadEmails",
        "totalThreads",
        "unreadThreads",
    ]
    bad = account.call(("Mailbox/changes", {"sinceState": "x1"}))
    assert bad[0][1]["type"] == "cannotCalculateChanges"


def test_jmapc_reads_mailboxes_and_emails(server: ServerThread) -> None:
    account = Account(server)
    account.deliver(mail(1, subject="for jmapc"))
    client = jmapc.Client.create_with_password(
        f"localhost:{server.port('https')}", account.address, PASSWORD
    )
    client.requests_session.trust_env = False
    client.requests_session.verify = str(server.cert_path)
    boxes = client.request(jmapc.methods.MailboxGet(ids=None))
    assert isinstance(boxes, jmapc.methods.MailboxGetResponse)
    inbox = next(m for m in boxes.data if m.role == "inbox")
    assert inbox.total_emails == 1
    answers = client.request(
        [
            jmapc.methods.EmailQuery(filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox.id)),
            jmapc.methods.EmailGet(ids=jmapc.Ref("/ids"), properties=["subject", "from"]),
        ]
    )
    got = answers[1].response
    assert isinstance(got, jmapc.methods.EmailGetResponse)
    assert [e.subject for e in got.data] == ["for jmapc"]


def test_removing_one_of_two_copies_is_an_update(account: Account) -> None:
    """The email stays (a copy is left) but its mailboxIds changed: /changes says so
    though no message row changed."""
    account.deliver(mail(1))
    with account.imap() as imap:
        imap.select("INBOX")
        imap.copy("1", "Archive")
    state = account.one("Email/get", ids=[])["state"]
    with account.imap() as imap:
        imap.select("INBOX")
        imap.store("1", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    changes = account.one("Email/changes", sinceState=state)
    [email] = account.one("Email/query")["ids"]
    assert changes["updated"] == [email] and changes["destroyed"] == []


def test_search_snippets_mark_what_matched(account: Account) -> None:
    body = "Intro text. " * 40 + "The MÜLLER figures are attached. " + "x " * 200
    utf8 = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    account.deliver(mail(1, subject="Quarterly <report> for Müller", extra=utf8, body=body))
    [email] = account.one("Email/query", filter={"text": "müller"})["ids"]
    got = account.one("SearchSnippet/get", emailIds=[email, "M" + "0" * 64],
                      filter={"operator": "AND", "conditions": [{"text": "müller"}]})
    [snippet] = got["list"]
    assert snippet["subject"] == "Quarterly &lt;report&gt; for <mark>Müller</mark>"
    assert "The <mark>MÜLLER</mark> figures" in snippet["preview"]
    assert snippet["preview"].startswith("…") and len(snippet["preview"]) < 320
    assert got["notFound"] == ["M" + "0" * 64]


def test_parse_an_attached_message_and_read_its_parts(account: Account) -> None:
    inner = (b"From: inner@example.net\r\nSubject: the forwarded one\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n"
             b"Content-Type: text/plain\r\n\r\nInner text.\r\n--i\r\n"
             b"Content-Type: application/octet-stream; name=x.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--i--\r\n")
    outer = (b"From: a@example.net\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
             b"Content-Type: text/plain\r\n\r\nSee below.\r\n--o\r\n"
             b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--o--\r\n")
    account.deliver(outer)
    [email] = account.one("Email/query")["ids"]
    [attached] = account.one("Email/get", ids=[email],
                             properties=["attachments"])["list"][0]["attachments"]
    assert attached["type"] == "message/rfc822"
    parsed = account.one("Email/parse", blobIds=[attached["blobId"], "U" + "1" * 64],
                         properties=["subject", "from", "attachments", "textBody",
                                     "bodyValues", "mailboxIds"],
                         fetchTextBodyValues=True)
    message = parsed["parsed"][attached["blobId"]]
    assert message["subject"] == "the forwarded one" and message["mailboxIds"] is None
    assert parsed["notFound"] == ["U" + "1" * 64]
    [inner_attachment] = message["attachments"]
    url = f"/jmap/download/{account.account_id}/{inner_attachment['blobId']}/x.bin"
    assert account.http.get(url).content == b"\x00\x01\x02"
    text_part = message["textBody"][0]["partId"]
    assert message["bodyValues"][text_part]["value"] == "Inner text."


def test_a_page_by_date_is_what_sorting_every_email_gives(account: Account) -> None:
    """The common query (a mailbox newest first) is read in index order; the same query
    with a condition that matches everything takes the general path: they agree on every
    page, with ties of date, two copies in one mailbox, and after a copy with another
    date makes the account's dates mixed."""
    for n in range(5):
        account.deliver(mail(n))
    inbox = account.mailboxes()["INBOX"]["id"]
    for n in range(10, 16):  # the same received time: ties
        blob = account.http.post(f"/jmap/upload/{account.account_id}", content=mail(n),
                                 headers={"Content-Type": "message/rfc822"}).json()["blobId"]
        account.one("Email/import", emails={"i": {"blobId": blob, "mailboxIds": {inbox: True},
                                                  "receivedAt": "2026-06-01T00:00:00Z"}})

    def pages(condition: dict[str, Any], ascending: bool) -> list[Any]:
        out = []
        for position in (0, 3, 7):
            got = account.one("Email/query", filter=condition, position=position, limit=4,
                              calculateTotal=True,
                              sort=[{"property": "receivedAt", "isAscending": ascending}])
            out.append((got["ids"], got["total"], got["position"]))
        return out

    def compare() -> None:
        for ascending in (False, True):
            fast = pages({"inMailbox": inbox}, ascending)
            general = pages({"inMailbox": inbox, "minSize": 0}, ascending)
            assert fast == general
            everything = account.one("Email/query", calculateTotal=True,
                                     sort=[{"property": "receivedAt", "isAscending": ascending}])
            assert everything["ids"] == account.one(
                "Email/query", filter={"minSize": 0},
                sort=[{"property": "receivedAt", "isAscending": ascending}])["ids"]

    compare()  # one copy of each body: rows are emails
    with account.imap() as imap:
        imap.select("INBOX")
        imap.copy("1:3", "INBOX")  # copies of the same bodies in the same mailbox
    compare()
    assert pages({"inMailbox": inbox}, False)[0][1] == 11  # distinct bodies
    with account.imap() as imap:  # the same octets again, with another date: mixed
        imap.append("INBOX", None, '"01-Jan-2020 00:00:00 +0000"', mail(1))
    compare()


def test_blobs_inside_requests(account: Account) -> None:
    """RFC 9404: a blob made from inline data and a range of a message, read back as text,
    base64 and digests, and looked up to the Email, Thread and Mailbox it belongs to."""
    account.deliver(mail(1, body="The body."))
    email = account.one("Email/query")["ids"][0]
    got = account.one("Email/get", ids=[email], properties=["blobId", "threadId",
                                                             "mailboxIds"])["list"][0]
    answers = account.call(
        ("Blob/upload", {"create": {"b": {"type": "text/plain", "data": [
            {"data:asText": "Héllo, "}, {"data:asBase64": "d29ybGQ="},
            {"blobId": got["blobId"], "offset": 0, "length": 4}]}}}),
        ("Blob/get", {"ids": ["#b"], "properties": ["data:asText", "digest:sha-256", "size"]}),
        ("Blob/get", {"ids": [got["blobId"]], "properties": ["data"], "offset": 0,
                      "length": 5}),
        ("Blob/lookup", {"typeNames": ["Email", "Thread", "Mailbox"],
                         "ids": [got["blobId"], "G" + "f" * 64]}),
    )
    made = answers[0][1]["created"]["b"]
    assert made["size"] == len("Héllo, world".encode()) + 4
    [read] = answers[1][1]["list"]
    assert read["data:asText"] == "Héllo, worldFrom" and read["size"] == made["size"]
    assert read["digest:sha-256"] == base64.b64encode(
        hashlib.sha256("Héllo, worldFrom".encode()).digest()).decode()
    assert answers[2][1]["list"][0]["data:asText"] == "From:"
    [found] = answers[3][1]["list"]
    assert found["matchedIds"] == {"Email": [email], "Thread": [got["threadId"]],
                                   "Mailbox": list(got["mailboxIds"])}
    assert answers[3][1]["notFound"] == ["G" + "f" * 64]
    refused = account.one("Blob/upload", create={"x": {"data": [{"blobId": "U" + "0" * 64}]}})
    assert refused["notCreated"]["x"]["type"] == "blobNotFound"


def test_a_mail_token_stands_for_its_account(tmp_path: Path) -> None:
    """``mailstead token create --scope mail:ADDRESS``: Bearer in JMAP for that account,
    nothing in the admin API; wrong tokens are throttled like wrong passwords (a server of
    its own: the throttle ends up refusing this client's address)."""
    with ServerThread(tmp_path, {"auth": {"allow_plaintext": True}}) as server:
        _token_checks(Account(server))


def _token_checks(account: Account) -> None:
    admin = build_admin(account.server.store, account.server.settings)
    token = account.server.call(admin.create_token(
        command_line(), "phone", f"mail:{account.address.upper()}")).text
    base = f"http://127.0.0.1:{account.server.port('http')}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as bearer:
        session = bearer.get("/jmap/session").json()
        assert session["username"] == account.address
        body = {"using": [CORE, MAIL], "methodCalls": [
            ["Mailbox/get", {"accountId": account.account_id, "ids": None}, "0"]]}
        assert bearer.post("/jmap/api", json=body).json()["methodResponses"][0][0] == (
            "Mailbox/get")
        assert bearer.get("/api/v1/domains").status_code == 403
    with pytest.raises(MailsteadError):
        account.server.call(admin.create_token(command_line(), "x", "mail:nobody@example.org"))
    statuses = []
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer ms_1_wrong"}) as bad:
        for _ in range(12):
            answer = bad.get("/jmap/session")
            statuses.append(answer.status_code)
            if answer.status_code == 401:
                assert answer.headers["www-authenticate"].startswith("Bearer")
    assert statuses[0] == 401 and statuses[-1] == 429
