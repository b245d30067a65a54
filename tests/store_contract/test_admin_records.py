"""The contract of API tokens and the audit log: an audit record commits with its change,
once, and never without it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailstead.core.errors import AlreadyExists, NotFound
from mailstead.store.audit import AuditEntry, audited
from mailstead.store.interfaces import Store

ENTRY = AuditEntry(actor="token 1 (t)", source="192.0.2.1", action="domain.add",
                   target="a.test", detail={"why": "test"})


async def test_a_change_and_its_audit_record_commit_together(store: Store) -> None:
    with audited(ENTRY) as scope:
        await store.add_domain("a.test")
        await store.add_domain("b.test")  # a second write in the scope: no second record
    assert scope.recorded
    records = await store.audit_log()
    assert [(r.action, r.target, r.actor, r.source) for r in records] == [
        ("domain.add", "a.test", "token 1 (t)", "192.0.2.1")]
    assert records[0].detail == '{"why": "test"}'


async def test_a_failed_change_leaves_no_record(store: Store) -> None:
    await store.add_domain("a.test")
    with audited(ENTRY) as scope, pytest.raises(AlreadyExists):
        await store.add_domain("a.test")
    assert not scope.recorded
    assert await store.audit_log() == []


async def test_writes_outside_a_scope_are_not_recorded(store: Store) -> None:
    await store.add_domain("a.test")
    await store.record_audit(ENTRY)
    token = await store.add_token("t", "admin", "00" * 32, "cli:test")
    with audited(ENTRY):
        await store.touch_token(token.id, datetime.now(UTC), "192.0.2.1")  # bookkeeping
    assert len(await store.audit_log()) == 1


async def test_audit_pages_and_filters(store: Store) -> None:
    for target in ("a.test", "bob@a.test", "b.test", "ann@b.test", "x@a.testing"):
        await store.record_audit(AuditEntry("cli:root", "local", "user.add", target))
    everything = await store.audit_log()
    assert [r.target for r in everything] == [
        "x@a.testing", "ann@b.test", "b.test", "bob@a.test", "a.test"]
    assert [r.target for r in await store.audit_log(target="a.test")] == [
        "bob@a.test", "a.test"]
    older = await store.audit_log(limit=2, before=everything[1].id)
    assert [r.target for r in older] == ["b.test", "bob@a.test"]


async def test_tokens_are_kept_hashed_and_revocable(store: Store) -> None:
    token = await store.add_token("deploy", "domain:a.test", "ab" * 32, "cli:root")
    assert (token.name, token.scope, token.secret_hash) == ("deploy", "domain:a.test", "ab" * 32)
    assert token.revoked is None and token.last_used is None
    moment = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    await store.touch_token(token.id, moment, "2001:db8::1")
    await store.revoke_token(token.id)
    found = await store.find_token(token.id)
    assert found is not None and found.revoked is not None
    assert (found.last_used, found.last_used_from) == (moment, "2001:db8::1")
    assert [t.id for t in await store.list_tokens()] == [token.id]
    assert await store.find_token(token.id + 1) is None
    with pytest.raises(NotFound):
        await store.revoke_token(token.id + 1)
