"""Other users' shared mailboxes over JMAP (RFC 8620 §1.6.2 accounts, RFC 8621 §2 myRights,
§4.7 Email/copy) against a running server, with IMAP on the same store: a grant made with
the store's ACL (as ``mailstead share grant`` makes it) shows the owner as an account of the
grantee's session, with only the shared mailboxes, the rights of the grant, and the
grantee's own \\Seen (decision 0028)."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mailstead.testing.server import ServerThread
from tests.web.jmap.test_jmap_mail import CORE, MAIL, Account, mail

SUBMISSION = "urn:ietf:params:jmap:submission"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("jmapshared"), config) as srv:
        yield srv


class Sharing:
    """An owner with mail in INBOX (two messages) and Archive (one), and a grantee."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.owner = Account(server)
        self.grantee = Account(server)
        self.owner.deliver(mail(1, "shared one"))
        self.owner.deliver(mail(2, "shared two"))
        self.owner.deliver(mail(3, "private three"))
        boxes = self.owner.mailboxes()
        self.owner_inbox = boxes["INBOX"]["id"]
        self.owner_archive = boxes["Archive"]["id"]
        ids = self.owner.one("Email/query", filter={"inMailbox": self.owner_inbox})["ids"]
        subjects = {
            e["subject"]: e["id"]
            for e in self.owner.one("Email/get", ids=ids, properties=["subject"])["list"]
        }
        self.private = subjects["private three"]
        self.shared = [subjects["shared one"], subjects["shared two"]]
        self.owner.one(
            "Email/set",
            update={self.private: {"mailboxIds": {self.owner_archive: True}}},
        )
        self.shared_id = f"A{self.owner.user.id}"

    def grant(self, mailbox: str, rights: str) -> None:
        """As ``mailstead share grant`` does: the store's set_acl."""

        async def grant() -> None:
            box = await self.server.store.get_mailbox(self.owner.user.id, mailbox)
            await self.server.store.set_acl(box.id, self.grantee.address, rights)

        self.server.call(grant())

    def session(self, who: Account) -> dict[str, Any]:
        session: dict[str, Any] = who.http.get("/jmap/session").json()
        return session

    def in_shared(self, name: str, **args: Any) -> list[Any]:
        """One call of the grantee's in the owner's account: [name, arguments]."""
        [[answered, result, _]] = self.grantee.call((name, {"accountId": self.shared_id, **args}))
        return [answered, result]

    def shared_one(self, name: str, **args: Any) -> dict[str, Any]:
        answered, result = self.in_shared(name, **args)
        assert answered == name, result
        return result  # type: ignore[no-any-return]

    def shared_inbox(self) -> str:
        [box] = self.shared_one("Mailbox/get", ids=None)["list"]
        return box["id"]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.owner.http.close()
        self.grantee.http.close()


@pytest.fixture
def sharing(server: ServerThread) -> Iterator[Sharing]:
    made = Sharing(server)
    yield made
    made.close()


def test_the_session_lists_the_owner_for_the_grantee_only(
    sharing: Sharing, server: ServerThread
) -> None:
    assert sharing.shared_id not in sharing.session(sharing.grantee)["accounts"]
    sharing.grant("INBOX", "lr")
    accounts = sharing.session(sharing.grantee)["accounts"]
    shared = accounts[sharing.shared_id]
    assert shared["name"] == sharing.owner.address
    assert (shared["isPersonal"], shared["isReadOnly"]) == (False, True)
    assert set(shared["accountCapabilities"]) == {CORE, MAIL}
    assert accounts[sharing.grantee.account_id]["isPersonal"] is True
    primary = sharing.session(sharing.grantee)["primaryAccounts"]
    assert primary[MAIL] == sharing.grantee.account_id
    # Neither the owner nor a third account sees the grantee's view.
    other = Account(server)
    try:
        assert set(sharing.session(other)["accounts"]) == {other.account_id}
        assert set(sharing.session(sharing.owner)["accounts"]) == {sharing.owner.account_id}
        answered, result, _ = other.call(("Mailbox/get", {"accountId": sharing.shared_id}))[0]
        assert (answered, result["type"]) == ("error", "accountNotFound")
    finally:
        other.http.close()
    sharing.grant("INBOX", "lrs")
    assert sharing.session(sharing.grantee)["accounts"][sharing.shared_id]["isReadOnly"] is False


def test_mailbox_get_shows_only_shared_mailboxes_with_their_rights(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lrswi")
    [box] = sharing.shared_one("Mailbox/get", ids=None)["list"]
    assert (box["name"], box["role"], box["parentId"], box["totalEmails"]) == (
        "INBOX",
        None,
        None,
        2,
    )
    assert box["myRights"] == {
        "mayReadItems": True,
        "mayAddItems": True,
        "mayRemoveItems": False,
        "maySetSeen": True,
        "maySetKeywords": True,
        "mayCreateChild": False,
        "mayRename": False,
        "mayDelete": False,
        "maySubmit": False,
    }
    # The owner's other mailboxes do not exist here.
    hidden = sharing.shared_one("Mailbox/get", ids=[sharing.owner_archive])
    assert hidden["notFound"] == [sharing.owner_archive]
    sharing.grant("Archive", "lrtekx")
    boxes = {b["name"]: b for b in sharing.shared_one("Mailbox/get", ids=None)["list"]}
    assert set(boxes) == {"INBOX", "Archive"}
    rights = boxes["Archive"]["myRights"]
    assert (
        rights["mayRemoveItems"],
        rights["mayCreateChild"],
        rights["mayRename"],
        rights["maySetSeen"],
        rights["mayAddItems"],
    ) == (True, False, False, False, False)  # Mailbox/set is IMAP's here: no promise


def test_emails_are_seen_only_through_the_shared_mailboxes(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lr")
    inbox = sharing.shared_inbox()
    ids = sharing.shared_one("Email/query", calculateTotal=True)
    assert sorted(ids["ids"]) == sorted(sharing.shared) and ids["total"] == 2
    got = sharing.shared_one(
        "Email/get", ids=[*sharing.shared, sharing.private], properties=["subject", "mailboxIds"]
    )
    assert got["notFound"] == [sharing.private]
    assert {e["subject"] for e in got["list"]} == {"shared one", "shared two"}
    assert all(e["mailboxIds"] == {inbox: True} for e in got["list"])
    everything = sharing.shared_one("Email/get", ids=None, properties=["id"])["list"]
    assert sorted(e["id"] for e in everything) == sorted(sharing.shared)
    # An email in a shared and a private mailbox shows only the shared one.
    sharing.owner.one(
        "Email/set", update={sharing.shared[0]: {f"mailboxIds/{sharing.owner_archive}": True}}
    )
    [one] = sharing.shared_one("Email/get", ids=[sharing.shared[0]], properties=["mailboxIds"])[
        "list"
    ]
    assert one["mailboxIds"] == {inbox: True}
    # Threads and snippets answer for visible emails only.
    snippets = sharing.shared_one("SearchSnippet/get", emailIds=[sharing.private])
    assert snippets["notFound"] == [sharing.private]
    # Changes of the owner outside the shared mailboxes never name their emails.
    state = sharing.shared_one("Email/get", ids=[])["state"]
    sharing.owner.one("Email/set", update={sharing.private: {"keywords/$flagged": True}})
    answered, result = sharing.in_shared("Email/changes", sinceState=state)
    if answered == "Email/changes":
        assert sharing.private not in result["created"] + result["updated"] + result["destroyed"]
    else:
        assert result["type"] == "cannotCalculateChanges"


def test_changes_name_new_emails_of_the_shared_mailboxes(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lr")
    state = sharing.shared_one("Email/get", ids=[])["state"]
    sharing.owner.deliver(mail(4, "shared four"))
    changes = sharing.shared_one("Email/changes", sinceState=state)
    [new] = changes["created"]
    [got] = sharing.shared_one("Email/get", ids=[new], properties=["subject"])["list"]
    assert got["subject"] == "shared four"


def test_writes_need_their_rights(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lr")
    target = sharing.shared[0]
    result = sharing.shared_one(
        "Email/set", update={target: {"keywords/$flagged": True}}, destroy=[sharing.shared[1]]
    )
    assert result["notUpdated"][target]["type"] == "forbidden"
    assert result["notDestroyed"][sharing.shared[1]]["type"] == "forbidden"
    seen = sharing.shared_one("Email/set", update={target: {"keywords/$seen": True}})
    assert seen["notUpdated"][target]["type"] == "forbidden"
    inbox = sharing.shared_inbox()
    made = sharing.shared_one(
        "Email/set",
        create={
            "d": {
                "mailboxIds": {inbox: True},
                "subject": "draft",
                "bodyStructure": {"type": "text/plain", "partId": "1"},
                "bodyValues": {"1": {"value": "x"}},
            }
        },
    )
    assert made["notCreated"]["d"]["type"] == "forbidden"
    boxes = sharing.shared_one(
        "Mailbox/set",
        create={"n": {"name": "New"}},
        update={inbox: {"name": "Renamed"}},
        destroy=[inbox],
    )
    assert boxes["notCreated"]["n"]["type"] == "forbidden"
    assert boxes["notUpdated"][inbox]["type"] == "forbidden"
    assert boxes["notDestroyed"][inbox]["type"] == "forbidden"
    # The owner's mail did not change.
    [mine] = sharing.owner.one("Email/get", ids=[target], properties=["keywords"])["list"]
    assert mine["keywords"] == {}
    # Methods of capabilities the shared account does not have are refused.
    body = {
        "using": [CORE, MAIL, SUBMISSION],
        "methodCalls": [["Identity/get", {"accountId": sharing.shared_id}, "0"]],
    }
    [[answered, error, _]] = sharing.grantee.http.post("/jmap/api", json=body).json()[
        "methodResponses"
    ]
    assert (answered, error["type"]) == ("error", "accountNotSupportedByMethod")
    # With the rights, the same writes go through.
    sharing.grant("INBOX", "lrwte")
    result = sharing.shared_one(
        "Email/set", update={target: {"keywords/$flagged": True}}, destroy=[sharing.shared[1]]
    )
    assert list(result["updated"]) == [target] and result["destroyed"] == [sharing.shared[1]]
    [mine] = sharing.owner.one("Email/get", ids=[target], properties=["keywords"])["list"]
    assert mine["keywords"] == {"$flagged": True}


def _imap_flags(client: imaplib.IMAP4, mailbox: str) -> list[str]:
    typ, _ = client.select(f'"{mailbox}"', readonly=True)
    assert typ == "OK"
    typ, data = client.fetch("1:*", "(FLAGS)")
    assert typ == "OK"
    found = (re.search(rb"FLAGS \(([^)]*)\)", item) for item in data if isinstance(item, bytes))
    return sorted(
        " ".join(f for f in m.group(1).decode().split() if f != "\\Recent")
        for m in found
        if m is not None
    )


def test_seen_is_the_grantees_own_and_imap_agrees(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lrs")
    target = sharing.shared[0]
    result = sharing.shared_one("Email/set", update={target: {"keywords/$seen": True}})
    assert list(result["updated"]) == [target]
    [mine] = sharing.shared_one("Email/get", ids=[target], properties=["keywords"])["list"]
    assert mine["keywords"] == {"$seen": True}
    [owners] = sharing.owner.one("Email/get", ids=[target], properties=["keywords"])["list"]
    assert owners["keywords"] == {}
    # IMAP shows the grantee the same mailbox, the same messages, the same \Seen.
    client = sharing.grantee.imap()
    try:
        flags = _imap_flags(client, f"Other Users/{sharing.owner.address}/INBOX")
    finally:
        client.logout()
    assert flags == ["", "\\Seen"]
    query = sharing.shared_one("Email/query", filter={"hasKeyword": "$seen"})
    assert query["ids"] == [target]
    # The owner's own \Seen is not the grantee's.
    sharing.owner.one("Email/set", update={sharing.shared[1]: {"keywords/$seen": True}})
    got = sharing.shared_one("Email/get", ids=[sharing.shared[1]], properties=["keywords"])
    assert got["list"][0]["keywords"] == {}
    # Counts follow the grantee's \Seen too: one of two read, by each of them.
    [box] = sharing.shared_one("Mailbox/get", ids=None)["list"]
    assert (box["totalEmails"], box["unreadEmails"], box["unreadThreads"]) == (2, 1, 1)
    assert sharing.owner.mailboxes()["INBOX"]["unreadEmails"] == 1
    sharing.owner.one("Email/set", update={sharing.shared[0]: {"keywords/$seen": True}})
    [box] = sharing.shared_one("Mailbox/get", ids=None)["list"]
    assert box["unreadEmails"] == 1


def test_email_copy_from_a_shared_account_into_the_own(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lr")
    own_inbox = sharing.grantee.mailboxes()["INBOX"]["id"]
    first, second = sharing.shared
    copied = sharing.grantee.one(
        "Email/copy",
        fromAccountId=sharing.shared_id,
        create={
            "c": {"id": first, "mailboxIds": {own_inbox: True}, "keywords": {"$flagged": True}},
            "p": {"id": sharing.private, "mailboxIds": {own_inbox: True}},
        },
    )
    made = copied["created"]["c"]
    assert copied["notCreated"]["p"]["type"] == "notFound"  # not visible: not copyable
    assert copied["fromAccountId"] == sharing.shared_id
    [got] = sharing.grantee.one(
        "Email/get", ids=[made["id"]], properties=["subject", "keywords", "mailboxIds"]
    )["list"]
    assert got == {
        "id": made["id"],
        "subject": "shared one",
        "keywords": {"$flagged": True},
        "mailboxIds": {own_inbox: True},
    }
    # Without "t" and "e" the implicit Email/set in the source refuses to destroy it.
    [[_, result, _]] = [
        r
        for r in sharing.grantee.call(
            (
                "Email/copy",
                {
                    "fromAccountId": sharing.shared_id,
                    "create": {"c": {"id": second, "mailboxIds": {own_inbox: True}}},
                    "onSuccessDestroyOriginal": True,
                },
            )
        )
        if r[0] == "Email/set"
    ]
    assert result["accountId"] == sharing.shared_id
    assert result["notDestroyed"][second]["type"] == "forbidden"
    # The copy is in the grantee's own mailbox over IMAP.
    client = sharing.grantee.imap()
    try:
        typ, data = client.select("INBOX", readonly=True)
        assert typ == "OK" and data[0] == b"2"
    finally:
        client.logout()


def test_email_copy_with_destroy_moves_out_of_the_shared_account(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lrte")
    own_inbox = sharing.grantee.mailboxes()["INBOX"]["id"]
    first = sharing.shared[0]
    answers = sharing.grantee.call(
        (
            "Email/copy",
            {
                "fromAccountId": sharing.shared_id,
                "create": {"c": {"id": first, "mailboxIds": {own_inbox: True}}},
                "onSuccessDestroyOriginal": True,
            },
        )
    )
    assert [a[0] for a in answers] == ["Email/copy", "Email/set"]
    assert answers[0][2] == answers[1][2]  # the implicit call has the call's id
    assert answers[1][1]["destroyed"] == [first]
    gone = sharing.owner.one("Email/get", ids=[first], properties=["id"])
    assert gone["notFound"] == [first]
    client = sharing.owner.imap()
    try:
        typ, data = client.select("INBOX", readonly=True)
        assert typ == "OK" and data[0] == b"1"
    finally:
        client.logout()
    # Into the shared account, Email/copy needs "i" there.
    [mine] = sharing.grantee.one("Email/query")["ids"]
    refused = sharing.grantee.one(
        "Email/copy",
        fromAccountId=sharing.grantee.account_id,
        accountId=sharing.shared_id,
        create={"b": {"id": mine, "mailboxIds": {sharing.shared_inbox(): True}}},
    )
    assert refused["notCreated"]["b"]["type"] == "forbidden"


def test_email_copy_needs_two_accounts_of_the_session(sharing: Sharing) -> None:
    answered, result, _ = sharing.grantee.call(
        ("Email/copy", {"fromAccountId": sharing.shared_id, "create": {}})
    )[0]
    assert (answered, result["type"]) == ("error", "fromAccountNotFound")
    answered, result, _ = sharing.grantee.call(
        ("Email/copy", {"fromAccountId": sharing.grantee.account_id, "create": {}})
    )[0]
    assert (answered, result["type"]) == ("error", "invalidArguments")


def test_blobs_of_a_shared_account_download_by_its_grants(
    sharing: Sharing, server: ServerThread
) -> None:
    sharing.grant("INBOX", "lr")
    [shared] = sharing.shared_one("Email/get", ids=[sharing.shared[0]], properties=["blobId"])[
        "list"
    ]
    [private] = sharing.owner.one("Email/get", ids=[sharing.private], properties=["blobId"])["list"]

    def download(who: Account, account: str, blob: str) -> int:
        return who.http.get(f"/jmap/download/{account}/{blob}/m.eml").status_code

    assert download(sharing.grantee, sharing.shared_id, shared["blobId"]) == 200
    assert download(sharing.grantee, sharing.shared_id, private["blobId"]) == 404
    assert download(sharing.grantee, sharing.grantee.account_id, shared["blobId"]) == 404
    parsed = sharing.shared_one(
        "Email/parse", blobIds=[shared["blobId"], private["blobId"]], properties=["subject"]
    )
    assert parsed["parsed"][shared["blobId"]]["subject"] == "shared one"
    assert parsed["notFound"] == [private["blobId"]]
    other = Account(server)
    try:
        assert download(other, sharing.shared_id, shared["blobId"]) == 404
    finally:
        other.http.close()
    # Threads know only the emails the grantee may read.
    [thread] = sharing.owner.one("Email/get", ids=[sharing.private], properties=["threadId"])[
        "list"
    ]
    hidden = sharing.shared_one("Thread/get", ids=[thread["threadId"]])
    assert hidden["notFound"] == [thread["threadId"]]


def test_a_revoke_applies_from_the_next_call(sharing: Sharing) -> None:
    sharing.grant("INBOX", "lr")
    before = sharing.session(sharing.grantee)
    assert sharing.shared_one("Email/query")["ids"]
    sharing.grant("INBOX", "")
    after = sharing.session(sharing.grantee)
    assert sharing.shared_id not in after["accounts"]
    assert after["state"] != before["state"]
    answered, result = sharing.in_shared("Email/query")
    assert (answered, result["type"]) == ("error", "accountNotFound")
    # Lookup alone lists the mailbox but shows no mail in it.
    sharing.grant("INBOX", "l")
    [box] = sharing.shared_one("Mailbox/get", ids=None)["list"]
    assert (box["totalEmails"], box["myRights"]["mayReadItems"]) == (0, False)
    assert sharing.shared_one("Email/query")["ids"] == []
