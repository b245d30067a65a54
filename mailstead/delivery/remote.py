"""One SMTP client session to one remote host, reused for several messages.

The client is ours, on the same pieces as our server (docs/decisions/0006): a
:class:`~mailstead.net.stream.Stream` from :func:`mailstead.net.client.connect` (bounded
reads, deadlines, coalesced writes, STARTTLS), and the sans-I/O
:class:`~mailstead.wire.smtp.ReplyParser`, which turns whatever bytes arrived into whole
replies and holds the limits: reply line length and lines per reply. A malformed reply, a
reply over the limits, a timeout or a dropped connection is a :class:`RemoteError`, never
another exception, and the connection is not used again.

:meth:`RemoteSession.connect` opens the connection, reads the greeting, says EHLO (HELO
when EHLO is refused), negotiates TLS by policy and authenticates when the route says so.
:meth:`RemoteSession.send` runs one mail transaction and returns the remote server's reply
*per recipient*; what to do with those replies (retry, bounce, done) is the scheduler's
business. After a transaction the session can carry the next message (RFC 5321 §3.3: a
new MAIL may follow a completed transaction; after a failed one we send RSET).

What the client honours, from the EHLO reply:

- PIPELINING (RFC 2920): MAIL, every RCPT and DATA go out in one write, and the replies
  are read in order; without it, one command at a time, stopping when the transaction
  cannot go on.
- CHUNKING (RFC 3030): the body goes as one ``BDAT <n> LAST`` chunk, exactly as stored,
  instead of DATA with dot-stuffing and a scan for the final dot. BDAT is sent only after
  the RCPT replies are in, so a message none of whose recipients was accepted is not sent
  at all (the same two round trips as DATA).
- SIZE (RFC 1870): ``SIZE=n`` on MAIL; a message above the advertised limit is a
  permanent failure (``5.3.4``) without sending it.
- SMTPUTF8 (RFC 6531 §3.4): a message that needs it, to a server without it, fails
  permanently (``5.6.7``) with a reason saying so; we do not downgrade addresses.
- 8BITMIME (RFC 6152): ``BODY=8BITMIME`` when the message was submitted as 8-bit and
  really has 8-bit octets; to a server without 8BITMIME that is a permanent ``5.6.3``
  (we do not convert to 7-bit).
- DSN (RFC 3461 §6.2): NOTIFY/ORCPT on RCPT and RET/ENVID on MAIL pass on, so the remote
  server takes over notification; without DSN a ``NOTIFY=SUCCESS`` earns a "relayed" DSN.
- AUTH (RFC 4954) for a smarthost: PLAIN (RFC 4616), or LOGIN when that is all it offers.

A ``421`` at any point means the server is closing the connection (RFC 5321 §3.8): the
transaction fails temporarily and the session is not reused.

TLS: ``opportunistic`` encrypts when STARTTLS is offered, without certificate checks
(RFC 7435: better than plaintext, no worse); if the server refuses STARTTLS the session
goes on in plaintext, and if the handshake fails it reconnects once in plaintext.
``required`` fails temporarily (``4.7.10``) when TLS is not offered; ``implicit`` is TLS
from the first byte (a smarthost on 465); ``none`` never encrypts. The TLS version and
cipher used are recorded with each delivery.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mailstead.net.client import client_context
from mailstead.net.client import connect as open_connection
from mailstead.net.stream import IdleTimeout, Stream, StreamError, TLSHandshakeError
from mailstead.wire.smtp import (
    Extensions,
    Reply,
    ReplyParser,
    WireError,
    canonical_lines,
    dot_stuff,
    xtext_encode,
)

log = logging.getLogger("mailstead.delivery.remote")

#: The made-up reply for a command a non-pipelining client did not send, because the
#: transaction could not go on (MAIL refused, or no recipient accepted before DATA).
_NOT_SENT = Reply(503, "5.5.1", "not sent")
#: QUIT is a courtesy; a server that does not answer it is not waited for long.
_QUIT_TIMEOUT = 5.0


class ClientTLS(StrEnum):
    """How an outbound session protects itself."""

    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, no certificate check (RFC 7435)
    REQUIRED = "required"  # STARTTLS or no delivery (4.7.10)
    IMPLICIT = "implicit"  # TLS from the first byte (RFC 8314, a smarthost on 465)
    NONE = "none"  # plaintext


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    """How to protect a session; ``server_name`` is the name sent as SNI and checked when
    ``verify`` is set, ``cafile`` replaces the system's CA bundle."""

    mode: ClientTLS = ClientTLS.OPPORTUNISTIC
    verify: bool = False
    server_name: str | None = None
    cafile: str | None = None

    def __post_init__(self) -> None:
        # Accept the configuration's spelling ("required") as well as the member.
        object.__setattr__(self, "mode", ClientTLS(self.mode))

    def context(self) -> ssl.SSLContext:
        return client_context(verify=self.verify, cafile=self.cafile)


class RemoteError(Exception):
    """The session or the whole transaction failed; every recipient in it shares the fate.

    ``reply`` is the remote's reply when there was one. ``next_host`` says another MX host
    may do better (connection refused, 4xx greeting). ``after_data`` marks a failure after
    the message data went out without a reply: the remote may have the message (RFC 5321
    §4.1.1.4 and §6.1), so a retry can duplicate it; docs/outbound.md says so.
    """

    def __init__(
        self,
        reason: str,
        *,
        reply: Reply | None = None,
        temporary: bool = True,
        status: str | None = None,
        next_host: bool = False,
        after_data: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply
        self.temporary = (reply.is_temporary if reply is not None and status is None
                          else temporary)
        self.status = status or (reply.status if reply is not None else
                                 ("4.4.1" if temporary else "5.4.1"))
        self.next_host = next_host
        self.after_data = after_data


@dataclass(frozen=True, slots=True)
class OutRecipient:
    address: str
    notify: tuple[str, ...] = ()
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One transaction's worth: the envelope (with RFC 3461/6152/6531 data) and the body."""

    mail_from: str
    recipients: Sequence[OutRecipient]
    data: bytes
    envid: str | None = None
    ret: str | None = None
    body: str | None = None
    smtputf8: bool = False

    @property
    def needs_smtputf8(self) -> bool:
        """RFC 6531 §3.4: non-ASCII addresses or headers need an SMTPUTF8 server."""
        return self.smtputf8 or not self.mail_from.isascii() or any(
            not r.address.isascii() for r in self.recipients)

    @property
    def eight_bit(self) -> bool:
        """Submitted as 8BITMIME (RFC 6152) and really carrying 8-bit octets."""
        return (self.body or "").upper() == "8BITMIME" and not self.data.isascii()


@dataclass(slots=True)
class TransactionResult:
    """The final reply for each recipient (RCPT refusal or the reply to the message data)."""

    replies: dict[str, Reply] = field(default_factory=dict)
    dsn_passed_on: bool = False  # the remote supports DSN and got our NOTIFY/ORCPT


class _ConnectionLost(Exception):
    """The connection is unusable: dropped, timed out, or out of step (a malformed reply).
    Each phase turns it into the RemoteError that fits it."""

    def __init__(self, reason: str, status: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _TLSFailed(Exception):
    """The STARTTLS handshake failed; opportunistic TLS reconnects without it."""


class RemoteSession:
    """A connected, greeted (and maybe encrypted and authenticated) client session."""

    def __init__(self, stream: Stream, host: str, address: str, port: int, *,
                 command_timeout: float, data_timeout: float) -> None:
        self.stream = stream
        self.host = host
        self.address = address
        self.port = port
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.extensions = Extensions()
        self.messages_sent = 0
        self.broken = False
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self._parser = ReplyParser()
        self._replies: collections.deque[Reply] = collections.deque()

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        host: str,
        address: str,
        port: int,
        *,
        helo: str,
        tls: TLSPolicy,
        auth: tuple[str, str] | None = None,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        data_timeout: float = 600.0,
    ) -> RemoteSession:
        """Raises :class:`RemoteError` (``next_host`` set when another MX may work)."""
        try:
            return await cls._connect(host, address, port, helo, tls, auth,
                                      connect_timeout, command_timeout, data_timeout)
        except _TLSFailed as exc:
            if tls.mode is not ClientTLS.OPPORTUNISTIC:
                raise RemoteError(f"TLS handshake with {host}[{address}] failed: {exc}",
                                  status="4.7.5", next_host=True) from None
            # RFC 7435 §3: a failed opportunistic upgrade falls back to what worked before.
            log.info("TLS with %s[%s] failed (%s); retrying without TLS", host, address, exc)
            return await cls._connect(host, address, port, helo,
                                      dataclasses.replace(tls, mode=ClientTLS.NONE), auth,
                                      connect_timeout, command_timeout, data_timeout)

    @classmethod
    async def _connect(
        cls, host: str, address: str, port: int, helo: str, tls: TLSPolicy,
        auth: tuple[str, str] | None, connect_timeout: float, command_timeout: float,
        data_timeout: float,
    ) -> RemoteSession:
        where = f"{host}[{address}]:{port}"
        implicit = tls.mode is ClientTLS.IMPLICIT
        try:
            stream = await open_connection(
                address, port, timeout=connect_timeout,
                tls=tls.context() if implicit else None,
                server_hostname=tls.server_name or host, session_prefix="smtp-out",
                logger=log, idle_timeout=command_timeout, write_timeout=data_timeout)
        except TLSHandshakeError as exc:
            raise RemoteError(f"TLS handshake with {where} failed: {exc}", status="4.7.5",
                              next_host=True) from None
        except StreamError as exc:
            raise RemoteError(f"connect to {where} failed: {exc}", status="4.4.1",
                              next_host=True) from None
        return await cls.start(stream, host, address, port, helo=helo, tls=tls, auth=auth,
                               command_timeout=command_timeout, data_timeout=data_timeout)

    @classmethod
    async def start(
        cls,
        stream: Stream,
        host: str,
        address: str,
        port: int,
        *,
        helo: str,
        tls: TLSPolicy,
        auth: tuple[str, str] | None = None,
        command_timeout: float = 300.0,
        data_timeout: float = 600.0,
    ) -> RemoteSession:
        """The session over a connected ``stream``: greeting, EHLO, STARTTLS, AUTH.

        Raises :class:`RemoteError`; the stream is closed then (politely, with QUIT, when
        the server is still talking to us).
        """
        session = cls(stream, host, address, port, command_timeout=command_timeout,
                      data_timeout=data_timeout)
        try:
            await session._open(helo, tls, auth)
        except _ConnectionLost as exc:
            session._abandon()
            raise RemoteError(f"host {session.where}: {exc.reason}", status=exc.status,
                              next_host=True) from None
        except (RemoteError, _TLSFailed):
            await session.close()
            raise
        except BaseException:
            session._abandon()
            raise
        return session

    async def _open(self, helo: str, tls: TLSPolicy, auth: tuple[str, str] | None) -> None:
        # RFC 5321 §4.5.3.2.1: the greeting may take up to 5 minutes.
        greeting = await self._read(self.command_timeout)
        if greeting.code != 220:
            if greeting.is_error:
                # RFC 5321 §3.1: 554 means no SMTP service here; 4yz, try another host.
                raise RemoteError(f"host {self.where} refused the connection: {greeting}",
                                  reply=greeting, next_host=greeting.is_temporary)
            raise RemoteError(f"host {self.where} greeted with {greeting}", status="4.5.0",
                              next_host=True)
        await self._hello(helo)
        if tls.mode in (ClientTLS.OPPORTUNISTIC, ClientTLS.REQUIRED):
            await self._starttls(helo, tls)
        self._note_tls()
        if auth is not None:
            await self._authenticate(*auth)

    async def _hello(self, helo: str) -> None:
        reply = await self._command(f"EHLO {helo}")
        if reply.code == 250:
            self.extensions = Extensions.from_ehlo(reply)
            return
        if not reply.is_permanent:
            raise RemoteError(f"host {self.where} refused EHLO: {reply}", reply=reply,
                              next_host=True)
        # RFC 5321 §3.2 and §4.1.4: a server without the extensions refuses EHLO with a
        # 5yz and takes HELO.
        reply = await self._command(f"HELO {helo}")
        if reply.code != 250:
            raise RemoteError(f"host {self.where} refused HELO: {reply}", reply=reply)
        self.extensions = Extensions()

    async def _starttls(self, helo: str, tls: TLSPolicy) -> None:
        """RFC 3207. Returns in plaintext only where the policy allows it."""
        if "STARTTLS" not in self.extensions:
            if tls.mode is ClientTLS.REQUIRED:
                raise RemoteError(
                    f"TLS is required for this destination, but {self.where} does not offer "
                    "STARTTLS", status="4.7.10", next_host=True)
            return
        reply = await self._command("STARTTLS")
        if reply.code != 220:
            if tls.mode is ClientTLS.REQUIRED:
                raise RemoteError(f"host {self.where} refused STARTTLS: {reply}", reply=reply,
                                  status="4.7.10", next_host=True)
            # RFC 3207 §4: after a refusal the session goes on as it was, unencrypted.
            self.stream.log.info("STARTTLS refused (%s); going on without TLS", reply)
            return
        if self._replies or self._parser.pending:
            # RFC 3207 §4.2: nothing received before the handshake may count as said over
            # TLS (a man in the middle could have injected it).
            self.stream.log.warning("dropped replies the server sent before the TLS "
                                    "handshake")
            self._replies.clear()
            self._parser.reset()
        try:
            await self.stream.start_client_tls(tls.context(), tls.server_name or self.host,
                                               handshake_timeout=self.command_timeout)
        except TLSHandshakeError as exc:
            self.broken = True
            raise _TLSFailed(str(exc)) from None
        # RFC 3207 §4.2: forget what the server said before TLS and ask again.
        self.extensions = Extensions()
        await self._hello(helo)

    async def _authenticate(self, user: str, password: str) -> None:
        """RFC 4954: PLAIN (RFC 4616) with an initial response, or LOGIN when only that is
        offered. A refusal defers (``4.7.8``): credentials are the operator's to fix, and
        the mail should wait for that rather than bounce."""
        mechanisms = self.extensions.auth_mechanisms
        if "PLAIN" in mechanisms:
            token = f"\0{user}\0{password}".encode()
            reply = await self._command("AUTH PLAIN " + base64.b64encode(token).decode())
        elif "LOGIN" in mechanisms:
            reply = await self._command("AUTH LOGIN")
            for secret in (user, password):
                if reply.code != 334:
                    break
                reply = await self._command(base64.b64encode(secret.encode()).decode())
        else:
            offered = " ".join(sorted(mechanisms)) or "no AUTH at all"
            raise RemoteError(f"authentication at {self.where} is not possible: it offers "
                              f"{offered}, we speak PLAIN and LOGIN", status="4.7.8")
        if reply.code == 334:
            # A challenge we did not expect; RFC 4954 §4: "*" cancels the exchange.
            reply = await self._command("*")
        if reply.code != 235:
            raise RemoteError(f"authentication at {self.where} failed: {reply}", reply=reply,
                              status="4.7.8")

    def _note_tls(self) -> None:
        version, _, cipher = self.stream.tls_info.partition(" ")
        self.tls_version = version or None
        self.tls_cipher = cipher or None

    @property
    def where(self) -> str:
        return f"{self.host}[{self.address}]:{self.port}"

    @property
    def usable(self) -> bool:
        return not self.broken and not self.stream.at_eof

    @property
    def description(self) -> str:
        """For logs and delivery records: ``mx.example.org[192.0.2.1]:25 TLSv1.3``."""
        tls = f" {self.tls_version}" if self.tls_version else ""
        return f"{self.where}{tls}"

    async def close(self) -> None:
        """QUIT politely (RFC 5321 §4.1.1.10), then close whatever the answer."""
        if self.usable:
            with contextlib.suppress(_ConnectionLost):
                await self._command("QUIT", timeout=min(_QUIT_TIMEOUT, self.command_timeout))
        self.broken = True
        await self.stream.close(timeout=_QUIT_TIMEOUT)

    def _abandon(self) -> None:
        """The connection is out of step or gone: never write to it again."""
        self.broken = True
        self.stream.abort()

    # -- replies -------------------------------------------------------------------------
    async def _read(self, timeout: float) -> Reply:
        """The next reply, whole, within ``timeout`` seconds; pipelined replies that arrived
        together wait in order. Raises :class:`_ConnectionLost`."""
        if self._replies:
            return self._replies.popleft()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout  # for the whole reply, however it is split
        try:
            data = b""  # first: bad bytes already received fail at once
            while not self._replies:
                self._replies.extend(self._parser.feed(data))
                if not self._replies:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError
                    # One timer per wait, armed by the stream only when it must wait.
                    data = await self.stream.read_some(timeout=remaining)
        except (TimeoutError, IdleTimeout):
            raise _ConnectionLost(f"no reply within {timeout:g}s", "4.4.2") from None
        except WireError as exc:
            raise _ConnectionLost(f"malformed reply: {exc}", "4.5.0") from None
        except StreamError as exc:
            raise _ConnectionLost(f"connection lost: {exc}", "4.4.2") from None
        return self._replies.popleft()

    async def _command(self, line: str, *, timeout: float | None = None) -> Reply:
        self.stream.write(line.encode("utf-8") + b"\r\n")
        return await self._read(self.command_timeout if timeout is None else timeout)

    # -- one transaction -----------------------------------------------------------------
    def _check_capabilities(self, message: OutMessage) -> None:
        """Refuse locally what the remote cannot take (raises a permanent RemoteError)."""
        if message.needs_smtputf8 and "SMTPUTF8" not in self.extensions:
            raise RemoteError(
                f"the message needs SMTPUTF8 (internationalised addresses or headers) and "
                f"{self.host} does not support it (RFC 6531)", temporary=False, status="5.6.7")
        if message.eight_bit and "8BITMIME" not in self.extensions:
            raise RemoteError(
                f"the message has 8-bit content and {self.host} does not support 8BITMIME "
                "(RFC 6152); it was not converted", temporary=False, status="5.6.3")
        limit = self.extensions.size_limit
        if limit and len(message.data) > limit:
            raise RemoteError(
                f"the message ({len(message.data)} bytes) is larger than {self.host} "
                f"accepts ({limit} bytes)", temporary=False, status="5.3.4")

    def _envelope(self, message: OutMessage) -> tuple[list[bytes], bool]:
        """MAIL and RCPT command lines, and whether DSN parameters went with them."""
        needs_utf8 = message.needs_smtputf8
        dsn = "DSN" in self.extensions
        mail = [f"MAIL FROM:<{message.mail_from}>"]
        if "SIZE" in self.extensions:
            mail.append(f"SIZE={len(message.data)}")  # RFC 1870 §6
        if message.eight_bit:
            mail.append("BODY=8BITMIME")  # RFC 6152 §3
        if needs_utf8:
            mail.append("SMTPUTF8")  # RFC 6531 §3.4
        if dsn and message.ret:
            mail.append(f"RET={message.ret.upper()}")  # RFC 3461 §4.3
        if dsn and message.envid:
            mail.append(f"ENVID={xtext_encode(message.envid)}")  # RFC 3461 §4.4
        commands = [" ".join(mail)]
        for rcpt in message.recipients:
            line = [f"RCPT TO:<{rcpt.address}>"]
            if dsn and rcpt.notify:
                line.append(f"NOTIFY={','.join(rcpt.notify)}")  # RFC 3461 §4.1
            if dsn and rcpt.orcpt:
                line.append(f"ORCPT={rcpt.orcpt}")  # RFC 3461 §4.2, kept as submitted
            commands.append(" ".join(line))
        encoding = "utf-8" if needs_utf8 else "ascii"
        out = []
        for command in commands:
            if any(c in command for c in "\r\n\x00"):
                raise RemoteError("refusing an address with control characters",
                                  temporary=False, status="5.1.3")
            out.append(command.encode(encoding) + b"\r\n")
        return out, dsn

    async def send(self, message: OutMessage) -> TransactionResult:
        """One transaction. Per-recipient replies in the result; a failure that hits every
        recipient (MAIL refused, DATA refused, connection lost) raises RemoteError."""
        if not self.usable:
            raise RemoteError(f"connection to {self.where} was lost", next_host=True)
        self._check_capabilities(message)
        envelope, dsn = self._envelope(message)
        chunking = "CHUNKING" in self.extensions
        data_sent = False
        try:
            commands = envelope if chunking else [*envelope, b"DATA\r\n"]
            replies = await self._exchange(commands, ends_with_data=not chunking)
            mail_reply = replies[0]
            rcpt_replies = replies[1 : 1 + len(message.recipients)]
            data_reply = None if chunking else replies[-1]
            result = TransactionResult(dsn_passed_on=dsn)
            accepted = []
            for rcpt, reply in zip(message.recipients, rcpt_replies, strict=True):
                if reply.is_positive:
                    accepted.append(rcpt.address)
                else:
                    result.replies[rcpt.address] = reply
            if not mail_reply.is_positive:
                await self._reset(data_reply)
                raise RemoteError(f"host {self.where} refused the sender: {mail_reply}",
                                  reply=mail_reply)
            if data_reply is not None and data_reply.code != 354:
                await self._reset(data_reply)
                if not accepted:
                    return result  # every RCPT was refused; their replies say why
                raise RemoteError(f"host {self.where} refused DATA: {data_reply}",
                                  reply=data_reply)
            if not accepted:
                if data_reply is not None:
                    # RFC 2920 §3.1: a server that said 354 with no valid recipient gets an
                    # empty message, which it must reject.
                    self.stream.write(b".\r\n")
                    await self._read(self.command_timeout)
                await self._reset(None)
                return result
            if chunking:
                # RFC 3030 §2: the chunk is the message as it is, no dot-stuffing, and its
                # size says where it ends.
                payload = canonical_lines(message.data)
                self.stream.write(b"BDAT %d LAST\r\n" % len(payload))
                self.stream.write(payload)
            else:
                self.stream.write(dot_stuff(message.data))
            data_sent = True
            await self.stream.drain(timeout=self.data_timeout)
            # RFC 5321 §4.5.3.2.6: up to 10 minutes for the reply to the end of data.
            final = await self._read(self.data_timeout)
        except _ConnectionLost as exc:
            self._abandon()
            after = " after the message data" if data_sent else ""
            raise RemoteError(f"host {self.where}: {exc.reason}{after}", status=exc.status,
                              after_data=data_sent) from None
        except StreamError as exc:  # the drain
            self._abandon()
            raise RemoteError(f"host {self.where}: connection lost after the message data "
                              f"({exc})", status="4.4.2", after_data=True) from None
        for address in accepted:
            result.replies[address] = final
        if final.code == 421:
            self._abandon()  # RFC 5321 §3.8: the server is closing the connection
        elif final.is_positive:
            self.messages_sent += 1
        else:
            await self._reset(None)
        return result

    async def _exchange(self, commands: list[bytes], *, ends_with_data: bool) -> list[Reply]:
        """MAIL, the RCPTs and maybe DATA: one reply per command, in order.

        With PIPELINING they go out in one write (RFC 2920 §3.1); without, one at a time,
        and once the transaction cannot go on (MAIL refused; DATA with no recipient
        accepted) the rest are not sent and get a made-up 503. A 421 ends the session
        (RFC 5321 §3.8): the server closes after it, so no further reply will come.
        """
        pipelining = "PIPELINING" in self.extensions
        if pipelining:
            self.stream.write(b"".join(commands))
        replies: list[Reply] = []
        for index, command in enumerate(commands):
            if not pipelining:
                is_data = ends_with_data and index == len(commands) - 1
                if (replies and not replies[0].is_positive) or (
                        is_data and not any(r.is_positive for r in replies[1:])):
                    replies.append(_NOT_SENT)
                    continue
                self.stream.write(command)
            reply = await self._read(self.command_timeout)
            if reply.code == 421:
                self._abandon()
                raise RemoteError(f"host {self.where} is closing the connection: {reply}",
                                  reply=reply)
            replies.append(reply)
        return replies

    async def _reset(self, data_reply: Reply | None) -> None:
        """RSET after a failed transaction so the session can carry the next message
        (RFC 5321 §4.1.1.5); a session that cannot be reset is not reused."""
        try:
            if data_reply is not None and data_reply.code == 354:
                self.stream.write(b".\r\n")
                await self._read(self.command_timeout)
            reply = await self._command("RSET")
        except _ConnectionLost:
            self._abandon()
            return
        if not reply.is_positive:
            self._abandon()
