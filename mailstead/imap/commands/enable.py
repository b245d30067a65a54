"""ENABLE (RFC 5161): switch on extensions that change how the server talks to this client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.imap.parse.commands import Command, Enable
from mailstead.imap.replies import Reply, done

if TYPE_CHECKING:
    from mailstead.imap.session import Session

# What ENABLE can switch on (RFC 9051 §6.3.1, RFC 6855 §3, RFC 7162 §3.1, §3.2.3).
ENABLEABLE = ("IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC")


async def enable(session: Session, cmd: Command[Enable]) -> Reply:
    """RFC 5161 §3.1: unknown capabilities are ignored; ENABLED lists what is newly on."""
    newly: list[str] = []
    for cap in cmd.args.capabilities:
        if cap in ENABLEABLE and cap not in session.enabled and cap not in newly:
            newly.append(cap)
    session.untagged(
        "ENABLED" + "".join(" " + ("IMAP4rev2" if c == "IMAP4REV2" else c) for c in newly)
    )
    for cap in newly:
        if cap == "CONDSTORE":
            session.enable_condstore()  # and HIGHESTMODSEQ when a mailbox is selected
        else:
            session.enabled.add(cap)
        if cap == "QRESYNC":
            session.enable_condstore()  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    return done("ENABLE completed")
