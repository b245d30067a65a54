"""The three kinds of JMAP error (RFC 8620 §3.6), each able to write itself as JSON.

- :class:`RequestError`: the whole request is refused before any method runs (§3.6.1); the
  answer is an RFC 7807 problem document with a JMAP ``urn`` type and an HTTP status.
- :class:`MethodError`: one method call fails (§3.6.2); the response carries
  ``["error", {...}, callId]`` in its place and the request goes on.
- :class:`SetError`: one object of a /set or /copy fails (§5.3); it goes in
  ``notCreated``/``notUpdated``/``notDestroyed`` and the other objects go on.

Descriptions are for the client's developer: they name the argument or the limit, never
quote server internals (those go to the log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: RFC 8620 §3.6.1: request-level error types, under ``urn:ietf:params:jmap:error:``.
RequestErrorType = Literal["unknownCapability", "notJSON", "notRequest", "limit"]

ERROR_URN = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """RFC 8620 §3.6.1: the request as a whole is refused, as a problem document."""

    def __init__(
        self, type: RequestErrorType, detail: str, *, limit: str | None = None, status: int = 400
    ) -> None:
        super().__init__(detail)
        self.type: RequestErrorType = type
        self.detail = detail
        self.limit = limit  # the name of the core capability's limit (type "limit" only)
        self.status = status

    @property
    def urn(self) -> str:
        return ERROR_URN + self.type

    def to_json(self) -> dict[str, Any]:
        """The RFC 7807 problem document (§3.6.1 shows its members)."""
        body: dict[str, Any] = {"type": self.urn, "status": self.status, "detail": self.detail}
        if self.limit is not None:
            body["limit"] = self.limit  # RFC 8620 §3.6.1: which limit was exceeded
        return body


class MethodError(Exception):
    """RFC 8620 §3.6.2: a method call failed; becomes ``["error", to_json(), callId]``.

    ``type`` is one of the RFC's names (``invalidArguments``, ``unknownMethod``,
    ``requestTooLarge``, ``stateMismatch``, ...); ``extra`` members go into the error object
    as they are (for example ``properties`` or ``existingId``).
    """

    def __init__(self, type: str, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or type)
        self.type = type
        self.description = description
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        if self.description is not None:
            body["description"] = self.description
        body.update(self.extra)
        return body


@dataclass(frozen=True, slots=True)
class SetError:
    """RFC 8620 §5.3: why one object was not created, updated or destroyed."""

    type: str
    description: str | None = None
    properties: tuple[str, ...] | None = None  # invalidProperties: which ones
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. existingId (§5.4)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        if self.description is not None:
            body["description"] = self.description
        if self.properties is not None:
            body["properties"] = list(self.properties)
        body.update(self.extra)
        return body


class SetRefused(Exception):
    """One object of a /set (or /copy, /import, Blob/upload) refused with ``error``: the
    method files it under notCreated, notUpdated or notDestroyed and goes on with the
    others (RFC 8620 §5.3)."""

    def __init__(self, error: SetError) -> None:
        super().__init__(error.description or error.type)
        self.error = error
