"""One SMTP client session to one remote host (aiosmtplib), reused for several messages.

:meth:`RemoteSession.connect` opens the connection, reads the greeting, says EHLO (HELO
when EHLO is refused), negotiates TLS by policy and authenticates when the route says so.
:meth:`RemoteSession.send` runs one mail transaction and returns the remote server's reply
*per recipient*; what to do with those replies (retry, bounce, done) is the scheduler's
business. After a transaction the session can carry the next message (RFC 5321 §3.3: a
new MAIL may follow a completed transaction; after a failed one we send RSET).

What the client honours, from the EHLO reply:

- PIPELINING (RFC 2920): MAIL, every RCPT and DATA go out in one write, and the replies
  are read in order. aiosmtplib reads one reply per command and drops bytes that arrive
  while no reply is awaited, so :func:`_install_reply_buffer` makes its protocol keep
  every byte and :func:`_read_reply` takes replies already buffered first.
- SIZE (RFC 1870): ``SIZE=n`` on MAIL; a message above the advertised limit is a
  permanent failure (``5.3.4``) without sending it.
- SMTPUTF8 (RFC 6531 §3.4): a message that needs it, to a server without it, fails
  permanently (``5.6.7``) with a reason saying so; we do not downgrade addresses.
- 8BITMIME (RFC 6152): ``BODY=8BITMIME`` when the message was submitted as 8-bit and
  really has 8-bit octets; to a server without 8BITMIME that is a permanent ``5.6.3``
  (we do not convert to 7-bit).
- DSN (RFC 3461 §6.2): NOTIFY/ORCPT on RCPT and RET/ENVID on MAIL pass on, so the remote
  server takes over notification; without DSN a ``NOTIFY=SUCCESS`` earns a "relayed" DSN.

TLS: ``opportunistic`` encrypts when STARTTLS is offered, without certificate checks
(RFC 7435: better than plaintext, no worse), and if the handshake fails it reconnects
once in plaintext; ``required`` fails temporarily (``4.7.10``) when TLS is not offered;
``implicit`` is TLS from the first byte (a smarthost on 465); ``none`` never encrypts.
The TLS version and cipher used are recorded with each delivery.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import types
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol
from aiosmtplib.response import SMTPResponse

log = logging.getLogger("mailstead.delivery.remote")

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply, or one we make up for a local decision (then ``local`` is True)."""

    code: int
    text: str
    local: bool = False

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def status(self) -> str:
        """The RFC 3463 enhanced status code, or class.0.0 when the server gave none."""
        match = _ENHANCED.match(self.text)
        if match and match.group(1) == str(self.code)[0]:
            return ".".join(match.groups())
        return f"{str(self.code)[0]}.0.0"

    def __str__(self) -> str:
        return f"{self.code} {' '.join(self.text.split())}"


class RemoteError(Exception):
    """The session or the whole transaction failed; every recipient in it shares the fate.

    ``reply`` is the remote's reply when there was one. ``next_host`` says another MX host
    may do better (connection refused, 4xx greeting). ``after_data`` marks a failure after
    the final dot went out without a reply: the remote may have the message (RFC 5321
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
        self.temporary = reply.temporary if reply is not None and status is None else temporary
        self.status = status or (reply.status if reply is not None else
                                 ("4.4.1" if temporary else "5.4.1"))
        self.next_host = next_host
        self.after_data = after_data


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    """How to protect a session. ``mode``: opportunistic, required, implicit or none."""

    mode: str = "opportunistic"
    verify: bool = False
    server_name: str | None = None  # name to check the certificate against
    cafile: str | None = None

    def context(self) -> ssl.SSLContext:
        if self.verify:
            return ssl.create_default_context(cafile=self.cafile)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


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


@dataclass(slots=True)
class TransactionResult:
    """The final reply for each recipient (RCPT refusal or the reply to the final dot)."""

    replies: dict[str, Reply] = field(default_factory=dict)
    dsn_passed_on: bool = False  # the remote supports DSN and got our NOTIFY/ORCPT


def xtext_encode(text: str) -> str:
    """RFC 3461 §4: octets outside ``!``..``~``, ``+`` and ``=`` as ``+XX``."""
    out = []
    for byte in text.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (ord("+"), ord("=")):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def dot_stuff(data: bytes) -> bytes:
    """CRLF line endings, leading dots doubled (RFC 5321 §4.5.2), and the final dot."""
    data = _LINE_ENDINGS.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


# -- reply reading on top of aiosmtplib ----------------------------------------------------


def _buffering_data_received(self: SMTPProtocol, data: bytes) -> None:
    """aiosmtplib's data_received, minus dropping bytes while no reply is awaited: with
    pipelining several replies can arrive before we ask for the second one."""
    if self._response_waiter is None:
        return
    self._buffer.extend(data)
    if len(self._buffer) > MAX_RESPONSE_LENGTH * 64:
        del self._buffer[:]
        if not self._response_waiter.done():
            self._set_response_exception(
                self._response_waiter,
                aiosmtplib.SMTPResponseException(500, "Response too long"),
            )
        return
    if not self._response_pending or self._response_waiter.done():
        return  # kept in the buffer; _read_reply parses it
    try:
        response = self._read_response_from_buffer()
    except Exception as exc:
        self._set_response_exception(self._response_waiter, exc)
    else:
        if response is not None:
            self._response_waiter.set_result(response)


def _install_reply_buffer(smtp: aiosmtplib.SMTP) -> SMTPProtocol:
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("not connected")
    if getattr(protocol, "_mailstead_buffering", False) is False:
        protocol.data_received = types.MethodType(  # type: ignore[method-assign]
            _buffering_data_received, protocol
        )
        protocol._mailstead_buffering = True  # type: ignore[attr-defined]
    return protocol


async def _read_reply(protocol: SMTPProtocol, timeout: float) -> Reply:
    buffered: SMTPResponse | None = protocol._read_response_from_buffer()
    response = buffered if buffered is not None else await protocol.read_response(timeout)
    return Reply(response.code, response.message)


# -- the session ---------------------------------------------------------------------------


class RemoteSession:
    """A connected, greeted (and maybe encrypted and authenticated) client session."""

    def __init__(self, smtp: aiosmtplib.SMTP, host: str, address: str, port: int,
                 command_timeout: float, data_timeout: float) -> None:
        self.smtp = smtp
        self.host = host
        self.address = address
        self.port = port
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.messages_sent = 0
        self.broken = False
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None

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
        except _TLSHandshakeFailed as exc:
            if tls.mode != "opportunistic":
                raise RemoteError(f"TLS handshake with {host} failed: {exc}",
                                  status="4.7.5", next_host=True) from None
            # RFC 7435 §3: a failed opportunistic upgrade falls back to what worked before.
            log.info("TLS with %s[%s] failed (%s); retrying without TLS", host, address, exc)
            return await cls._connect(host, address, port, helo, TLSPolicy("none"), auth,
                                      connect_timeout, command_timeout, data_timeout)

    @classmethod
    async def _connect(
        cls, host: str, address: str, port: int, helo: str, tls: TLSPolicy,
        auth: tuple[str, str] | None, connect_timeout: float, command_timeout: float,
        data_timeout: float,
    ) -> RemoteSession:
        implicit = tls.mode == "implicit"
        smtp = aiosmtplib.SMTP(
            hostname=(tls.server_name or host) if implicit and tls.verify else address,
            port=port,
            local_hostname=helo,
            timeout=command_timeout,
            use_tls=implicit,
            start_tls=False,
            tls_context=tls.context() if implicit else None,
        )
        where = f"{host}[{address}]:{port}"
        try:
            await smtp.connect(timeout=connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            reply = Reply(exc.code, exc.message)
            raise RemoteError(f"host {where} refused the connection: {reply}", reply=reply,
                              next_host=reply.temporary) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise RemoteError(f"connect to {where} failed: {exc}", status="4.4.1",
                              next_host=True) from None
        session = cls(smtp, host, address, port, command_timeout, data_timeout)
        try:
            _install_reply_buffer(smtp)
            await session._hello()
            if tls.mode in ("opportunistic", "required"):
                if smtp.supports_extension("starttls"):
                    try:
                        await smtp.starttls(tls_context=tls.context(),
                                            server_hostname=tls.server_name or host)
                    except aiosmtplib.SMTPResponseException as exc:
                        if tls.mode == "required":
                            raise RemoteError(
                                f"host {where} refused STARTTLS: {exc.code} {exc.message}",
                                reply=Reply(exc.code, exc.message), next_host=True) from None
                        raise _TLSHandshakeFailed(f"{exc.code} {exc.message}") from None
                    except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
                        raise _TLSHandshakeFailed(str(exc)) from None
                    _install_reply_buffer(smtp)
                    await session._hello()
                elif tls.mode == "required":
                    raise RemoteError(
                        f"TLS is required for this destination, but {where} does not offer "
                        "STARTTLS", status="4.7.10", next_host=True)
            session._note_tls()
            if auth is not None:
                try:
                    await smtp.login(auth[0], auth[1])
                except aiosmtplib.SMTPAuthenticationError as exc:
                    raise RemoteError(
                        f"authentication at {where} failed: {exc.code} {exc.message}",
                        reply=Reply(exc.code, exc.message), status="4.7.8") from None
                except aiosmtplib.SMTPException as exc:
                    raise RemoteError(f"authentication at {where} failed: {exc}",
                                      status="4.7.8") from None
        except BaseException:
            smtp.close()
            raise
        return session

    async def _hello(self) -> None:
        where = f"{self.host}[{self.address}]"
        try:
            await self.smtp.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if not self.smtp.is_connected or exc.code < 500:
                raise RemoteError(f"host {where} refused EHLO: {exc.code} {exc.message}",
                                  reply=Reply(exc.code, exc.message), next_host=True) from None
            try:
                await self.smtp.helo()  # RFC 5321 §3.2: HELO for servers without ESMTP
            except aiosmtplib.SMTPHeloError as exc2:
                raise RemoteError(f"host {where} refused HELO: {exc2.code} {exc2.message}",
                                  reply=Reply(exc2.code, exc2.message)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RemoteError(f"host {where} dropped the connection at EHLO: {exc}",
                              next_host=True) from None

    def _note_tls(self) -> None:
        transport = self.smtp.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            self.tls_cipher = cipher[0] if cipher else None

    @property
    def usable(self) -> bool:
        return not self.broken and self.smtp.is_connected

    @property
    def description(self) -> str:
        """For logs and delivery records: ``mx.example.org[192.0.2.1]:25 TLSv1.3``."""
        tls = f" {self.tls_version}" if self.tls_version else ""
        return f"{self.host}[{self.address}]:{self.port}{tls}"

    def supports(self, extension: str) -> bool:
        return self.smtp.supports_extension(extension)

    async def close(self) -> None:
        """QUIT politely (RFC 5321 §4.1.1.10), then close whatever the answer."""
        try:
            if self.smtp.is_connected and not self.broken:
                await asyncio.wait_for(self.smtp.quit(), timeout=5.0)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self.smtp.close()

    # -- one transaction -----------------------------------------------------------------
    def _check_capabilities(self, message: OutMessage, eight_bit: bool) -> None:
        """Refuse locally what the remote cannot take (raises a permanent RemoteError)."""
        needs_utf8 = message.smtputf8 or not message.mail_from.isascii() or any(
            not r.address.isascii() for r in message.recipients)
        if needs_utf8 and not self.supports("smtputf8"):
            raise RemoteError(
                f"the message needs SMTPUTF8 (internationalised addresses or headers) and "
                f"{self.host} does not support it (RFC 6531)", temporary=False, status="5.6.7")
        if eight_bit and not self.supports("8bitmime"):
            raise RemoteError(
                f"the message has 8-bit content and {self.host} does not support 8BITMIME "
                "(RFC 6152); it was not converted", temporary=False, status="5.6.3")
        if self.supports("size"):
            limit_text = self.smtp.esmtp_extensions.get("size", "").strip()
            limit = int(limit_text) if limit_text.isdigit() else 0
            if limit and len(message.data) > limit:
                raise RemoteError(
                    f"the message ({len(message.data)} bytes) is larger than {self.host} "
                    f"accepts ({limit} bytes)", temporary=False, status="5.3.4")

    def _commands(self, message: OutMessage, eight_bit: bool) -> tuple[list[bytes], bool]:
        needs_utf8 = message.smtputf8 or not message.mail_from.isascii() or any(
            not r.address.isascii() for r in message.recipients)
        dsn = self.supports("dsn")
        mail = [f"MAIL FROM:<{message.mail_from}>"]
        if self.supports("size"):
            mail.append(f"SIZE={len(message.data)}")
        if eight_bit:
            mail.append("BODY=8BITMIME")
        if needs_utf8:
            mail.append("SMTPUTF8")
        if dsn and message.ret:
            mail.append(f"RET={message.ret.upper()}")
        if dsn and message.envid:
            mail.append(f"ENVID={xtext_encode(message.envid)}")
        commands = [" ".join(mail)]
        for rcpt in message.recipients:
            line = [f"RCPT TO:<{rcpt.address}>"]
            if dsn and rcpt.notify:
                line.append(f"NOTIFY={','.join(rcpt.notify)}")
            if dsn and rcpt.orcpt:
                line.append(f"ORCPT={rcpt.orcpt}")
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
        eight_bit = (message.body or "").upper() == "8BITMIME" and not message.data.isascii()
        self._check_capabilities(message, eight_bit)
        commands, dsn = self._commands(message, eight_bit)
        protocol = self.smtp.protocol
        if protocol is None:
            self.broken = True
            raise RemoteError(f"connection to {self.host} was lost", next_host=True)
        where = f"host {self.host}[{self.address}]"
        data_sent = False
        try:
            replies = await self._envelope(protocol, commands)
            mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
            result = TransactionResult(dsn_passed_on=dsn)
            accepted = []
            for rcpt, reply in zip(message.recipients, rcpt_replies, strict=True):
                if reply.ok:
                    accepted.append(rcpt.address)
                else:
                    result.replies[rcpt.address] = reply
            if not mail_reply.ok:
                await self._reset(protocol, data_reply)
                raise RemoteError(f"{where} refused the sender: {mail_reply}",
                                  reply=mail_reply)
            if data_reply.code != 354:
                await self._reset(protocol, data_reply)
                if not accepted:
                    return result  # every RCPT was refused; their replies say why
                raise RemoteError(f"{where} refused DATA: {data_reply}", reply=data_reply)
            if not accepted:
                # RFC 2920 §3.1: a server that said 354 with no valid recipient gets an
                # empty message, which it must reject.
                protocol.write(b".\r\n")
                await _read_reply(protocol, self.command_timeout)
                await self._reset(protocol, None)
                return result
            protocol.write(dot_stuff(message.data))
            data_sent = True
            final = await _read_reply(protocol, self.data_timeout)
        except RemoteError:
            raise
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ValueError) as exc:
            self.broken = True
            self.smtp.close()
            raise RemoteError(
                f"{where}: connection lost {'after the message data' if data_sent else ''}"
                f" ({type(exc).__name__}: {exc})".replace("  ", " "),
                after_data=data_sent) from None
        for address in accepted:
            result.replies[address] = final
        if final.ok:
            self.messages_sent += 1
        else:
            await self._reset(protocol, None)
        if final.code == 421:
            self.broken = True
        return result

    async def _envelope(self, protocol: SMTPProtocol, commands: list[bytes]) -> list[Reply]:
        """MAIL, RCPTs and DATA; in one write with PIPELINING (RFC 2920 §3.1), else one at
        a time, stopping once the transaction cannot go on. Always one reply per command
        plus DATA (made-up 503s for commands not sent)."""
        commands = [*commands, b"DATA\r\n"]
        timeout = self.command_timeout
        if self.supports("pipelining"):
            protocol.write(b"".join(commands))
            return [await _read_reply(protocol, timeout) for _ in commands]
        replies: list[Reply] = []
        not_sent = Reply(503, "5.5.1 not sent", local=True)
        for index, command in enumerate(commands):
            is_data = index == len(commands) - 1
            if replies and not replies[0].ok:
                replies.append(not_sent)
                continue
            if is_data and not any(r.ok for r in replies[1:]):
                replies.append(not_sent)
                continue
            protocol.write(command)
            replies.append(await _read_reply(protocol, timeout))
        return replies

    async def _reset(self, protocol: SMTPProtocol, data_reply: Reply | None) -> None:
        """RSET after a failed transaction so the session can carry the next message."""
        if data_reply is not None and data_reply.code == 354:
            protocol.write(b".\r\n")
            await _read_reply(protocol, self.command_timeout)
        if data_reply is not None and data_reply.code == 421:
            self.broken = True
            return
        try:
            protocol.write(b"RSET\r\n")
            reply = await _read_reply(protocol, self.command_timeout)
            if not reply.ok:
                self.broken = True
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            self.broken = True


class _TLSHandshakeFailed(Exception):
    pass

