"""The answers every data type's standard methods share (RFC 8620 §5.1 - §5.3), in one
place: a /get answer and its property check, a /changes answer, a /set answer, and the
``ifInState`` check. States are the
account's mod-sequence (decision 0033, ``ids.state_text``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.mail.ids import state_text
from mailstead.http.jmap.standard import ChangesArgs, GetArgs, QueryArgs, query_window


def require_state(if_in_state: Any, state: int, what: str = "the account") -> None:
    """RFC 8620 §5.3 ``ifInState``: the call applies only in that state."""
    if if_in_state is not None and if_in_state != state_text(state):
        raise MethodError("stateMismatch", f"{what} changed since that state")


def changes_answer(
    args: ChangesArgs,
    since: int,
    state: int,
    created: Sequence[str],
    updated: Sequence[str],
    destroyed: Sequence[str],
    *,
    more: bool = False,
    paged: bool = True,
) -> dict[str, Any]:
    """A Foo/changes answer (RFC 8620 §5.2). ``paged``: the store already cut the changes
    to ``maxChanges`` (``more`` says so); a type with few objects answers all at once, or
    ``cannotCalculateChanges`` when that is more than ``maxChanges``."""
    if since > state:
        raise MethodError("cannotCalculateChanges", "the state is from the future")
    if (
        not paged
        and args.max_changes is not None
        and (len(created) + len(updated) + len(destroyed) > args.max_changes)
    ):
        raise MethodError(
            "cannotCalculateChanges", f"more than {args.max_changes} changes since that state"
        )
    return {
        "accountId": args.account_id,
        "oldState": args.since_state,
        "newState": state_text(state),
        "hasMoreChanges": more,
        "created": list(created),
        "updated": list(updated),
        "destroyed": list(destroyed),
    }


def set_answer(
    account_id: str,
    old_state: int,
    new_state: int,
    *,
    created: dict[str, Any],
    updated: dict[str, Any],
    destroyed: list[str],
    not_created: dict[str, Any],
    not_updated: dict[str, Any],
    not_destroyed: dict[str, Any],
) -> dict[str, Any]:
    """A Foo/set answer (RFC 8620 §5.3): each map or list null when empty."""
    return {
        "accountId": account_id,
        "oldState": state_text(old_state),
        "newState": state_text(new_state),
        "created": created or None,
        "updated": updated or None,
        "destroyed": destroyed or None,
        "notCreated": not_created or None,
        "notUpdated": not_updated or None,
        "notDestroyed": not_destroyed or None,
    }


def check_properties(asked: Sequence[str] | None, known: Collection[str]) -> None:
    """RFC 8620 §5.1: a property the type does not have is ``invalidArguments``."""
    if asked is not None:
        bad = [p for p in asked if p not in known]
        if bad:
            raise MethodError("invalidArguments", f"unknown property {bad[0][:60]!r}")


def get_answer(
    args: GetArgs, state: int, objects: Mapping[str, dict[str, Any]], wanted: Sequence[str]
) -> dict[str, Any]:
    """A Foo/get answer (RFC 8620 §5.1): the objects asked for in the order asked, with the
    properties asked for (``id`` always), and the ids that name none."""
    listed = []
    for value in wanted:
        obj = objects.get(value)
        if obj is not None:
            if args.properties is not None:
                obj = {k: v for k, v in obj.items() if k == "id" or k in args.properties}
            listed.append(obj)
    return {
        "accountId": args.account_id,
        "state": state_text(state),
        "list": listed,
        "notFound": [v for v in wanted if v not in objects],
    }


def query_answer(
    args: QueryArgs, state: int, ids: Sequence[str], *, can_calculate_changes: bool
) -> dict[str, Any]:
    """A Foo/query answer (RFC 8620 §5.5) from the whole sorted result ``ids``: the window
    asked for, ``total`` if asked, ``limit`` if the server capped it."""
    window, position, limit_used = query_window(ids, args, None)
    answer: dict[str, Any] = {
        "accountId": args.account_id,
        "queryState": state_text(state),
        "canCalculateChanges": can_calculate_changes,
        "position": position,
        "ids": window,
    }
    if args.calculate_total:
        answer["total"] = len(ids)
    if limit_used is not None:
        answer["limit"] = limit_used
    return answer
