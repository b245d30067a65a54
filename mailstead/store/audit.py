"""Which administrative change a store write belongs to, so both commit together.

The admin operations (``mailstead.admin``) describe each change as an :class:`AuditEntry`
and make the store call inside :func:`audited`. The store's writer adds the entry's row to
the same transaction as the change it describes: a change is never on disk without its
audit record, nor a record without its change (``kill -9`` between the two is impossible,
there is no between). A context variable carries the entry rather than an argument to every
store method, because every write method of the directory and the queue would otherwise
grow the same parameter; decision 0016 says more.

Only the first successful write in a scope records the entry: one operation, one record.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

#: What an audit detail may hold: JSON scalars and lists of them.
DetailValue = str | int | bool | None | list[str]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change as the audit log keeps it. ``detail`` never holds a secret."""

    actor: str  # "token 3 (deploy)", "cli:root", "user bob@example.org"
    source: str  # the client's IP address, or "local" for the command line
    action: str  # "user.add", "queue.delete" ...
    target: str  # what the change is about: an address, a domain, a queue id
    detail: Mapping[str, DetailValue] = field(default_factory=dict)

    def detail_json(self) -> str:
        return json.dumps(dict(self.detail), sort_keys=True, ensure_ascii=False)


@dataclass(slots=True)
class AuditScope:
    """An entry waiting for the write it describes."""

    entry: AuditEntry
    recorded: bool = False


_SCOPE: ContextVar[AuditScope | None] = ContextVar("mailstead_audit_scope", default=None)


@contextlib.contextmanager
def audited(entry: AuditEntry) -> Iterator[AuditScope]:
    """Record ``entry`` with the first write made inside the block (in this task)."""
    scope = AuditScope(entry)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def pending() -> AuditScope | None:
    """The scope whose entry the next write should record, if any. The caller marks it
    recorded once the write has committed."""
    scope = _SCOPE.get()
    return scope if scope is not None and not scope.recorded else None


@contextlib.contextmanager
def unaudited() -> Iterator[None]:
    """Writes inside the block record no entry: bookkeeping (a token's last use) and the
    audit record written on its own."""
    token = _SCOPE.set(None)
    try:
        yield
    finally:
        _SCOPE.reset(token)
