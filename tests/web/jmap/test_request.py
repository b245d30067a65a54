"""The Request object (RFC 8620 §3.3), its request-level errors (§3.6.1), result references
(§3.7) and JSON Pointer with ``*``: pure functions, no server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.http.jmap.errors import MethodError, RequestError
from mailstead.http.jmap.request import (
    Invocation,
    PointerError,
    Response,
    evaluate_pointer,
    parse_request,
    resolve_references,
)

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"


def parse(body: Any, *, max_calls: int = 16) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(raw, supported={CORE, MAIL}, max_calls=max_calls)


def refused(body: Any, **kwargs: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse(body, **kwargs)
    return caught.value


def test_a_request_is_parsed() -> None:
    request = parse(
        {
            "using": [CORE, MAIL],
            "methodCalls": [
                ["Core/echo", {"hello": True}, "c1"],
                ["Mailbox/get", {"accountId": "A1"}, "c2"],
            ],
        }
    )
    assert request.using == frozenset({CORE, MAIL})
    assert request.method_calls == (
        Invocation("Core/echo", {"hello": True}, "c1"),
        Invocation("Mailbox/get", {"accountId": "A1"}, "c2"),
    )
    assert request.created_ids is None
    with_ids = parse({"using": [], "methodCalls": [], "createdIds": {"k1": "M7"}})
    assert with_ids.created_ids == {"k1": "M7"} and with_ids.method_calls == ()


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"\xff\xfe{}",
        b'{"using": [], "methodCalls": [], "using": []}',
        b'{"using": [NaN], "methodCalls": []}',
        b'{"using": ["\\ud800"], "methodCalls": []}',
        b"[" * 100_000,
    ],
)
def test_what_is_not_i_json_is_not_json(body: bytes) -> None:
    error = refused(body)
    assert error.type == "notJSON" and error.status == 400
    assert error.to_json()["type"] == "urn:ietf:params:jmap:error:notJSON"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        {"methodCalls": []},
        {"using": [CORE]},
        {"using": CORE, "methodCalls": []},
        {"using": [1], "methodCalls": []},
        {"using": [], "methodCalls": {}},
        {"using": [], "methodCalls": [["Core/echo", {}]]},
        {"using": [], "methodCalls": [["Core/echo", [], "c1"]]},
        {"using": [], "methodCalls": [["Core/echo", {}, 1]]},
        {"using": [], "methodCalls": [[1, {}, "c1"]]},
        {"using": [], "methodCalls": [], "createdIds": []},
        {"using": [], "methodCalls": [], "createdIds": {"k": 1}},
    ],
)
def test_json_that_is_no_request_is_not_request(body: Any) -> None:
    error = refused(body)
    assert error.type == "notRequest"
    assert error.to_json() == {
        "type": "urn:ietf:params:jmap:error:notRequest",
        "status": 400,
        "detail": error.detail,
    }


def test_too_many_calls_is_the_limit_error() -> None:
    calls = [["Core/echo", {}, f"c{i}"] for i in range(5)]
    assert len(parse({"using": [CORE], "methodCalls": calls}, max_calls=5).method_calls) == 5
    error = refused({"using": [CORE], "methodCalls": [*calls, calls[0]]}, max_calls=5)
    assert error.type == "limit" and error.limit == "maxCallsInRequest"
    assert error.to_json()["limit"] == "maxCallsInRequest"


def test_an_unknown_capability_is_refused() -> None:
    error = refused({"using": [CORE, "urn:example:nope"], "methodCalls": []})
    assert error.type == "unknownCapability" and "urn:example:nope" in error.detail


# -- JSON Pointer ----------------------------------------------------------------------------

DOC = {
    "list": [{"id": "a", "ids": ["1", "2"]}, {"id": "b", "ids": ["3"]}],
    "a/b": 1,
    "m~n": 2,
    "": 3,
    "~1": 4,
    "nested": {"x": [[1, 2], [3]]},
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", DOC),
        ("/list/0/id", "a"),
        ("/list/1/ids/0", "3"),
        ("/a~1b", 1),
        ("/m~0n", 2),
        ("/~01", 4),  # "~1" unescaped once: ~1 is decoded before ~0
        ("/", 3),
        ("/list/*/id", ["a", "b"]),
        ("/list/*/ids", ["1", "2", "3"]),  # arrays of the items are flattened
        ("/nested/x/*", [1, 2, 3]),
        ("/nested/x/*/0", [1, 3]),
    ],
)
def test_pointers_resolve(pointer: str, expected: Any) -> None:
    assert evaluate_pointer(DOC, pointer) == expected


@pytest.mark.parametrize(
    "pointer",
    [
        "list",
        "/nope",
        "/list/2",
        "/list/01",
        "/list/-",
        "/list/x",
        "/list/0/id/x",
        "/m~2n",
        "/list/*/nope",
        "/a~",
        "/nested/*",
    ],
)
def test_pointers_that_do_not_resolve(pointer: str) -> None:
    with pytest.raises(PointerError):
        evaluate_pointer(DOC, pointer)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="ab/~*01", max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@given(json_values, st.lists(st.integers(min_value=0, max_value=10), max_size=6))
def test_a_pointer_built_from_a_walk_finds_what_the_walk_found(
    doc: Any, choices: list[int]
) -> None:
    """RFC 6901: escaping ~ as ~0 and / as ~1 makes every member reachable, arrays by
    index; a walk through the document and the pointer naming it agree."""
    value, tokens = doc, []
    for choice in choices:
        if isinstance(value, list) and value:
            index = choice % len(value)
            tokens.append(str(index))
            value = value[index]
        elif isinstance(value, dict) and value:
            key = sorted(value)[choice % len(value)]
            tokens.append(_escape(key))
            value = value[key]
        else:
            break
    pointer = "".join("/" + token for token in tokens)
    assert evaluate_pointer(doc, pointer) == value


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["x", "y"]), json_values, max_size=2).map(
            lambda d: {**d, "x": d.get("x")}
        ),
        max_size=5,
    )
)
def test_star_maps_over_an_array_and_flattens_arrays(items: list[dict[str, Any]]) -> None:
    expected: list[Any] = []
    for item in items:
        if isinstance(item["x"], list):
            expected.extend(item["x"])
        else:
            expected.append(item["x"])
    assert evaluate_pointer({"items": items}, "/items/*/x") == expected


# -- result references -----------------------------------------------------------------------

RESPONSES: list[Response] = [
    ("Email/query", {"ids": ["e1", "e2"], "position": 0}, "q"),
    ("error", {"type": "serverFail"}, "bad"),
    ("Email/get", {"list": [{"id": "e1", "threadId": "t1"}, {"id": "e2", "threadId": "t2"}]}, "g"),
    ("Email/query", {"ids": ["later"]}, "q"),  # the first response with the id counts
]


def ref(result_of: str, name: str, path: str) -> dict[str, str]:
    return {"resultOf": result_of, "name": name, "path": path}


def test_references_are_replaced_by_their_values() -> None:
    resolved = resolve_references(
        {
            "accountId": "A",
            "#ids": ref("q", "Email/query", "/ids"),
            "#threads": ref("g", "Email/get", "/list/*/threadId"),
        },
        RESPONSES,
    )
    assert resolved == {"accountId": "A", "ids": ["e1", "e2"], "threads": ["t1", "t2"]}


@pytest.mark.parametrize(
    "reference",
    [
        ref("nope", "Email/query", "/ids"),  # no such call
        ref("q", "Email/get", "/ids"),  # the call has another name
        ref("bad", "Email/get", "/list"),  # an error answered that call
        ref("q", "Email/query", "/nope"),  # the path leads nowhere
        {"resultOf": "q", "name": "Email/query"},  # not a ResultReference
        "q",
    ],
)
def test_bad_references_are_invalid_result_references(reference: Any) -> None:
    with pytest.raises(MethodError) as caught:
        resolve_references({"#ids": reference}, RESPONSES)
    assert caught.value.type == "invalidResultReference"


def test_an_argument_given_twice_is_invalid_arguments() -> None:
    with pytest.raises(MethodError) as caught:
        resolve_references({"ids": [], "#ids": ref("q", "Email/query", "/ids")}, RESPONSES)
    assert caught.value.type == "invalidArguments"
    assert caught.value.to_json() == {
        "type": "invalidArguments",
        "description": caught.value.description,
    }
