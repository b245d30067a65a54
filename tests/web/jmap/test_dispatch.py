"""Method dispatch (RFC 8620 §3.3 - §3.6.2): a Request through the method table, no HTTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from mailstead.core import sanity
from mailstead.core.errors import ChangesTooMany
from mailstead.http.jmap.dispatch import CORE, CallContext, Methods, process
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.request import Invocation, Request

MAIL = "urn:ietf:params:jmap:mail"


@dataclass(frozen=True)
class User:
    address: str
    password_hash: str = ""
    disabled: bool = False
    scram_sha256: str | None = None


def context(using: frozenset[str] = frozenset({CORE, MAIL})) -> CallContext:
    return CallContext(
        account_id="A1",
        user=User("alice@example.org"),
        created_ids={},
        using=using,
        session_state="s0",
    )


def request(
    *calls: tuple[str, dict[str, Any], str],
    using: frozenset[str] = frozenset({CORE, MAIL}),
    created_ids: dict[str, str] | None = None,
) -> Request:
    return Request(using, tuple(Invocation(*call) for call in calls), created_ids)


def methods() -> Methods:
    table = Methods()
    counter = iter(range(100, 200))

    async def create(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        """Foo/set-like: each creation id gets a server id, visible to later calls."""
        created = {}
        for creation_id in args.get("create", {}):
            ctx.created_ids[creation_id] = created_id = f"M{next(counter)}"
            created[creation_id] = {"id": created_id}
        if args.get("implicit"):
            ctx.add_response("Thing/set", {"accountId": ctx.account_id, "updated": {}})
        return {"accountId": ctx.account_id, "created": created}

    async def lookup(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ids": [ctx.resolve_id(i) for i in args["ids"]],
            "user": ctx.user.address,
            "state": ctx.session_state,
        }

    async def refuse(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        ctx.add_response("Thing/never", {})
        raise MethodError("stateMismatch", "the state moved", newState="s9")

    async def crash(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a secret detail of the server")

    table.add("Thing/create", MAIL, create)
    table.add("Thing/lookup", MAIL, lookup)
    table.add("Thing/refuse", MAIL, refuse)
    table.add("Thing/crash", MAIL, crash)

    async def too_many(context: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        raise ChangesTooMany("one write changed 600 emails")

    table.add("Thing/changes", MAIL, too_many)
    table.add("Other/get", "urn:example:other", lookup)
    return table


async def test_calls_run_in_order_with_references_and_creation_ids() -> None:
    response = await process(
        request(
            ("Core/echo", {"hello": [{"id": "#k1"}, {"id": "x"}]}, "c0"),
            ("Thing/create", {"accountId": "A1", "create": {"k1": {}, "k2": {}}}, "c1"),
            (
                "Thing/lookup",
                {"#ids": {"resultOf": "c0", "name": "Core/echo", "path": "/hello/*/id"}},
                "c2",
            ),
            ("Thing/lookup", {"ids": ["#k2", "#nope", "plain"]}, "c3"),
        ),
        methods(),
        context(),
    )
    assert response == {
        "sessionState": "s0",
        "methodResponses": [
            ["Core/echo", {"hello": [{"id": "#k1"}, {"id": "x"}]}, "c0"],
            [
                "Thing/create",
                {"accountId": "A1", "created": {"k1": {"id": "M100"}, "k2": {"id": "M101"}}},
                "c1",
            ],
            [
                "Thing/lookup",
                {"ids": ["M100", "x"], "user": "alice@example.org", "state": "s0"},
                "c2",
            ],
            [
                "Thing/lookup",
                {"ids": ["M101", None, "plain"], "user": "alice@example.org", "state": "s0"},
                "c3",
            ],
        ],
    }  # no createdIds: the request had none


async def test_created_ids_of_the_request_are_used_and_returned() -> None:
    response = await process(
        request(
            ("Thing/lookup", {"ids": ["#old"]}, "c1"),
            ("Thing/create", {"create": {"new": {}}}, "c2"),
            created_ids={"old": "M7"},
        ),
        methods(),
        context(),
    )
    assert response["methodResponses"][0][1]["ids"] == ["M7"]
    assert response["createdIds"] == {"old": "M7", "new": "M100"}


async def test_method_errors_take_the_place_of_the_response() -> None:
    response = await process(
        request(
            ("Nope/get", {}, "c1"),
            ("Other/get", {"ids": []}, "c2"),  # its capability is not in using
            ("Thing/lookup", {"accountId": "B2", "ids": []}, "c3"),
            ("Thing/refuse", {}, "c4"),
            (
                "Thing/lookup",
                {"ids": [], "#ids": {"resultOf": "c1", "name": "x", "path": ""}},
                "c5",
            ),
            (
                "Thing/lookup",
                {"#ids": {"resultOf": "c4", "name": "Thing/refuse", "path": ""}},
                "c6",
            ),
            ("Core/echo", {"accountId": "B2"}, "c7"),  # echo is echo
        ),
        methods(),
        context(),
    )
    errors = [(r[0], r[1].get("type"), r[2]) for r in response["methodResponses"]]
    assert errors == [
        ("error", "unknownMethod", "c1"),
        ("error", "unknownMethod", "c2"),
        ("error", "accountNotFound", "c3"),
        ("error", "stateMismatch", "c4"),
        ("error", "invalidArguments", "c5"),
        ("error", "invalidResultReference", "c6"),
        ("Core/echo", None, "c7"),
    ]
    assert response["methodResponses"][6][1] == {"accountId": "B2"}
    assert response["methodResponses"][3][1] == {
        "type": "stateMismatch",
        "description": "the state moved",
        "newState": "s9",
    }
    # The implicit response of a failed call is not sent.
    assert all(r[0] != "Thing/never" for r in response["methodResponses"])


async def test_implicit_responses_follow_the_call_with_its_id() -> None:
    response = await process(
        request(
            ("Thing/create", {"create": {"k": {}}, "implicit": True}, "c1"),
            ("Core/echo", {}, "c2"),
        ),
        methods(),
        context(),
    )
    assert [(r[0], r[2]) for r in response["methodResponses"]] == [
        ("Thing/create", "c1"),
        ("Thing/set", "c1"),
        ("Core/echo", "c2"),
    ]


async def test_a_crash_is_server_fail_and_only_the_log_has_the_details(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(sanity.ENV_VAR)
    with caplog.at_level(logging.ERROR, "mailstead.http.jmap"):
        response = await process(
            request(("Thing/crash", {}, "c1"), ("Core/echo", {}, "c2")), methods(), context()
        )
    assert response["methodResponses"] == [
        ["error", {"type": "serverFail"}, "c1"],
        ["Core/echo", {}, "c2"],
    ]
    assert "secret" not in repr(response)
    assert "Thing/crash" in caplog.text and "Traceback" in caplog.text


async def test_changes_the_store_cannot_page_are_cannot_calculate_changes() -> None:
    """RFC 8620 §5.2: the store's ChangesTooMany, from any method, is this error (not
    serverFail), and the calls after it run."""
    response = await process(
        request(("Thing/changes", {}, "c1"), ("Core/echo", {}, "c2")), methods(), context()
    )
    assert response["methodResponses"] == [
        ["error", {"type": "cannotCalculateChanges",
                   "description": "one write changed 600 emails"}, "c1"],
        ["Core/echo", {}, "c2"],
    ]


async def test_under_the_sanity_flag_a_crash_fails_the_test() -> None:
    with pytest.raises(RuntimeError):
        await process(request(("Thing/crash", {}, "c1")), methods(), context())


def test_a_method_is_added_once() -> None:
    table = methods()
    with pytest.raises(ValueError):
        table.add("Thing/lookup", MAIL, table.get("Thing/lookup")[1])  # type: ignore[index]
    assert table.capabilities() == {CORE, MAIL, "urn:example:other"}


async def test_the_accounts_of_the_session_and_their_capabilities() -> None:
    """RFC 8620 §3.6.2: any account of the session is accepted, as long as it has the
    method's capability; §5.4: a /copy's fromAccountId fails as fromAccountNotFound."""
    shared = context(frozenset({CORE, MAIL, "urn:example:other"}))
    shared.accounts = {
        "A1": frozenset({CORE, MAIL, "urn:example:other"}),
        "A7": frozenset({CORE, MAIL}),
    }
    response = await process(
        request(
            ("Thing/lookup", {"accountId": "A7", "ids": []}, "c1"),
            ("Other/get", {"accountId": "A7", "ids": []}, "c2"),
            ("Other/get", {"accountId": "A1", "ids": []}, "c3"),
            ("Thing/lookup", {"accountId": "A8", "ids": []}, "c4"),
            ("Thing/lookup", {"fromAccountId": "A8", "accountId": "A1", "ids": []}, "c5"),
            ("Other/get", {"fromAccountId": "A7", "ids": []}, "c6"),
            ("Thing/lookup", {"accountId": 7, "ids": []}, "c7"),
            using=frozenset({CORE, MAIL, "urn:example:other"}),
        ),
        methods(),
        shared,
    )
    answers = [(r[0], r[1].get("type"), r[2]) for r in response["methodResponses"]]
    assert answers == [
        ("Thing/lookup", None, "c1"),
        ("error", "accountNotSupportedByMethod", "c2"),
        ("Other/get", None, "c3"),
        ("error", "accountNotFound", "c4"),
        ("error", "fromAccountNotFound", "c5"),
        ("error", "fromAccountNotSupportedByMethod", "c6"),
        ("error", "accountNotFound", "c7"),
    ]
