"""Quota/get, /changes, /query and /queryChanges (RFC 9425): the account's storage quota.

An account with a quota (``users.quota_bytes`` above 0) has one Quota object, of resource
type ``octets`` and scope ``account``, counting the bytes of its mail (``used_bytes``);
an account without one has none. Its state is the account mod-sequence: every stored or
removed message moves both (decision 0033), so a change of ``used`` is never missed, and a
state may move when the quota did not (RFC 8620 §1.6.1 allows that). Soft and warning
limits are not kept: ``warnLimit`` and ``softLimit`` are null.
"""

from __future__ import annotations

from typing import Any

from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.mail.answers import changes_answer, check_properties, query_answer
from mailstead.http.jmap.mail.ids import parse_state, state_text
from mailstead.http.jmap.mail.services import MailServices
from mailstead.http.jmap.standard import (
    ChangesArgs,
    FilterCondition,
    FilterOperator,
    GetArgs,
    QueryArgs,
    QueryChangesArgs,
)
from mailstead.store.models import User

#: RFC 9425 §2: the capability of the Quota methods.
QUOTA = "urn:ietf:params:jmap:quota"
#: The one Quota object's id: the account's mail storage.
QUOTA_ID = "Qoctets"
PROPERTIES = (
    "id",
    "resourceType",
    "used",
    "hardLimit",
    "scope",
    "name",
    "types",
    "warnLimit",
    "softLimit",
    "description",
)
_FILTERS = frozenset({"name", "scope", "resourceType", "type"})
_SORTS = frozenset({"name", "used"})


def quota_json(user: User) -> dict[str, Any]:
    """RFC 9425 §4: the Quota object of an account with a quota."""
    return {
        "id": QUOTA_ID,
        "resourceType": "octets",
        "used": user.used_bytes,
        "hardLimit": user.quota_bytes,
        "scope": "account",
        "name": f"Mail storage of {user.address}",
        "types": ["Mail"],
        "warnLimit": None,
        "softLimit": None,
        "description": None,
    }


class QuotaMethods:
    def __init__(self, services: MailServices) -> None:
        self.services = services

    def register(self, methods: Methods) -> None:
        methods.add("Quota/get", QUOTA, self.get)
        methods.add("Quota/changes", QUOTA, self.changes)
        methods.add("Quota/query", QUOTA, self.query)
        methods.add("Quota/queryChanges", QUOTA, self.query_changes)

    async def _quotas(self, context: CallContext) -> tuple[User, list[dict[str, Any]]]:
        """The account as stored now (``used_bytes`` moves with every message) and its
        Quota objects."""
        account = await self.services.user(context)
        user = await self.services.store.get_user(account.id)
        return user, [quota_json(user)] if user.quota_bytes > 0 else []

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits)
        check_properties(args.properties, PROPERTIES)
        user, quotas = await self._quotas(context)
        state = await self.services.store.account_state(user.id)
        by_id = {q["id"]: q for q in quotas}
        wanted = list(by_id) if args.ids is None else list(args.ids)
        listed = []
        for value in wanted:
            if value in by_id:
                obj = by_id[value]
                if args.properties is not None:
                    obj = {k: v for k, v in obj.items() if k == "id" or k in args.properties}
                listed.append(obj)
        return {
            "accountId": args.account_id,
            "state": state_text(state),
            "list": listed,
            "notFound": [v for v in wanted if v not in by_id],
        }

    async def changes(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        """Every change of the account may have moved ``used``: the quota is updated when
        the state moved at all (it is never created or destroyed by a change a client
        can make; an admin setting or lifting it shows as an update or a notFound)."""
        args = ChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_state)
        user, quotas = await self._quotas(context)
        state = await self.services.store.account_state(user.id)
        updated = [q["id"] for q in quotas] if since < state else []
        return changes_answer(args, since, state, [], updated, [], paged=False)

    async def _results(
        self, context: CallContext, filter_: Any, sort: Any
    ) -> tuple[User, list[str]]:
        user, quotas = await self._quotas(context)
        for comparator in sort or ():
            if comparator.property not in _SORTS:
                raise MethodError("unsupportedSort", f"cannot sort by {comparator.property[:60]!r}")
        return user, [q["id"] for q in quotas if _matches(filter_, q)]

    async def query(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = QueryArgs.parse(arguments, self.services.limits)
        user, ids = await self._results(context, args.filter, args.sort)
        state = await self.services.store.account_state(user.id)
        return query_answer(args, state, ids, can_calculate_changes=True)

    async def query_changes(
        self, context: CallContext, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """With one object at most, a moved state removes it and adds it again where it
        stands now, if it still matches (RFC 8620 §5.6 allows reporting more)."""
        args = QueryChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_query_state)
        user, ids = await self._results(context, args.filter, args.sort)
        state = await self.services.store.account_state(user.id)
        if since > state:
            raise MethodError("cannotCalculateChanges", "the state is from the future")
        moved = since < state
        response: dict[str, Any] = {
            "accountId": args.account_id,
            "oldQueryState": args.since_query_state,
            "newQueryState": state_text(state),
            "removed": [QUOTA_ID] if moved else [],
            "added": [{"id": i, "index": n} for n, i in enumerate(ids)] if moved else [],
        }
        if args.calculate_total:
            response["total"] = len(ids)
        return response


def _matches(filter_: Any, quota: dict[str, Any]) -> bool:
    """RFC 9425 §4.3 FilterCondition: name (substring), scope, resourceType, type."""
    match filter_:
        case None:
            return True
        case FilterOperator(operator=op, conditions=conditions):
            results = [_matches(c, quota) for c in conditions]
            return all(results) if op == "AND" else any(results) if op == "OR" else not any(results)
        case FilterCondition(properties=props):
            unknown = sorted(set(props) - _FILTERS)
            if unknown:
                raise MethodError("unsupportedFilter", f"cannot filter by {unknown[0][:60]!r}")
            for name in _FILTERS:
                if props.get(name) is not None and not isinstance(props[name], str):
                    raise MethodError("invalidArguments", f"filter: {name} is a string")
            if (
                props.get("name") is not None
                and props["name"].casefold() not in quota["name"].casefold()
            ):
                return False
            if props.get("scope") is not None and props["scope"] != quota["scope"]:
                return False
            if (
                props.get("resourceType") is not None
                and props["resourceType"] != quota["resourceType"]
            ):
                return False
            return props.get("type") is None or props["type"] in quota["types"]
    return False
