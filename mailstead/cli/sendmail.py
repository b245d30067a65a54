"""``mailstead sendmail``: mail from programs on this machine (cron, PHP, system tools).

The message goes through the same :class:`~mailstead.delivery.deliver.Deliverer` as mail
received by SMTP (aliases, groups, quota, trace headers, DKIM signing, the outbound
queue), in this process, on the mailstore opened directly as the admin commands open it
(decision 0014): local recipients have it in their mailbox, and remote ones in the queue,
before the command exits, whether the server runs or not. A running server's scheduler
takes queued mail at its next poll (``delivery.poll_seconds``).

All or nothing: every recipient is checked before anything is stored, so a non-zero exit
status means no copy went anywhere and the caller may simply try again later (75).
Failures are one line on stderr, ``mailstead sendmail: ...``, and a sysexits.h status.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import click

from mailstead.cli.admin import CliState
from mailstead.cli.sendmail_message import (
    EX_CANTCREAT,
    EX_CONFIG,
    EX_DATAERR,
    EX_NOPERM,
    EX_NOUSER,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    Originator,
    Prepared,
    Request,
    SendmailError,
    parse_command_line,
    prepare,
)
from mailstead.cli.serve import build_deliverer, open_store
from mailstead.config.schema import Settings, format_size
from mailstead.core.errors import (
    ConfigError,
    InvalidName,
    NotFound,
    StorageUnavailable,
    StoreError,
)
from mailstead.core.log import setup_logging
from mailstead.core.types import Address
from mailstead.delivery.deliver import Envelope, TraceInfo
from mailstead.delivery.router import DeliveryError, Router
from mailstead.store.interfaces import Store

PROG = "mailstead sendmail"


@dataclass(frozen=True, slots=True)
class Invoker:
    """The Unix user who ran the command (before any change of user)."""

    uid: int
    login: str
    gecos: str

    @classmethod
    def current(cls) -> Invoker:
        uid = os.getuid()
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:  # a uid without a passwd entry (a container): its number
            return cls(uid, str(uid), "")
        return cls(uid, entry.pw_name, entry.pw_gecos.split(",", 1)[0].strip())


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`submit` did: the message's id and how many recipients it has."""

    trace_id: str
    recipients: int


def originator(request: Request, invoker: Invoker, settings: Settings) -> Originator:
    """-f's address, else the invoking user at the configured hostname (RFC 5322 §3.6.2:
    From: names the author; sendmail uses the login when there is no -f)."""
    try:
        own = Address.parse(f"{invoker.login}@{settings.hostname}")
    except InvalidName as exc:
        raise SendmailError(EX_CONFIG, f"cannot make a sender address: {exc}") from None
    if request.sender is None:
        return Originator(own, own, request.full_name or invoker.gecos or None,
                          settings.hostname)
    if request.sender == "":  # the null sender: a bounce; From: still names someone
        return Originator(None, own, request.full_name, settings.hostname)
    sender = Address.parse(request.sender)
    return Originator(sender, sender, request.full_name, settings.hostname)


def read_message(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` octets; one more is an error, so a runaway pipe stops early."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise SendmailError(
            EX_DATAERR, f"the message is larger than limits.max_message_size "
            f"({format_size(limit)})")
    return data


async def submit(store: Store, settings: Settings, prepared: Prepared, request: Request,
                 sender: Address | None, invoker: Invoker) -> Outcome:
    """Check every recipient, then commit once (stored and/or queued durably)."""
    router = Router(store, settings.smtp.plus_separator)
    deliverer = build_deliverer(settings, store, router)
    addresses = [Address.parse(r) for r in prepared.recipients]
    smtputf8 = any(not str(a).isascii() for a in addresses) or (
        sender is not None and not str(sender).isascii())
    envelope = Envelope(
        sender, body="8BITMIME" if not prepared.data.isascii() else None, smtputf8=smtputf8,
        ret=request.ret, envid=request.envid, size=len(prepared.data),
    )
    trace = TraceInfo(settings.hostname, helo="", client_ip="", esmtp=False,
                      auth_user=f"{invoker.login} (sendmail, uid {invoker.uid})",
                      session_id=f"sendmail-{os.getpid()}", local_uid=invoker.uid)
    # The local submitter is trusted as an authenticated user is: it may relay, and its
    # mail is signed for any hosted domain (it can read the keys itself).
    delivery = deliverer.start(envelope, trace, relay_allowed=True, trusted=True)
    for address in addresses:
        try:
            await delivery.add_rcpt(address, request.notify)
        except DeliveryError as exc:
            raise SendmailError(_status(exc), f"<{address}>: {exc}") from None
    try:
        trace_id = await delivery.commit(prepared.data)
    except DeliveryError as exc:
        raise SendmailError(_status(exc), str(exc)) from None
    return Outcome(trace_id, len(addresses))


def _status(error: DeliveryError) -> int:
    """The sysexits status of an SMTP outcome (RFC 3463 classes)."""
    if error.temporary:
        return EX_TEMPFAIL
    if error.enhanced.startswith("5.1."):  # bad destination mailbox address
        return EX_NOUSER
    if error.enhanced.startswith("5.4.6"):  # a loop: the message itself is wrong
        return EX_DATAERR
    return EX_UNAVAILABLE


def drop_privileges(settings: Settings) -> None:
    """Run as the data directory's owner when started by root (cron's root jobs, system
    tools): files the store creates must stay the server's, never root's (decision 0014)."""
    if os.geteuid() != 0:
        return
    try:
        owner = settings.data_dir.stat()
    except OSError:
        return  # no data directory: open_store reports it
    if owner.st_uid == 0:
        return
    os.setgroups([])
    os.setgid(owner.st_gid)
    os.setuid(owner.st_uid)


def run(argv: Sequence[str], state: CliState, stdin: BinaryIO) -> int:
    """The whole command; returns the exit status, errors written as one line."""
    invoker = Invoker.current()
    try:
        request = parse_command_line(argv)
        if not request.recipients and not request.extract:
            raise SendmailError(EX_USAGE, "no recipients: name them as arguments, or use -t")
        try:
            settings = state.settings()
        except ConfigError as exc:
            raise SendmailError(EX_CONFIG, str(exc)) from None
        origin = originator(request, invoker, settings)
        limit = settings.limits.max_message_size
        raw = read_message(stdin, limit)
        prepared = prepare(raw, request, origin, datetime.now().astimezone())
        if len(prepared.data) > limit:
            raise SendmailError(
                EX_DATAERR, f"the message is larger than limits.max_message_size "
                f"({format_size(limit)}) with its line ends as CRLF")
        if len(prepared.recipients) > settings.smtp.max_recipients:
            raise SendmailError(
                EX_DATAERR, f"{len(prepared.recipients)} recipients; smtp.max_recipients "
                f"allows {settings.smtp.max_recipients}")
        drop_privileges(settings)
        setup_logging("warning")  # what delivery logs about this message, on stderr
        outcome = asyncio.run(_open_and_submit(settings, prepared, request, origin.sender,
                                               invoker))
    except SendmailError as exc:
        _say(exc.message)
        return exc.status
    except KeyboardInterrupt:
        _say("interrupted; nothing was sent")
        return EX_TEMPFAIL
    except Exception as exc:  # the last line of defence: a status and a line, no traceback
        if state.debug:
            traceback.print_exc()
        _say(f"internal error: {type(exc).__name__}: {exc}")
        return EX_SOFTWARE
    if request.verbose:
        _say(f"id {outcome.trace_id}: {outcome.recipients} recipient"
             f"{'' if outcome.recipients == 1 else 's'} accepted")
    return 0


async def _open_and_submit(settings: Settings, prepared: Prepared, request: Request,
                           sender: Address | None, invoker: Invoker) -> Outcome:
    try:
        async with open_store(settings, create=False) as store:
            return await submit(store, settings, prepared, request, sender, invoker)
    except PermissionError as exc:
        raise SendmailError(
            EX_NOPERM, f"cannot open the mailstore in {settings.data_dir}: {exc.strerror}; "
            "run as root or as the data directory's owner") from None
    except NotFound as exc:
        raise SendmailError(EX_UNAVAILABLE, str(exc)) from None
    except StorageUnavailable as exc:
        raise SendmailError(EX_TEMPFAIL, f"the mailstore is unavailable: {exc}") from None
    except StoreError as exc:
        raise SendmailError(EX_TEMPFAIL, f"storing the message failed: {exc}") from None
    except OSError as exc:
        raise SendmailError(EX_CANTCREAT, f"cannot open the mailstore in "
                                          f"{settings.data_dir}: {exc}") from None


def _say(line: str) -> None:
    print(f"{PROG}: {' '.join(line.split())}", file=sys.stderr, flush=True)


class VerbatimCommand(click.Command):
    """sendmail's command line is not click's: its words are passed on untouched, ``--``
    included (click would drop it), for :func:`parse_command_line`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args == ["--help"]:
            click.echo(ctx.get_help())
            ctx.exit(0)
        ctx.params["argv"] = tuple(args)
        return []

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[-t] [-i] [-f SENDER] [-F NAME] [OPTIONS] [--] [RECIPIENT]..."]


@click.command("sendmail", cls=VerbatimCommand, add_help_option=False)
@click.pass_context
def sendmail(ctx: click.Context, /, **params: Any) -> None:
    """Deliver or queue the message on stdin, like /usr/sbin/sendmail.

    Recipients are the arguments; -t adds those of To:, Cc: and Bcc: (Bcc: is removed).
    -f SENDER sets the envelope sender (default: your login at the hostname), -F NAME the
    name in an added From:, -i or -oi lets a lone "." be text. -oem, -oep, -od*, -B, -v,
    -m, -n, -U, -G, -L and -h are accepted; see the user guide. Exit status from
    sysexits.h: 0 sent, 64 usage, 65 bad message, 67 unknown user, 75 try again later.
    """
    state = ctx.find_object(CliState) or CliState()
    ctx.exit(run(params["argv"], state, sys.stdin.buffer))
