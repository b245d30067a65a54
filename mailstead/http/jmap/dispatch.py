"""Method dispatch: the method calls of one Request, in order, into the Response (RFC 8620
§3.3 - §3.4).

Invariants:

- calls run one after the other, each seeing the responses before it (§3.7 result
  references) and the creation ids every earlier call added (§3.3 createdIds, §5.3);
- what a call may do is decided here once, before its handler runs: its name must be in the
  method table and its capability in the request's ``using`` (else ``unknownMethod``), an
  ``accountId`` (and Email/copy's ``fromAccountId``) must be an account of the caller's
  session (else ``accountNotFound``: its own, or one whose owner shares mailboxes with it,
  RFC 8620 §1.6.2) whose capabilities include the method's (else
  ``accountNotSupportedByMethod``, §3.6.2);
- a handler fails with :class:`~mailstead.http.jmap.errors.MethodError`, which becomes
  ``["error", {...}, callId]``; any other exception becomes ``serverFail`` for the client
  and a traceback in the log (raised again under the sanity flag, so tests see it);
- a handler's implicit responses (:meth:`CallContext.add_response`: RFC 8621 §4.7
  ``onSuccessDestroyOriginal``, §7.5 ``onSuccessUpdateEmail``) follow its own response, with
  its call id, and are dropped if it fails.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailstead.auth.authenticator import UserRecord
from mailstead.core import sanity
from mailstead.core.errors import ChangesTooMany
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.request import Request, Response, resolve_references

log = logging.getLogger("mailstead.http.jmap")

#: RFC 8620 §2: the capability every server has, and the one Core/echo belongs to.
CORE = "urn:ietf:params:jmap:core"


@dataclass(slots=True)
class CallContext:
    """What a method handler knows of the request it is part of.

    One per request, shared by its calls: ``created_ids`` grows as creations succeed.
    """

    account_id: str  # the caller's own (personal) account
    user: UserRecord  # the authenticated account, as the Authenticator returned it
    created_ids: dict[str, str]  # creation id -> server id, across the whole request
    using: frozenset[str]
    session_state: str
    client_ip: str = ""  # the HTTP client's address (a submission's Received line names it)
    #: Every account of the session (RFC 8620 §2 ``accounts``) by id, with the capabilities
    #: it has: the own one and those of owners who share mailboxes with the caller. Empty:
    #: the own account only, with every capability.
    accounts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _implicit: list[tuple[str, dict[str, Any]]] = field(
        default_factory=list, init=False, repr=False
    )

    def resolve_id(self, value: str) -> str | None:
        """An id argument: ``#creationId`` is the id that creation got earlier in this
        request (None if there was no such creation), any other value is itself (§5.3)."""
        if value.startswith("#"):
            return self.created_ids.get(value[1:])
        return value

    def add_response(self, name: str, arguments: dict[str, Any]) -> None:
        """Answer ``[name, arguments]`` right after the current call's own response, with
        its call id (an implicit call, as RFC 8621 §4.7 and §7.5 describe)."""
        self._implicit.append((name, arguments))


MethodHandler = Callable[[CallContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class _Method:
    capability: str
    handler: MethodHandler


class Methods:
    """The method table: each name with the capability it belongs to and its handler.
    ``Core/echo`` is in every table."""

    def __init__(self) -> None:
        self._table: dict[str, _Method] = {"Core/echo": _Method(CORE, _echo)}

    def add(self, name: str, capability: str, handler: MethodHandler) -> None:
        if name in self._table:
            raise ValueError(f"the JMAP method {name} is already in the table")
        self._table[name] = _Method(capability, handler)

    def get(self, name: str) -> tuple[str, MethodHandler] | None:
        """The capability and handler of ``name``, None if there is no such method."""
        method = self._table.get(name)
        return None if method is None else (method.capability, method.handler)

    def capabilities(self) -> frozenset[str]:
        """The capabilities some method in the table belongs to."""
        return frozenset(method.capability for method in self._table.values())


async def _echo(context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """RFC 8620 §4: Core/echo answers exactly the arguments it was given."""
    return arguments


async def process(request: Request, methods: Methods, context: CallContext) -> dict[str, Any]:
    """The Response object (RFC 8620 §3.4) for ``request``."""
    if request.created_ids is not None:
        context.created_ids.update(request.created_ids)
    responses: list[Response] = []
    for call in request.method_calls:
        context._implicit.clear()
        try:
            arguments = resolve_references(call.arguments, responses)
            result = await _call(call.name, arguments, methods, context)
        except MethodError as error:
            responses.append(("error", error.to_json(), call.call_id))
            continue
        except ChangesTooMany as exc:
            # RFC 8620 §5.2: a /changes (or /queryChanges) the store cannot page: one write
            # changed more than maxChanges. The one place a store outcome becomes this error.
            refused = MethodError("cannotCalculateChanges", str(exc))
            responses.append(("error", refused.to_json(), call.call_id))
            continue
        except Exception as exc:  # a bug or an outage: serverFail, the details in the log
            sanity.degrade(
                log, exc, "JMAP method call failed: %s in %s", call.name[:100], exc_info=True
            )
            responses.append(("error", {"type": "serverFail"}, call.call_id))
            continue
        responses.append((call.name, result, call.call_id))
        responses.extend((name, args, call.call_id) for name, args in context._implicit)
    context._implicit.clear()
    response: dict[str, Any] = {
        "methodResponses": [[name, args, call_id] for name, args, call_id in responses],
        "sessionState": context.session_state,
    }
    if request.created_ids is not None:  # RFC 8620 §3.4: only if the request had it
        response["createdIds"] = dict(context.created_ids)
    return response


async def _call(
    name: str, arguments: dict[str, Any], methods: Methods, context: CallContext
) -> dict[str, Any]:
    method = methods.get(name)
    if method is None:
        raise MethodError("unknownMethod", f"there is no method {name[:100]!r}")
    capability, handler = method
    if capability not in context.using:
        # RFC 8620 §3.6.2: a method of a capability the request did not ask for is unknown.
        raise MethodError("unknownMethod", f"{name} needs {capability} in using")
    if handler is not _echo:
        for key, prefix in (("accountId", "account"), ("fromAccountId", "fromAccount")):
            if key in arguments:
                _check_account(arguments[key], capability, context, prefix)
    return await handler(context, arguments)


def _check_account(account_id: Any, capability: str, context: CallContext, prefix: str) -> None:
    """RFC 8620 §3.6.2: the account must be one of the session's, and have the method's
    capability among its own; §5.4: ``fromAccountId`` fails as ``fromAccountNotFound``."""
    if not context.accounts:
        if account_id != context.account_id:
            raise MethodError(f"{prefix}NotFound", "no such account for these credentials")
        return
    if not isinstance(account_id, str) or account_id not in context.accounts:
        raise MethodError(f"{prefix}NotFound", "no such account for these credentials")
    if capability != CORE and capability not in context.accounts[account_id]:
        raise MethodError(f"{prefix}NotSupportedByMethod",
                          f"the account {account_id} does not support {capability}")
