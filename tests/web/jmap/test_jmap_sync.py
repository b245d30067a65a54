"""A JMAP client that syncs only by deltas (``/changes`` in small pages, then ``/get`` of
what changed, and ``/queryChanges`` for the queries it keeps) ends with exactly what a
fresh full fetch shows, whatever mix of IMAP and JMAP changes came in between (issue #15:
one truth with IMAP). Hypothesis draws the changes; the server is real, IMAP is imaplib,
JMAP raw JSON."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailstead.testing.server import ServerThread
from tests.web.jmap.test_jmap_mail import Account, mail

FOLDERS = ("INBOX", "Archive", "Trash")
KEYWORDS = ("$seen", "$flagged", "work")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(
        tmp_path_factory.mktemp("jmap-sync"), {"auth": {"allow_plaintext": True}}
    ) as srv:
        yield srv


class DeltaClient:
    """What a JMAP client keeps: objects by id, and the state it has them at."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.emails: dict[str, dict[str, Any]] = {}
        self.mailboxes: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, list[str]] = {}
        full = self.full()
        self.emails, self.mailboxes, self.threads = full
        self.state = {
            t: account.one(f"{t}/get", ids=[])["state"] for t in ("Email", "Mailbox", "Thread")
        }
        inbox = next(m["id"] for m in self.mailboxes.values() if m["role"] == "inbox")
        #: Queries the client keeps by /queryChanges (RFC 8620 §5.6): the INBOX newest first
        #: (the page the store reads in order) and the flagged mail (the general path).
        self.queries = [
            {"filter": {"inMailbox": inbox},
             "sort": [{"property": "receivedAt", "isAscending": False}]},
            {"filter": {"hasKeyword": "$flagged"},
             "sort": [{"property": "receivedAt", "isAscending": True}]},
        ]
        self.results: list[tuple[list[str], str]] = []
        for query in self.queries:
            got = account.one("Email/query", **query)
            self.results.append((got["ids"], got["queryState"]))

    def fresh_results(self) -> list[list[str]]:
        return [self.account.one("Email/query", **q)["ids"] for q in self.queries]

    def sync_queries(self) -> None:
        for n, query in enumerate(self.queries):
            ids, state = self.results[n]
            delta = self.account.one("Email/queryChanges", sinceQueryState=state, **query)
            assert delta["oldQueryState"] == state
            ids = [i for i in ids if i not in delta["removed"]]
            for added in sorted(delta["added"], key=lambda a: a["index"]):
                ids.insert(added["index"], added["id"])
            self.results[n] = (ids, delta["newQueryState"])

    def full(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
        emails = {
            e["id"]: e
            for e in self.account.one(
                "Email/get", ids=None, properties=["mailboxIds", "keywords", "threadId"]
            )["list"]
        }
        mailboxes = {m["id"]: m for m in self.account.one("Mailbox/get", ids=None)["list"]}
        thread_ids = sorted({e["threadId"] for e in emails.values()})
        threads = (
            {t["id"]: t["emailIds"] for t in self.account.one("Thread/get", ids=thread_ids)["list"]}
            if thread_ids
            else {}
        )
        return emails, mailboxes, threads

    def _sync(self, kind: str, store: dict[str, Any], get: dict[str, Any]) -> None:
        while True:
            changes = self.account.one(f"{kind}/changes", sinceState=self.state[kind], maxChanges=3)
            assert changes["oldState"] == self.state[kind]
            changed = changes["created"] + changes["updated"]
            if changed:
                got = self.account.one(f"{kind}/get", ids=changed, **get)
                for obj in got["list"]:
                    store[obj["id"]] = obj["emailIds"] if kind == "Thread" else obj
                for missing in got["notFound"]:
                    store.pop(missing, None)
            for gone in changes["destroyed"]:
                store.pop(gone, None)
            self.state[kind] = changes["newState"]
            if not changes["hasMoreChanges"]:
                return

    def sync(self) -> None:
        self.sync_queries()
        self._sync("Mailbox", self.mailboxes, {})
        self._sync("Email", self.emails, {"properties": ["mailboxIds", "keywords", "threadId"]})
        self._sync("Thread", self.threads, {})


operations = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.integers(0, 3)),
        st.tuples(
            st.just("imap-flag"),
            st.integers(0, 20),
            st.sampled_from(("\\Seen", "\\Flagged", "work")),
            st.booleans(),
        ),
        st.tuples(st.just("imap-copy"), st.integers(0, 20), st.sampled_from(FOLDERS)),
        st.tuples(st.just("imap-move"), st.integers(0, 20), st.sampled_from(FOLDERS)),
        st.tuples(st.just("imap-expunge"), st.integers(0, 20)),
        st.tuples(
            st.just("jmap-keyword"), st.integers(0, 20), st.sampled_from(KEYWORDS), st.booleans()
        ),
        st.tuples(st.just("jmap-move"), st.integers(0, 20), st.sampled_from(FOLDERS)),
        st.tuples(st.just("jmap-destroy"), st.integers(0, 20)),
        st.tuples(st.just("sync")),
    ),
    min_size=1,
    max_size=14,
)


def _copies(imap: imaplib.IMAP4) -> list[tuple[str, bytes]]:
    """Every (folder, UID) of the account's messages, in a fixed order."""
    found = []
    for folder in FOLDERS:
        imap.select(folder)
        uids = imap.uid("SEARCH", "ALL")[1][0].split()
        found.extend((folder, uid) for uid in uids)
    return found


def _apply(account: Account, client: DeltaClient, op: tuple[Any, ...], counter: list[int]) -> None:
    kind = op[0]
    if kind == "sync":
        client.sync()
        return
    if kind == "deliver":
        counter[0] += 1
        n = counter[0]
        refs = f"References: <m{op[1]}@example.net>\r\n" if op[1] else ""
        account.deliver(mail(n, extra=refs))
        return
    if kind.startswith("imap"):
        with account.imap() as imap:
            copies = _copies(imap)
            if not copies:
                return
            folder, uid = copies[op[1] % len(copies)]
            imap.select(folder)
            if kind == "imap-flag":
                imap.uid("STORE", uid, "+FLAGS" if op[3] else "-FLAGS", f"({op[2]})")
            elif kind == "imap-copy":
                imap.uid("COPY", uid, op[2])
            elif kind == "imap-move":
                imap.uid("MOVE", uid, op[2])
            else:
                imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
                imap.uid("EXPUNGE", uid)
        return
    ids = sorted(
        account.one("Email/get", ids=None, properties=["id"])["list"], key=lambda e: e["id"]
    )
    if not ids:
        return
    email = ids[op[1] % len(ids)]["id"]
    if kind == "jmap-keyword":
        account.one("Email/set", update={email: {f"keywords/{op[2]}": True if op[3] else None}})
    elif kind == "jmap-move":
        target = account.mailboxes()[op[2]]["id"]
        account.one("Email/set", update={email: {"mailboxIds": {target: True}}})
    else:
        account.one("Email/set", destroy=[email])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, syncs=st.lists(st.integers(0, 3), min_size=14, max_size=14))
def test_a_delta_client_ends_where_a_full_fetch_is(
    server: ServerThread, ops: list[tuple[Any, ...]], syncs: list[int]
) -> None:
    account = Account(server)
    try:
        account.deliver(mail(0))
        client = DeltaClient(account)
        counter = [0]
        for op, sync in zip(ops, syncs, strict=False):
            _apply(account, client, op, counter)
            if sync:  # three times in four
                client.sync()
        client.sync()
        emails, mailboxes, threads = client.full()
        assert [ids for ids, _ in client.results] == client.fresh_results()
        assert client.emails == emails
        assert client.mailboxes == mailboxes
        assert client.threads == threads
    finally:
        account.http.close()
