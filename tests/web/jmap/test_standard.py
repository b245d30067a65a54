"""The standard methods' arguments (RFC 8620 §5), PatchObject and the query window."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.config.schema import HTTPSettings, JMAPSettings
from mailstead.http.jmap.errors import MethodError, SetError
from mailstead.http.jmap.standard import (
    MAX_FILTER_DEPTH,
    ChangesArgs,
    Comparator,
    CopyArgs,
    FilterCondition,
    FilterOperator,
    GetArgs,
    InvalidPatch,
    Limits,
    QueryArgs,
    QueryChangesArgs,
    SetArgs,
    apply_patch,
    query_window,
)

LIMITS = Limits(max_objects_in_get=3, max_objects_in_set=3)


def refused(parse: Any, args: dict[str, Any], kind: str = "invalidArguments", **kwargs: Any) -> str:
    """The description of the error ``parse`` raises for ``args`` (of type ``kind``)."""
    with pytest.raises(MethodError) as caught:
        parse(args, LIMITS, **kwargs)
    assert caught.value.type == kind
    return caught.value.description or ""


def test_limits_come_from_the_settings_within_the_http_body_limit() -> None:
    assert Limits.from_settings(JMAPSettings(), HTTPSettings()) == Limits(
        max_size_upload=10 * 1024**2
    )  # http.max_body_size (10M) bounds the 50M default
    big = HTTPSettings(max_body_size=100 * 1024**2)
    limits = Limits.from_settings(JMAPSettings(max_calls_in_request=7), big)
    assert limits.max_size_upload == 50 * 1024**2 and limits.max_calls_in_request == 7


def test_get() -> None:
    args = GetArgs.parse({"accountId": "A1", "ids": ["m1", "#new"], "properties": ["name"]}, LIMITS)
    assert args == GetArgs("A1", ("m1", "#new"), ("name",))
    assert GetArgs.parse({"accountId": "A1", "ids": None}, LIMITS).ids is None
    assert "accountId" in refused(GetArgs.parse, {"ids": []})
    assert "accountId" in refused(GetArgs.parse, {"accountId": "bad id"})
    assert "ids" in refused(GetArgs.parse, {"accountId": "A1", "ids": "m1"})
    assert "ids" in refused(GetArgs.parse, {"accountId": "A1", "ids": ["a b"]})
    assert "properties" in refused(GetArgs.parse, {"accountId": "A1", "properties": [1]})
    assert "bodyProperties" in refused(GetArgs.parse, {"accountId": "A1", "bodyProperties": []})
    refused(GetArgs.parse, {"accountId": "A1", "ids": ["a", "b", "c", "d"]}, "requestTooLarge")
    own = GetArgs.parse(
        {"accountId": "A1", "bodyProperties": ["partId"]},
        LIMITS,
        extra=("bodyProperties", "fetchAllBodyValues"),
    )
    assert own.extra == {"bodyProperties": ["partId"]}


def test_changes() -> None:
    assert ChangesArgs.parse(
        {"accountId": "A1", "sinceState": "s1", "maxChanges": 5}, LIMITS
    ) == ChangesArgs("A1", "s1", 5)
    assert ChangesArgs.parse({"accountId": "A1", "sinceState": "s1"}, LIMITS).max_changes is None
    assert "sinceState" in refused(ChangesArgs.parse, {"accountId": "A1"})
    for bad in (0, -1, 1.5, True, "5", 2**53):
        assert "maxChanges" in refused(
            ChangesArgs.parse, {"accountId": "A1", "sinceState": "s", "maxChanges": bad}
        )


def test_set() -> None:
    args = SetArgs.parse(
        {
            "accountId": "A1",
            "ifInState": "s",
            "create": {"k1": {"name": "x"}},
            "update": {"#k0": {"name": "y"}},
            "destroy": ["m2"],
        },
        LIMITS,
    )
    assert args == SetArgs("A1", "s", {"k1": {"name": "x"}}, {"#k0": {"name": "y"}}, ("m2",))
    empty = SetArgs.parse({"accountId": "A1"}, LIMITS)
    assert (empty.create, empty.update, empty.destroy, empty.if_in_state) == ({}, {}, (), None)
    assert "create" in refused(SetArgs.parse, {"accountId": "A1", "create": {"#k": {}}})
    assert "create" in refused(SetArgs.parse, {"accountId": "A1", "create": {"k": 1}})
    assert "update" in refused(SetArgs.parse, {"accountId": "A1", "update": []})
    assert "destroy" in refused(SetArgs.parse, {"accountId": "A1", "destroy": {}})
    assert "ifInState" in refused(SetArgs.parse, {"accountId": "A1", "ifInState": 3})
    refused(
        SetArgs.parse,
        {"accountId": "A1", "create": {"a": {}, "b": {}}, "destroy": ["c", "d"]},
        "requestTooLarge",
    )


def test_copy() -> None:
    args = CopyArgs.parse(
        {
            "fromAccountId": "B",
            "accountId": "A1",
            "create": {"k": {"id": "m1"}},
            "onSuccessDestroyOriginal": True,
        },
        LIMITS,
    )
    assert args == CopyArgs("B", None, "A1", None, {"k": {"id": "m1"}}, True, None)
    assert "create" in refused(CopyArgs.parse, {"fromAccountId": "B", "accountId": "A1"})
    assert "fromAccountId" in refused(CopyArgs.parse, {"accountId": "A1", "create": {}})
    assert "onSuccessDestroyOriginal" in refused(
        CopyArgs.parse,
        {"fromAccountId": "B", "accountId": "A1", "create": {}, "onSuccessDestroyOriginal": 1},
    )
    refused(
        CopyArgs.parse,
        {"fromAccountId": "B", "accountId": "A1", "create": {k: {} for k in "abcd"}},
        "requestTooLarge",
    )


def test_query() -> None:
    args = QueryArgs.parse(
        {
            "accountId": "A1",
            "filter": {
                "operator": "AND",
                "conditions": [
                    {"inMailbox": "m1"},
                    {"operator": "NOT", "conditions": [{"hasKeyword": "$seen"}]},
                ],
            },
            "sort": [
                {"property": "receivedAt", "isAscending": False},
                {"property": "hasKeyword", "keyword": "$flagged", "collation": "i;octet"},
            ],
            "position": -5,
            "limit": 10,
            "calculateTotal": True,
        },
        LIMITS,
    )
    assert args.filter == FilterOperator(
        "AND",
        (
            FilterCondition({"inMailbox": "m1"}),
            FilterOperator("NOT", (FilterCondition({"hasKeyword": "$seen"}),)),
        ),
    )
    assert args.sort == (
        Comparator("receivedAt", False),
        Comparator("hasKeyword", True, "i;octet", {"keyword": "$flagged"}),
    )
    assert (args.position, args.limit, args.calculate_total, args.anchor) == (-5, 10, True, None)
    bare = QueryArgs.parse({"accountId": "A1"}, LIMITS)
    assert (bare.filter, bare.sort, bare.position, bare.anchor_offset, bare.limit) == (
        None,
        None,
        0,
        0,
        None,
    )


@pytest.mark.parametrize(
    ("args", "kind", "names"),
    [
        ({"filter": []}, "invalidArguments", "filter"),
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments", "operator"),
        ({"filter": {"operator": "AND"}}, "invalidArguments", "conditions"),
        ({"filter": {"operator": "AND", "conditions": [], "x": 1}}, "invalidArguments", "operator"),
        ({"filter": {"operator": "OR", "conditions": [3]}}, "invalidArguments", "filter"),
        ({"sort": {}}, "invalidArguments", "sort"),
        ({"sort": [{"isAscending": True}]}, "invalidArguments", "sort[0]"),
        ({"sort": [{"property": "a", "isAscending": "yes"}]}, "invalidArguments", "isAscending"),
        ({"sort": [{"property": "a", "collation": "i;klingon"}]}, "unsupportedSort", "collation"),
        ({"position": 1.5}, "invalidArguments", "position"),
        ({"anchorOffset": "1"}, "invalidArguments", "anchorOffset"),
        ({"limit": -1}, "invalidArguments", "limit"),
        ({"anchor": "a b"}, "invalidArguments", "anchor"),
        ({"calculateTotal": "yes"}, "invalidArguments", "calculateTotal"),
        ({"collapseThreads": True}, "invalidArguments", "collapseThreads"),
    ],
)
def test_query_arguments_refused(args: dict[str, Any], kind: str, names: str) -> None:
    assert names in refused(QueryArgs.parse, {"accountId": "A1", **args}, kind)


def test_a_filter_too_deep_is_unsupported() -> None:
    deep: dict[str, Any] = {"text": "x"}
    for _ in range(MAX_FILTER_DEPTH - 1):
        deep = {"operator": "AND", "conditions": [deep]}
    QueryArgs.parse({"accountId": "A1", "filter": deep}, LIMITS)
    deeper = {"operator": "OR", "conditions": [deep]}
    refused(QueryArgs.parse, {"accountId": "A1", "filter": deeper}, "unsupportedFilter")
    wide = {"operator": "OR", "conditions": [{"text": str(i)} for i in range(300)]}
    refused(QueryArgs.parse, {"accountId": "A1", "filter": wide}, "unsupportedFilter")


def test_query_changes() -> None:
    args = QueryChangesArgs.parse(
        {"accountId": "A1", "sinceQueryState": "q1", "maxChanges": 20, "upToId": "m9"}, LIMITS
    )
    assert args == QueryChangesArgs("A1", None, None, "q1", 20, "m9")
    assert "sinceQueryState" in refused(QueryChangesArgs.parse, {"accountId": "A1"})
    assert "upToId" in refused(
        QueryChangesArgs.parse, {"accountId": "A1", "sinceQueryState": "q", "upToId": 5}
    )


# -- PatchObject -----------------------------------------------------------------------------

OBJ: dict[str, Any] = {
    "name": "x",
    "keywords": {"$seen": True, "a/b": True},
    "alerts": [{"offset": 1}],
    "deep": {"inner": {"v": 1}},
}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"name": "y"}, {**OBJ, "name": "y"}),
        ({"keywords/$flagged": True}, {**OBJ, "keywords": {**OBJ["keywords"], "$flagged": True}}),
        ({"keywords/$seen": None}, {**OBJ, "keywords": {"a/b": True}}),
        ({"keywords/a~1b": None}, {**OBJ, "keywords": {"$seen": True}}),
        ({"keywords/$absent": None}, OBJ),  # removing what is not there changes nothing
        ({"alerts": []}, {**OBJ, "alerts": []}),  # arrays are replaced whole
        (
            {"deep/inner/v": 2, "name": None},
            {"keywords": OBJ["keywords"], "alerts": OBJ["alerts"], "deep": {"inner": {"v": 2}}},
        ),
        (
            {"keywords/a": True, "keywords/ab": True},
            {**OBJ, "keywords": {**OBJ["keywords"], "a": True, "ab": True}},
        ),  # not prefixes
    ],
)
def test_patches_apply(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    original = repr(OBJ)
    assert apply_patch(OBJ, patch) == expected
    assert repr(OBJ) == original  # the object patched is a copy


@pytest.mark.parametrize(
    "patch",
    [
        {"alerts/0/offset": 2},  # inside an array
        {"alerts/0": {}},
        {"missing/x": 1},  # the parent must exist
        {"name/x": 1},  # ... and be an object
        {"keywords": {}, "keywords/$seen": True},  # one path a prefix of another
        {"deep/inner": {}, "deep/inner/v": 3},
        {"keywords/~2": True},  # not an RFC 6901 escape
    ],
)
def test_bad_patches_are_invalid_patch(patch: dict[str, Any]) -> None:
    with pytest.raises(InvalidPatch) as caught:
        apply_patch(OBJ, patch)
    assert caught.value.type == "invalidPatch"
    error = caught.value.set_error()
    assert isinstance(error, SetError) and error.to_json()["type"] == "invalidPatch"


def test_null_resets_a_property_with_a_default() -> None:
    assert apply_patch(
        {"role": "inbox", "name": "x"},
        {"role": None, "name": None},
        defaults={"role": None, "isSubscribed": False},
    ) == {"role": None}


def test_set_errors_and_method_errors_as_json() -> None:
    assert SetError("invalidProperties", "bad", ("name", "role")).to_json() == {
        "type": "invalidProperties",
        "description": "bad",
        "properties": ["name", "role"],
    }
    assert SetError("alreadyExists", extra={"existingId": "m1"}).to_json() == {
        "type": "alreadyExists",
        "existingId": "m1",
    }
    assert MethodError("requestTooLarge").to_json() == {"type": "requestTooLarge"}
    assert MethodError("x", "why", limit=3).to_json() == {
        "type": "x",
        "description": "why",
        "limit": 3,
    }


# -- the query window ------------------------------------------------------------------------


def window_model(
    ids: list[str],
    position: int,
    anchor: str | None,
    offset: int,
    limit: int | None,
    cap: int | None,
) -> tuple[list[str], int, int | None]:
    """RFC 8620 §5.5 read literally, one id at a time."""
    if anchor is not None:
        start = ids.index(anchor) + offset
    else:
        start = position if position >= 0 else len(ids) + position
    start = max(start, 0)
    used = cap if cap is not None and (limit is None or limit > cap) else None
    effective = used if used is not None else limit
    chosen: list[str] = []
    for index, value in enumerate(ids):
        if index >= start and (effective is None or len(chosen) < effective):
            chosen.append(value)
    return chosen, start, used


@given(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=-15, max_value=15),
    st.none() | st.integers(min_value=0, max_value=14),
    st.integers(min_value=-15, max_value=15),
    st.none() | st.integers(min_value=0, max_value=15),
    st.none() | st.integers(min_value=1, max_value=8),
)
def test_the_window_agrees_with_the_rfc_read_literally(
    total: int,
    position: int,
    anchor_index: int | None,
    offset: int,
    limit: int | None,
    cap: int | None,
) -> None:
    ids = [f"m{i}" for i in range(total)]
    anchor = None if anchor_index is None else f"m{anchor_index}"
    args = QueryArgs(
        "A1", None, None, position=position, anchor=anchor, anchor_offset=offset, limit=limit
    )
    if anchor is not None and anchor not in ids:
        with pytest.raises(MethodError) as caught:
            query_window(ids, args, cap)
        assert caught.value.type == "anchorNotFound"
        return
    assert query_window(ids, args, cap) == window_model(ids, position, anchor, offset, limit, cap)


def test_window_examples() -> None:
    ids = [f"m{i}" for i in range(10)]

    def window(**kwargs: Any) -> tuple[list[str], int, int | None]:
        cap = kwargs.pop("cap", None)
        return query_window(ids, QueryArgs("A1", None, None, **kwargs), cap)

    assert window(position=8) == (["m8", "m9"], 8, None)
    assert window(position=-3, limit=2) == (["m7", "m8"], 7, None)
    assert window(position=-30, limit=1) == (["m0"], 0, None)
    assert window(position=20) == ([], 20, None)
    assert window(anchor="m5", anchor_offset=-1, limit=3) == (["m4", "m5", "m6"], 4, None)
    assert window(anchor="m1", anchor_offset=-5, limit=1) == (["m0"], 0, None)
    assert window(limit=50, cap=4) == (["m0", "m1", "m2", "m3"], 0, 4)
    assert window(cap=4)[2] == 4 and window(limit=2, cap=4)[2] is None
