"""Commands valid in every state: CAPABILITY, NOOP, LOGOUT (RFC 9051 §6.1), ID (RFC 2971),
and CHECK (RFC 3501 §6.4.1), a NOOP of the selected state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.imap.parse.commands import Command, Id
from mailstead.imap.replies import Reply, done
from mailstead.imap.states import Selected

if TYPE_CHECKING:
    from mailstead.imap.session import Session


async def capability(session: Session, cmd: Command[None]) -> Reply:
    session.untagged(f"CAPABILITY {session.capabilities()}")  # RFC 9051 §6.1.1
    return done("CAPABILITY completed")


async def noop(session: Session, cmd: Command[None]) -> Reply:
    """RFC 9051 §6.1.2: does nothing, which lets pending updates out (the session flushes)."""
    return done("NOOP completed")


async def check(session: Session, cmd: Command[None], selected: Selected) -> Reply:
    """RFC 3501 §6.4.1 CHECK (rev1 only; removed in rev2): a NOOP for us, writes are durable."""
    return done("CHECK completed")


async def logout(session: Session, cmd: Command[None]) -> Reply:
    """RFC 9051 §6.1.3: BYE, then the tagged OK, then close."""
    session.untagged("BYE Logging out")
    session.logout()
    return done("LOGOUT completed")


async def id_command(session: Session, cmd: Command[Id]) -> Reply:
    """RFC 2971 §3.1: the server may answer NIL, and does: naming the software and its
    version only helps fingerprinting (the same spirit as SMTP VRFY never confirming a
    user). What the client says about itself is logged."""
    if cmd.args.params:
        pairs = ", ".join(f"{k}={v}" for k, v in cmd.args.params)
        session.log.info("client id: %s", pairs[:300])
    session.untagged("ID NIL")
    return done("ID completed")
