"""QUIT (RFC 1939 §6): before login it just closes; after, the UPDATE state commits."""

from __future__ import annotations

from mailstead.core.errors import StoreError
from mailstead.core.types import Pop3Policy
from mailstead.pop3 import protocol as wire
from mailstead.pop3.errors import ResponseCode
from mailstead.pop3.session import Session
from mailstead.pop3.states import Authorization, Transaction, Update


async def quit_(s: Session, state: Authorization | Transaction, _: None) -> None:
    """RFC 1939 §6: in TRANSACTION, enter UPDATE and commit the DELE marks, all or nothing
    (RFC 1939 §4: QUIT before login just closes)."""
    s.finished = True
    match state:
        case Authorization():
            s.send(wire.ok("bye"))
        case Transaction(user_id=user_id, maildrop=maildrop, policy=policy):
            s.state = Update(user_id)
            try:
                done = await maildrop.commit(policy)
            except (StoreError, OSError) as exc:
                s.log.error("QUIT commit failed, nothing changed: %s", exc)
                s.send(wire.err("some deleted messages not removed, nothing was changed",
                                ResponseCode.SYS_TEMP))
                return
            if done:
                s.log.info("QUIT committed %d message(s) with policy %s", done, policy)
            # Durable before +OK: the store's write returns only after commit and fsync.
            outcome = "deleted" if policy is Pop3Policy.DELETE else policy.value
            s.send(wire.ok(f"bye, {done} message(s) {outcome}"))
