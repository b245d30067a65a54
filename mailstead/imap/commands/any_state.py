"""Commands valid in every state: CAPABILITY, NOOP, LOGOUT (RFC 9051 §6.1), ID (RFC 2971)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.imap.parse.commands import Command, Id
from mailstead.imap.states import State

if TYPE_CHECKING:
    from mailstead.imap.session import Reply, Session


async def capability(session: Session, cmd: Command) -> Reply:
    from mailstead.imap.session import Reply

    session.untagged(f"CAPABILITY {session.capabilities()}")  # RFC 9051 §6.1.1
    return Reply(text="CAPABILITY completed")


async def noop(session: Session, cmd: Command) -> Reply:
    """RFC 9051 §6.1.2: does nothing, which lets pending updates out (the session flushes)."""
    from mailstead.imap.session import Reply

    return Reply(text="NOOP completed")


async def check(session: Session, cmd: Command) -> Reply:
    """RFC 3501 §6.4.1 CHECK (rev1 only; removed in rev2): a NOOP for us, writes are durable."""
    from mailstead.imap.session import Reply

    return Reply(text="CHECK completed")


async def logout(session: Session, cmd: Command) -> Reply:
    """RFC 9051 §6.1.3: BYE, then the tagged OK, then close."""
    from mailstead.imap.session import Reply

    session.untagged("BYE Logging out")
    session.unselect()
    session.state = State.LOGOUT
    return Reply(text="LOGOUT completed")


async def id_command(session: Session, cmd: Command) -> Reply:
    """RFC 2971 §3.1: the server may answer NIL, and does: naming the software and its
    version only helps fingerprinting (the same spirit as SMTP VRFY never confirming a
    user). What the client says about itself is logged."""
    from mailstead.imap.session import Reply

    args = cmd.args
    assert isinstance(args, Id)
    if args.params:
        session.log.info("client id: %s", ", ".join(f"{k}={v}" for k, v in args.params)[:300])
    session.untagged("ID NIL")
    return Reply(text="ID completed")
