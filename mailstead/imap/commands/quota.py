"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA, for the storage quota an
administrator gives each account (``mailstead user quota``) and the store enforces.

An account with a limit has one quota root, :data:`QUOTA_ROOT`, that governs all of its
mailboxes; its one resource is STORAGE (§5.1, advertised as ``QUOTA=RES-STORAGE``). An
account without a limit (quota 0) is in no quota root: GETQUOTAROOT names none and sends no
QUOTA response (§4.2.2 allows a QUOTAROOT response with the mailbox alone), and GETQUOTA of
the root name is NO. Limits are not set over IMAP: QUOTASET is not advertised.

Over-quota APPEND and COPY fail with ``NO [OVERQUOTA]`` (§4.3.1): the store raises
QuotaExceeded and the session maps it (``error_reply`` in ``imap.replies``). MOVE stays
within the one quota root and changes no usage, so it never fails for quota.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.core.errors import InvalidName, NotFound
from mailstead.imap import access, response
from mailstead.imap.parse.commands import Command, GetQuota, MailboxArg, SetQuota
from mailstead.imap.replies import Reply, done, no
from mailstead.store.models import User

if TYPE_CHECKING:
    from mailstead.imap.session import Session

#: The name of an account's quota root. Quota root names are opaque strings (§3.2); this is
#: the name Dovecot gives its default root, so clients show the string they know.
QUOTA_ROOT = "User quota"

KIB = 1024


def storage(user: User) -> tuple[int, int]:
    """STORAGE (usage, limit) in units of 1024 octets (RFC 9208 §5.1). The store counts
    octets; usage rounds up, so an account holding anything never reads as empty, and the
    limit rounds down, so a client is never shown room that is not there."""
    return -(-user.used_bytes // KIB), user.quota_bytes // KIB


def quota_response(user: User) -> bytes:
    """``QUOTA "User quota" (STORAGE usage limit)`` (RFC 9208 §4.2.1)."""
    usage, limit = storage(user)
    return b"QUOTA " + response.string(QUOTA_ROOT) + f" (STORAGE {usage} {limit})".encode()


async def _account(session: Session, user: User) -> User:
    """The account as it is now: usage changes with every APPEND, EXPUNGE and delivery, and
    the administrator may change the limit while the session runs."""
    return await session.store.get_user(user.id)


async def getquotaroot(session: Session, cmd: Command[MailboxArg], user: User) -> Reply:
    """RFC 9208 §4.1.2: the quota roots of a mailbox, then a QUOTA response for each. The
    name need not be that of an existing mailbox: the answer is the root a mailbox of that
    name would be created under, the account's."""
    name = cmd.args.name
    where = await access.locate(session, user, name)
    try:
        await session.store.get_mailbox(where.owner_id, where.local)
    except NotFound:
        pass
    except InvalidName as exc:
        raise no("Invalid mailbox name", "CANNOT") from exc
    account = await _account(session, user)
    line = b"QUOTAROOT " + session.mailbox_name(name)
    if not where.own:
        # Another account's mailbox counts against that account's quota, which is not
        # this user's to see: no root of this user's (RFC 9208 §3.2 allows none).
        session.untagged(line)
    elif account.quota_bytes:
        session.untagged(line + b" " + response.string(QUOTA_ROOT))
        session.untagged(quota_response(account))
    else:
        session.untagged(line)  # no limit, no root (§4.2.2)
    return done("GETQUOTAROOT completed")


async def getquota(session: Session, cmd: Command[GetQuota], user: User) -> Reply:
    """RFC 9208 §4.1.1: the QUOTA response of a root; NO for a root that does not exist,
    which is also the account's own root name when it has no limit."""
    account = await _account(session, user)
    if cmd.args.root != QUOTA_ROOT or not account.quota_bytes:
        raise no("No such quota root", "NONEXISTENT")
    session.untagged(quota_response(account))
    return done("GETQUOTA completed")


async def setquota(session: Session, cmd: Command[SetQuota], user: User) -> Reply:
    """RFC 9208 §4.1.3: SETQUOTA belongs to servers that advertise QUOTASET, and mailstead
    does not: limits are the administrator's (``mailstead user quota``). NOPERM (RFC 5530
    §3): this user may not carry out the operation. The arguments were parsed, so a
    malformed command is still BAD."""
    raise no("Quotas are set by the administrator, not over IMAP", "NOPERM")
