"""The JMAP Session resource (RFC 8620 §2): what the credentials give access to, and where.

Pure: the caller hands in the account, the capabilities it offers (the mail part adds
``urn:ietf:params:jmap:mail`` and its per-account object) and the URL the client reached
the server at; this module shapes the object and its ``state``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailstead.http.jmap.dispatch import CORE
from mailstead.http.jmap.standard import COLLATIONS, Limits

#: Where the endpoints are, under the server's base URL (http/jmap/app.py serves them).
SESSION_PATH = "/jmap/session"
API_PATH = "/jmap/api"
# RFC 8620 §2: URL templates (RFC 6570 level 1) the client fills in.
DOWNLOAD_TEMPLATE = "/jmap/download/{accountId}/{blobId}/{name}?accept={type}"
UPLOAD_TEMPLATE = "/jmap/upload/{accountId}"
EVENT_SOURCE_PATH = "/jmap/eventsource"
EVENT_SOURCE_TEMPLATE = EVENT_SOURCE_PATH + "?types={types}&closeafter={closeafter}&ping={ping}"
#: RFC 8887 §4.1: JMAP over WebSocket, and its capability.
WEBSOCKET_PATH = "/jmap/ws"
WEBSOCKET = "urn:ietf:params:jmap:websocket"

Capabilities = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class OtherAccount:
    """An account the user may use besides its own (RFC 8620 §1.6.2): another user's,
    whose owner shares mailboxes with it (decision 0028). ``capabilities`` are the
    account's (core is added)."""

    account_id: str
    name: str
    read_only: bool
    capabilities: Capabilities


def core_capability(limits: Limits) -> dict[str, Any]:
    """RFC 8620 §2: the ``urn:ietf:params:jmap:core`` capability object."""
    return {
        "maxSizeUpload": limits.max_size_upload,
        "maxConcurrentUpload": limits.max_concurrent_upload,
        "maxSizeRequest": limits.max_size_request,
        "maxConcurrentRequests": limits.max_concurrent_requests,
        "maxCallsInRequest": limits.max_calls_in_request,
        "maxObjectsInGet": limits.max_objects_in_get,
        "maxObjectsInSet": limits.max_objects_in_set,
        "collationAlgorithms": list(COLLATIONS),
    }


def session_resource(
    *,
    username: str,
    account_id: str,
    account_name: str,
    limits: Limits,
    capabilities: Capabilities,
    account_capabilities: Capabilities,
    base_url: str,
    state: str = "",
    websocket_path: str | None = None,
    others: Sequence[OtherAccount] = (),
) -> dict[str, Any]:
    """The Session object for one authenticated user with one (personal, writable)
    account. ``capabilities`` are the server capabilities beyond core; the account's are
    ``account_capabilities`` (core gets an empty object there, as primary accounts are
    named per capability). ``base_url`` is scheme and authority, no trailing slash.
    ``state`` is the caller's word on what else the session depends on (the accounts the
    user may see); it goes into the resource's ``state``. With ``websocket_path`` the
    server offers JMAP over WebSocket there, with push (RFC 8887 §4). ``others`` are the
    accounts shared with the user (``isPersonal`` false); none of them is primary."""
    server = {CORE: core_capability(limits)}
    server.update((name, dict(value)) for name, value in capabilities.items() if name != CORE)
    if websocket_path is not None:
        # RFC 8887 §4: the wss:// (or ws://) URL of the endpoint; push over it is offered.
        ws_base = "ws" + base_url[len("http"):] if base_url.startswith("http") else base_url
        server[WEBSOCKET] = {"url": ws_base + websocket_path, "supportsPush": True}
    per_account: dict[str, Any] = {CORE: {}}
    per_account.update((name, dict(value)) for name, value in account_capabilities.items())
    resource: dict[str, Any] = {
        "capabilities": server,
        "accounts": {
            account_id: {
                "name": account_name,
                "isPersonal": True,
                "isReadOnly": False,
                "accountCapabilities": per_account,
            },
        },
        # RFC 8620 §2: the account to use for each capability's data by default.
        "primaryAccounts": {name: account_id for name in per_account},
        "username": username,
        "apiUrl": base_url + API_PATH,
        "downloadUrl": base_url + DOWNLOAD_TEMPLATE,
        "uploadUrl": base_url + UPLOAD_TEMPLATE,
        "eventSourceUrl": base_url + EVENT_SOURCE_TEMPLATE,
    }
    for other in others:
        capabilities_of = {CORE: {}, **{n: dict(v) for n, v in other.capabilities.items()}}
        resource["accounts"][other.account_id] = {
            "name": other.name,
            "isPersonal": False,
            "isReadOnly": other.read_only,
            "accountCapabilities": capabilities_of,
        }
    resource["state"] = session_state(resource, state)
    return resource


def session_state(resource: Mapping[str, Any], state: str = "") -> str:
    """RFC 8620 §2 ``state``: changes whenever anything else in the resource (or the
    caller's ``state``) does, and only then, so that a client seeing a new ``sessionState``
    in an API response (§3.4: the same value) refetches the resource."""
    content = {key: value for key, value in resource.items() if key != "state"}
    content["state"] = state
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
