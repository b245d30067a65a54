"""The standard methods' arguments (RFC 8620 §5), validated once, as typed records.

Every data type's /get, /changes, /set, /copy, /query and /queryChanges take the same
arguments; each record's ``parse(args, limits)`` checks them and raises
:class:`~mailstead.http.jmap.errors.MethodError` (``invalidArguments`` naming the argument,
or ``requestTooLarge``, ``unsupportedSort``, ``unsupportedFilter``), so a method handler
starts from values it can trust. A method with arguments of its own (RFC 8621's
``Email/get`` ``bodyProperties``, ``Mailbox/query`` ``sortAsTree``, ...) names them in
``extra=``; they come back untouched in the record's ``extra``, and any other unknown
argument is refused.

Beside them: :func:`apply_patch` (the PatchObject of §5.3) and :func:`query_window` (the
``position``/``anchor``/``limit`` arithmetic of §5.5), and :class:`Limits`, the limits of the
core capability.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from mailstead.config.schema import HTTPSettings, JMAPSettings
from mailstead.http.jmap.errors import MethodError, SetError

#: RFC 8620 §1.3: Int and UnsignedInt stay within what a double holds exactly.
MAX_INT = 2**53 - 1
#: RFC 4790 collations the server sorts and filters with (advertised in the session).
COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")
#: A filter deeper or larger than this is refused (unsupportedFilter): bounded work per call.
MAX_FILTER_DEPTH = 16
MAX_FILTER_NODES = 256

_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")  # RFC 8620 §1.2


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of ``urn:ietf:params:jmap:core`` (RFC 8620 §2), as enforced."""

    max_size_upload: int = 50 * 1024**2
    max_concurrent_upload: int = 4
    max_size_request: int = 10 * 1024**2
    max_concurrent_requests: int = 4
    max_calls_in_request: int = 64
    max_objects_in_get: int = 500
    max_objects_in_set: int = 500

    @classmethod
    def from_settings(cls, jmap: JMAPSettings, http: HTTPSettings) -> Limits:
        """The ``[jmap]`` limits; sizes no larger than ``http.max_body_size``, since the
        HTTP server refuses a bigger body before JMAP sees it and the session must not
        promise more than is accepted."""
        return cls(
            max_size_upload=min(jmap.max_size_upload, http.max_body_size),
            max_concurrent_upload=jmap.max_concurrent_upload,
            max_size_request=min(jmap.max_size_request, http.max_body_size),
            max_concurrent_requests=jmap.max_concurrent_requests,
            max_calls_in_request=jmap.max_calls_in_request,
            max_objects_in_get=jmap.max_objects_in_get,
            max_objects_in_set=jmap.max_objects_in_set,
        )


# -- the argument records (RFC 8620 §5.1 - §5.6) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class GetArgs:
    """RFC 8620 §5.1 Foo/get."""

    account_id: str
    ids: tuple[str, ...] | None  # None: every object (the method may refuse that)
    properties: tuple[str, ...] | None  # None: every property
    extra: Mapping[str, Any] = field(default_factory=dict)

    KNOWN = frozenset({"accountId", "ids", "properties"})

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits, *, extra: Collection[str] = ()) -> Self:
        rest = _check_names(args, cls.KNOWN, extra)
        ids = _ids(args, "ids")
        if ids is not None and len(ids) > limits.max_objects_in_get:
            raise MethodError(
                "requestTooLarge", f"at most {limits.max_objects_in_get} ids in one /get"
            )
        return cls(_account(args), ids, _strings(args, "properties"), rest)


@dataclass(frozen=True, slots=True)
class ChangesArgs:
    """RFC 8620 §5.2 Foo/changes."""

    account_id: str
    since_state: str
    max_changes: int | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    KNOWN = frozenset({"accountId", "sinceState", "maxChanges"})

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits, *, extra: Collection[str] = ()) -> Self:
        rest = _check_names(args, cls.KNOWN, extra)
        max_changes = _uint(args, "maxChanges")
        if max_changes == 0:  # RFC 8620 §5.2: "MUST be a positive integer greater than 0"
            raise MethodError("invalidArguments", "maxChanges must be greater than 0")
        return cls(_account(args), _required_string(args, "sinceState"), max_changes, rest)


@dataclass(frozen=True, slots=True)
class SetArgs:
    """RFC 8620 §5.3 Foo/set."""

    account_id: str
    if_in_state: str | None
    create: Mapping[str, dict[str, Any]]  # creation id -> the object
    update: Mapping[str, dict[str, Any]]  # id (or #creationId) -> PatchObject
    destroy: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    KNOWN = frozenset({"accountId", "ifInState", "create", "update", "destroy"})

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits, *, extra: Collection[str] = ()) -> Self:
        rest = _check_names(args, cls.KNOWN, extra)
        create = _objects_by_id(args, "create", references=False) or {}
        update = _objects_by_id(args, "update", references=True) or {}
        destroy = _ids(args, "destroy") or ()
        if len(create) + len(update) + len(destroy) > limits.max_objects_in_set:
            raise MethodError(
                "requestTooLarge", f"at most {limits.max_objects_in_set} objects in one /set"
            )
        return cls(_account(args), _string(args, "ifInState"), create, update, destroy, rest)


@dataclass(frozen=True, slots=True)
class AccountlessGetArgs:
    """RFC 8620 §7.2.1 PushSubscription/get: a /get without ``accountId`` (the objects
    belong to the credentials, not to an account)."""

    ids: tuple[str, ...] | None
    properties: tuple[str, ...] | None

    KNOWN = frozenset({"ids", "properties"})

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits) -> Self:
        _check_names(args, cls.KNOWN, ())
        ids = _ids(args, "ids")
        if ids is not None and len(ids) > limits.max_objects_in_get:
            raise MethodError(
                "requestTooLarge", f"at most {limits.max_objects_in_get} ids in one /get"
            )
        return cls(ids, _strings(args, "properties"))


@dataclass(frozen=True, slots=True)
class AccountlessSetArgs:
    """RFC 8620 §7.2.2 PushSubscription/set: a /set without ``accountId`` or
    ``ifInState`` (push subscriptions have no state)."""

    create: Mapping[str, dict[str, Any]]
    update: Mapping[str, dict[str, Any]]
    destroy: tuple[str, ...]

    KNOWN = frozenset({"create", "update", "destroy"})

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits) -> Self:
        _check_names(args, cls.KNOWN, ())
        create = _objects_by_id(args, "create", references=False) or {}
        update = _objects_by_id(args, "update", references=True) or {}
        destroy = _ids(args, "destroy") or ()
        if len(create) + len(update) + len(destroy) > limits.max_objects_in_set:
            raise MethodError(
                "requestTooLarge", f"at most {limits.max_objects_in_set} objects in one /set"
            )
        return cls(create, update, destroy)


@dataclass(frozen=True, slots=True)
class CopyArgs:
    """RFC 8620 §5.4 Foo/copy. Whether ``from_account_id`` is one the caller may read is
    the method's to say (``fromAccountNotFound``)."""

    from_account_id: str
    if_from_in_state: str | None
    account_id: str
    if_in_state: str | None
    create: Mapping[str, dict[str, Any]]  # creation id -> the object, with the "id" to copy
    on_success_destroy_original: bool
    destroy_from_if_in_state: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    KNOWN = frozenset(
        {
            "fromAccountId",
            "ifFromInState",
            "accountId",
            "ifInState",
            "create",
            "onSuccessDestroyOriginal",
            "destroyFromIfInState",
        }
    )

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits, *, extra: Collection[str] = ()) -> Self:
        rest = _check_names(args, cls.KNOWN, extra)
        from_account = args.get("fromAccountId")
        if not isinstance(from_account, str) or not _ID.fullmatch(from_account):
            raise MethodError("invalidArguments", "fromAccountId must be an account id")
        create = _objects_by_id(args, "create", references=False)
        if create is None:
            raise MethodError("invalidArguments", "create is required")
        if len(create) > limits.max_objects_in_set:
            raise MethodError(
                "requestTooLarge", f"at most {limits.max_objects_in_set} objects in one /copy"
            )
        return cls(
            from_account,
            _string(args, "ifFromInState"),
            _account(args),
            _string(args, "ifInState"),
            create,
            _bool(args, "onSuccessDestroyOriginal", False),
            _string(args, "destroyFromIfInState"),
            rest,
        )


@dataclass(frozen=True, slots=True)
class FilterOperator:
    """RFC 8620 §5.5: AND, OR or NOT (none of) over the conditions."""

    operator: Literal["AND", "OR", "NOT"]
    conditions: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class FilterCondition:
    """RFC 8620 §5.5: the data type's own condition object, as sent; the method checks its
    members (``unsupportedFilter`` for one it does not know)."""

    properties: Mapping[str, Any]


Filter = FilterOperator | FilterCondition


@dataclass(frozen=True, slots=True)
class Comparator:
    """RFC 8620 §5.5: one sort key. ``extra`` keeps the data type's own members (RFC 8621
    ``keyword`` for the ``hasKeyword`` sorts)."""

    property: str
    is_ascending: bool = True
    collation: str | None = None  # None: the server's default for the property
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueryArgs:
    """RFC 8620 §5.5 Foo/query."""

    account_id: str
    filter: Filter | None
    sort: tuple[Comparator, ...] | None
    position: int = 0
    anchor: str | None = None
    anchor_offset: int = 0
    limit: int | None = None
    calculate_total: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    KNOWN = frozenset(
        {
            "accountId",
            "filter",
            "sort",
            "position",
            "anchor",
            "anchorOffset",
            "limit",
            "calculateTotal",
        }
    )

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits, *, extra: Collection[str] = ()) -> Self:
        rest = _check_names(args, cls.KNOWN, extra)
        anchor = args.get("anchor")
        if anchor is not None and not (isinstance(anchor, str) and _ID.fullmatch(anchor)):
            raise MethodError("invalidArguments", "anchor must be an id or null")
        return cls(
            _account(args),
            parse_filter(args.get("filter")),
            parse_sort(args.get("sort")),
            _int(args, "position", 0),
            anchor,
            _int(args, "anchorOffset", 0),
            _uint(args, "limit"),
            _bool(args, "calculateTotal", False),
            rest,
        )


@dataclass(frozen=True, slots=True)
class QueryChangesArgs:
    """RFC 8620 §5.6 Foo/queryChanges."""

    account_id: str
    filter: Filter | None
    sort: tuple[Comparator, ...] | None
    since_query_state: str
    max_changes: int | None
    up_to_id: str | None
    calculate_total: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    KNOWN = frozenset(
        {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId", "calculateTotal"}
    )

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: Limits, *, extra: Collection[str] = ()) -> Self:
        rest = _check_names(args, cls.KNOWN, extra)
        up_to = args.get("upToId")
        if up_to is not None and not (isinstance(up_to, str) and _ID.fullmatch(up_to)):
            raise MethodError("invalidArguments", "upToId must be an id or null")
        return cls(
            _account(args),
            parse_filter(args.get("filter")),
            parse_sort(args.get("sort")),
            _required_string(args, "sinceQueryState"),
            _uint(args, "maxChanges"),
            up_to,
            _bool(args, "calculateTotal", False),
            rest,
        )


def parse_filter(value: Any) -> Filter | None:
    """The ``filter`` argument: null, a FilterOperator, or a FilterCondition (§5.5)."""
    if value is None:
        return None
    budget = [MAX_FILTER_NODES]
    return _filter(value, 1, budget)


def _filter(value: Any, depth: int, budget: list[int]) -> Filter:
    if not isinstance(value, dict):
        raise MethodError("invalidArguments", "filter: a condition or operator is an object")
    budget[0] -= 1
    if budget[0] < 0:
        raise MethodError(
            "unsupportedFilter", f"filter: more than {MAX_FILTER_NODES} operators and conditions"
        )
    if "operator" not in value:
        return FilterCondition(value)
    operator, conditions = value["operator"], value.get("conditions")
    if operator not in ("AND", "OR", "NOT"):
        raise MethodError("invalidArguments", "filter: operator must be AND, OR or NOT")
    if not isinstance(conditions, list) or set(value) != {"operator", "conditions"}:
        raise MethodError(
            "invalidArguments", "filter: an operator has exactly operator and conditions (an array)"
        )
    if depth >= MAX_FILTER_DEPTH and conditions:
        raise MethodError(
            "unsupportedFilter", f"filter: operators nested deeper than {MAX_FILTER_DEPTH}"
        )
    return FilterOperator(operator, tuple(_filter(c, depth + 1, budget) for c in conditions))


def parse_sort(value: Any) -> tuple[Comparator, ...] | None:
    """The ``sort`` argument: null or an array of Comparators (§5.5)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise MethodError("invalidArguments", "sort must be an array of Comparators")
    comparators = []
    for index, item in enumerate(value):
        where = f"sort[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("property"), str):
            raise MethodError("invalidArguments", f"{where} must be an object with a property")
        ascending = item.get("isAscending", True)
        if not isinstance(ascending, bool):
            raise MethodError("invalidArguments", f"{where}.isAscending must be a boolean")
        collation = item.get("collation")
        if collation is not None and not isinstance(collation, str):
            raise MethodError("invalidArguments", f"{where}.collation must be a string")
        if collation is not None and collation not in COLLATIONS:
            # RFC 8620 §5.5: a collation the server does not recognise.
            raise MethodError(
                "unsupportedSort",
                f"{where}: collation {collation[:60]!r} is not one of {', '.join(COLLATIONS)}",
            )
        rest = {k: v for k, v in item.items() if k not in ("property", "isAscending", "collation")}
        comparators.append(Comparator(item["property"], ascending, collation, rest))
    return tuple(comparators)


# -- PatchObject (RFC 8620 §5.3) -------------------------------------------------------------


class InvalidPatch(MethodError):
    """A PatchObject that cannot be applied; in a /set it is the SetError of one object."""

    def __init__(self, description: str) -> None:
        super().__init__("invalidPatch", description)

    def set_error(self) -> SetError:
        return SetError("invalidPatch", self.description)


def apply_patch(
    obj: Mapping[str, Any], patch: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``obj`` with ``patch`` applied (a new object; ``obj`` is not changed).

    RFC 8620 §5.3: each key is a JSON Pointer with an implicit leading ``/``; every part
    but the last must exist (and be an object: nothing is patched inside an array); no
    key may be a prefix of another; ``null`` resets a top-level property to its entry in
    ``defaults`` if it has one and removes the member otherwise.
    """
    paths: list[tuple[tuple[str, ...], Any]] = []
    for key, value in patch.items():
        if not isinstance(key, str):
            raise InvalidPatch("a patch key is a JSON Pointer")
        tokens = tuple(_patch_token(token) for token in key.split("/"))
        paths.append((tokens, value))
    ordered = sorted(tokens for tokens, _ in paths)
    for shorter, longer in itertools.pairwise(ordered):
        if longer[: len(shorter)] == shorter:  # sorted: a prefix sits just before its extensions
            raise InvalidPatch(
                f"{'/'.join(shorter)[:100]!r} and {'/'.join(longer)[:100]!r} overlap"
            )
    result = copy.deepcopy(dict(obj))
    for tokens, value in paths:
        parent: Any = result
        for depth, token in enumerate(tokens[:-1]):
            if not isinstance(parent, dict) or token not in parent:
                raise InvalidPatch(f"{'/'.join(tokens[: depth + 1])[:100]!r} does not exist")
            parent = parent[token]
        if not isinstance(parent, dict):
            raise InvalidPatch(
                f"{'/'.join(tokens)[:100]!r} points into an array or a value; "
                "replace the whole array instead"
            )
        last = tokens[-1]
        if value is not None:
            parent[last] = copy.deepcopy(value)
        elif len(tokens) == 1 and defaults is not None and last in defaults:
            parent[last] = copy.deepcopy(defaults[last])
        else:
            parent.pop(last, None)
    return result


def _patch_token(token: str) -> str:
    if re.search(r"~(?![01])", token):  # RFC 6901 §3: only ~0 and ~1
        raise InvalidPatch(f"bad escape in {token[:40]!r}")
    return token.replace("~1", "/").replace("~0", "~")


# -- the window of a query (RFC 8620 §5.5) ---------------------------------------------------


def query_window(
    ids: Sequence[str], args: QueryArgs, max_limit: int | None
) -> tuple[list[str], int, int | None]:
    """The ids to answer from the whole sorted result ``ids``: ``(ids, position,
    limit_used)``. ``position`` is the index of the first one in ``ids``; ``limit_used`` is
    the limit the server set (``max_limit``, when the client asked for none or for more),
    None if the client's was used: the response carries ``limit`` only then."""
    total = len(ids)
    if args.anchor is not None:
        # RFC 8620 §5.5: the anchor replaces position; the offset may be negative, and a
        # start before the first result is the first result.
        try:
            index = list(ids).index(args.anchor)
        except ValueError:
            raise MethodError("anchorNotFound", "the anchor is not in the results") from None
        start = max(0, index + args.anchor_offset)
    elif args.position < 0:
        start = max(0, total + args.position)  # counted from the end, clamped to 0
    else:
        start = args.position
    limit, limit_used = args.limit, None
    if max_limit is not None and (limit is None or limit > max_limit):
        limit = limit_used = max_limit
    end = total if limit is None else start + limit
    return list(ids[start:end]), start, limit_used


# -- argument checks -------------------------------------------------------------------------


def _check_names(
    args: Mapping[str, Any], known: frozenset[str], extra: Collection[str]
) -> dict[str, Any]:
    """Refuse arguments neither standard nor the method's own; the method's own, returned."""
    unknown = sorted(name for name in args if name not in known and name not in extra)
    if unknown:
        raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
    return {name: args[name] for name in extra if name in args}


def _account(args: Mapping[str, Any]) -> str:
    value = args.get("accountId")
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise MethodError("invalidArguments", "accountId must be an account id")
    return value


def is_id(value: Any, *, references: bool = True) -> bool:
    """An Id (RFC 8620 §1.2), or with ``references`` a ``#creationId`` (§5.3)."""
    if not isinstance(value, str):
        return False
    if references and value.startswith("#"):
        value = value[1:]
    return _ID.fullmatch(value) is not None


def _ids(args: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(is_id(v) for v in value):
        raise MethodError("invalidArguments", f"{name} must be an array of ids or null")
    return tuple(value)


def _objects_by_id(
    args: Mapping[str, Any], name: str, *, references: bool
) -> dict[str, dict[str, Any]] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        is_id(k, references=references) and isinstance(v, dict) for k, v in value.items()
    ):
        raise MethodError("invalidArguments", f"{name} must be an object of ids to objects")
    return value


def _strings(args: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MethodError("invalidArguments", f"{name} must be an array of strings or null")
    return tuple(value)


def _string(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise MethodError("invalidArguments", f"{name} must be a string or null")
    return value


def _required_string(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise MethodError("invalidArguments", f"{name} is required (a string)")
    return value


def _int(args: Mapping[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT:
        raise MethodError("invalidArguments", f"{name} must be an integer")
    return value


def _uint(args: Mapping[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise MethodError("invalidArguments", f"{name} must be a non-negative integer or null")
    return value


def _bool(args: Mapping[str, Any], name: str, default: bool) -> bool:
    value = args.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MethodError("invalidArguments", f"{name} must be true or false")
    return value
