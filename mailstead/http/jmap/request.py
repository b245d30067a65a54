"""The JMAP Request object (RFC 8620 §3.3) and result references (§3.7): pure, no I/O.

:func:`parse_request` turns the body of a POST to the API into a :class:`Request`, or raises
the request-level :class:`~mailstead.http.jmap.errors.RequestError` the RFC names, checked
in this order: not I-JSON (``notJSON``), not a Request (``notRequest``), more method calls
than ``maxCallsInRequest`` (``limit``), a capability the server does not have
(``unknownCapability``).

:func:`resolve_references` replaces the ``#name`` arguments of one call by the values they
point at in the responses before it; :func:`evaluate_pointer` is RFC 6901 JSON Pointer with
JMAP's ``*`` over arrays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from mailstead.http.jmap.errors import MethodError, RequestError

#: A method response as it is built up: ``(name, arguments, methodCallId)`` (§3.4).
Response = tuple[str, dict[str, Any], str]

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")  # RFC 6901 §4: no leading zeros, no "-"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One method call: ``[name, arguments, methodCallId]`` (RFC 8620 §3.2)."""

    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass(frozen=True, slots=True)
class Request:
    """RFC 8620 §3.3."""

    using: frozenset[str]
    method_calls: tuple[Invocation, ...]
    created_ids: dict[str, str] | None  # None: the client did not send createdIds


def parse_request(body: bytes, *, supported: Collection[str], max_calls: int) -> Request:
    """The Request in ``body``; ``supported`` are the capabilities the server offers the
    caller, ``max_calls`` its ``maxCallsInRequest``."""
    return request_of(parse_json(body), supported=supported, max_calls=max_calls)


def request_of(document: Any, *, supported: Collection[str], max_calls: int) -> Request:
    """The Request a parsed JSON document is (JMAP over WebSocket, RFC 8887 §4.3.3, reads
    the document first to learn its ``@type``)."""
    if not isinstance(document, dict):
        _not_request("the request must be a JSON object")
    using = document.get("using")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        _not_request("using must be an array of capability strings")
    calls = document.get("methodCalls")
    if not isinstance(calls, list):
        _not_request("methodCalls must be an array of Invocations")
    invocations = tuple(_invocation(call, index) for index, call in enumerate(calls))
    created_ids = document.get("createdIds")
    if created_ids is not None and not (
        isinstance(created_ids, dict) and all(isinstance(v, str) for v in created_ids.values())
    ):
        _not_request("createdIds must be an object of creation ids to ids")
    if len(invocations) > max_calls:
        # RFC 8620 §3.6.1: the request exceeds a limit of the core capability.
        raise RequestError(
            "limit", f"at most {max_calls} method calls in one request", limit="maxCallsInRequest"
        )
    unknown = sorted(set(using) - set(supported))
    if unknown:
        raise RequestError(
            "unknownCapability", f"the server does not support {', '.join(unknown)[:200]}"
        )
    return Request(
        frozenset(using), invocations, dict(created_ids) if created_ids is not None else None
    )


def _invocation(call: Any, index: int) -> Invocation:
    # RFC 8620 §3.2: a tuple of exactly three elements.
    if not (
        isinstance(call, list)
        and len(call) == 3
        and isinstance(call[0], str)
        and isinstance(call[1], dict)
        and isinstance(call[2], str)
    ):
        _not_request(f"methodCalls[{index}] must be [name, arguments object, call id]")
    return Invocation(call[0], call[1], call[2])


def _not_request(detail: str) -> NoReturn:
    raise RequestError("notRequest", detail)


def parse_json(body: bytes) -> Any:
    """RFC 8620 §3.6.1 notJSON: UTF-8 I-JSON (RFC 7493): no duplicate member names, no
    unpaired surrogates, no NaN or Infinity."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("notJSON", "the body is not UTF-8") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except _NotIJSON as exc:
        raise RequestError("notJSON", str(exc)) from None
    except RecursionError:  # the C parser counts its depth and stops, it never crashes
        raise RequestError("notJSON", "the JSON is nested too deeply") from None
    except ValueError:
        raise RequestError("notJSON", "the body is not valid JSON") from None
    _check_strings(document)
    return document


class _NotIJSON(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # RFC 7493 §2.3
        raise _NotIJSON("an object has two members with the same name")
    return result


def _no_constant(name: str) -> NoReturn:
    raise _NotIJSON(f"{name} is not a JSON number")  # RFC 7493 §2.2


def _check_strings(value: Any) -> None:
    """RFC 7493 §2.1: strings (names too) are Unicode; ``\\ud800`` alone is not."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, member in item.items():
                _check_text(key)
                stack.append(member)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError("notJSON", "a string holds an unpaired surrogate") from None


# -- result references (RFC 8620 §3.7) -------------------------------------------------------


class PointerError(ValueError):
    """The pointer does not resolve in the value (or is not a JSON Pointer)."""


def evaluate_pointer(value: Any, pointer: str) -> Any:
    """RFC 6901 JSON Pointer, with RFC 8620 §3.7's extension: at an array, the token ``*``
    applies the rest of the pointer to every item, and items that come out as arrays are
    flattened into the result."""
    if pointer == "":
        return value
    if not pointer.startswith("/"):
        raise PointerError("a JSON Pointer starts with /")
    return _walk(value, [_unescape(token) for token in pointer[1:].split("/")])


def _unescape(token: str) -> str:
    # RFC 6901 §4: "~1" before "~0", so that "~01" is "~1" and not "/".
    if re.search(r"~(?![01])", token):
        raise PointerError(f"bad escape in the token {token[:40]!r}")
    return token.replace("~1", "/").replace("~0", "~")


def _walk(value: Any, tokens: Sequence[str]) -> Any:
    for position, token in enumerate(tokens):
        if isinstance(value, list):
            if token == "*":  # RFC 8620 §3.7
                rest = tokens[position + 1 :]
                mapped: list[Any] = []
                for item in value:
                    result = _walk(item, rest)
                    if isinstance(result, list):
                        mapped.extend(result)
                    else:
                        mapped.append(result)
                return mapped
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(value):
                raise PointerError(f"no item {token[:40]!r} in an array of {len(value)}")
            value = value[int(token)]
        elif isinstance(value, dict):
            if token not in value:
                raise PointerError(f"no member {token[:40]!r}")
            value = value[token]
        else:
            raise PointerError(f"{token[:40]!r} points into a {type(value).__name__}")
    return value


def resolve_references(arguments: dict[str, Any], responses: Sequence[Response]) -> dict[str, Any]:
    """The arguments with every ``#name`` reference replaced by ``name`` and its value
    (RFC 8620 §3.7); ``responses`` are the responses of this request so far."""
    resolved: dict[str, Any] = {}
    for key, reference in arguments.items():
        if not key.startswith("#"):
            resolved[key] = reference
            continue
        name = key[1:]
        if name in arguments:
            raise MethodError(
                "invalidArguments", f"{name} is given both as a value and as a reference"
            )
        resolved[name] = _resolve(key, reference, responses)
    return resolved


def _resolve(key: str, reference: Any, responses: Sequence[Response]) -> Any:
    if not (
        isinstance(reference, dict)
        and all(isinstance(reference.get(m), str) for m in ("resultOf", "name", "path"))
    ):
        raise MethodError(
            "invalidResultReference", f"{key} must be a ResultReference {{resultOf, name, path}}"
        )
    result_of, name, path = reference["resultOf"], reference["name"], reference["path"]
    # The first response with that call id, among those before this call.
    found = next((r for r in responses if r[2] == result_of), None)
    if found is None:
        raise MethodError(
            "invalidResultReference",
            f"{key}: no response before this call has the id {result_of!r}",
        )
    if found[0] != name:
        raise MethodError(
            "invalidResultReference",
            f"{key}: the response {result_of!r} is {found[0]!r}, not {name!r}",
        )
    try:
        return evaluate_pointer(found[1], path)
    except PointerError as exc:
        raise MethodError("invalidResultReference", f"{key}: {path[:100]!r}: {exc}") from None
