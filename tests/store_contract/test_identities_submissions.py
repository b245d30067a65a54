"""The store's JMAP identities and submissions (RFC 8621 §6, §7): every change moves the
account mod-sequence and shows in the changes since; a submission reads its recipients'
states from the outbound queue, and keeps them when the queue retires the message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailstead.core.errors import NotFound
from mailstead.store.interfaces import Store
from mailstead.store.models import (
    EmailAddressValue,
    IdentityFields,
    NewSubmission,
    OutboundEnvelope,
    QueuedRecipient,
    QueueStatus,
    RecipientOutcome,
    UndoStatus,
)

ME = "alice@example.org"


async def test_the_default_identity_is_made_once(store: Store, user_id: int) -> None:
    before = await store.account_state(user_id)
    [own] = await store.identities(user_id, ME)
    assert own.is_default and own.fields.email == ME and own.created > before
    assert await store.identities(user_id, ME) == [own]
    with pytest.raises(NotFound):
        await store.remove_identity(user_id, own.id)


async def test_identity_changes(store: Store, user_id: int) -> None:
    await store.identities(user_id, ME)
    state = await store.account_state(user_id)
    made = await store.add_identity(
        user_id,
        IdentityFields(email="alice+x@example.org", name="X", bcc=(EmailAddressValue(ME, None),)),
    )
    changes = await store.identity_changes(user_id, state)
    assert changes.created == (str(made.id),) and changes.state > state
    state = changes.state
    renamed = await store.update_identity(
        user_id, made.id, IdentityFields(email="ignored@example.org", name="Y")
    )
    assert renamed.fields.email == "alice+x@example.org" and renamed.fields.name == "Y"
    assert renamed.fields.bcc is None
    changes = await store.identity_changes(user_id, state)
    assert changes.updated == (str(made.id),) and not changes.created
    await store.remove_identity(user_id, made.id)
    changes = await store.identity_changes(user_id, changes.state)
    assert changes.destroyed == (str(made.id),)
    with pytest.raises(NotFound):
        await store.update_identity(user_id, made.id, IdentityFields(email=ME))


async def test_a_submission_follows_its_queue_entry(store: Store, user_id: int) -> None:
    [own] = await store.identities(user_id, ME)
    envelope = OutboundEnvelope(ME, (QueuedRecipient("bob@example.net"),), trace_id="t1")
    _, queue_id = await store.enqueue(b"Subject: x\r\n\r\nhi\r\n", envelope)
    assert queue_id is not None
    local = {"carol@example.org": RecipientOutcome(QueueStatus.DELIVERED, "250 here")}
    made = await store.add_submission(
        user_id,
        NewSubmission(
            identity_id=own.id,
            blob_id="b" * 64,
            thread_id="T1",
            envelope={"rcptTo": []},
            send_at=datetime.now(UTC),
            trace_id="t1",
            local=local,
        ),
    )
    assert made.queue_id == queue_id and made.undo_status is UndoStatus.FINAL
    assert made.recipients["bob@example.net"].status is QueueStatus.QUEUED
    assert made.recipients["carol@example.org"] == local["carol@example.org"]
    [queued] = await store.queued_messages([queue_id])
    [rcpt] = queued.envelope.recipients
    await store.update_queue_recipients(
        [
            QueuedRecipient(
                rcpt.address,
                id=rcpt.id,
                status=QueueStatus.FAILED,
                last_error="550 5.1.1 no",
                next_attempt=datetime.now(UTC),
            )
        ]
    )
    state = await store.account_state(user_id)
    await store.remove_queued(queue_id)
    [kept] = await store.submissions(user_id, [made.id])
    assert kept.queue_id is None
    assert kept.recipients["bob@example.net"] == RecipientOutcome(
        QueueStatus.FAILED, "550 5.1.1 no"
    )
    changes = await store.submission_changes(user_id, state)
    assert changes.updated == (str(made.id),)
    await store.remove_submission(user_id, made.id)
    assert await store.submissions(user_id) == []
    changes = await store.submission_changes(user_id, changes.state)
    assert changes.destroyed == (str(made.id),)
