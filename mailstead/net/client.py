"""Outgoing connections: the client's side of what :mod:`mailstead.net.listener` does.

:func:`connect` opens a TCP connection to one address with a deadline, optionally TLS from
the first byte (RFC 8314 implicit TLS, with SNI), and hands back the same :class:`Stream`
the servers read from: bounded lines, read deadlines, coalesced writes and STARTTLS
(:meth:`Stream.start_client_tls`). A protocol client on top of it therefore has the limits
and TLS handling of our servers, not a second set.

:func:`client_context` builds the TLS context for either kind of upgrade: verifying against
the system's (or a given) CA bundle and the host name, or, for opportunistic encryption,
checking nothing (RFC 7435 §3: an unauthenticated channel beats plaintext).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from mailstead.core.log import new_session_id
from mailstead.net.stream import Stream, StreamError, TLSHandshakeError

_log = logging.getLogger("mailstead.net.client")


class ConnectFailed(StreamError):
    """No connection: refused, unreachable, or no answer before the deadline."""


def client_context(*, verify: bool, cafile: str | None = None) -> ssl.SSLContext:
    """A client TLS context. ``verify`` checks the chain and the server's name; without it
    any certificate is accepted (opportunistic TLS, RFC 7435)."""
    if verify:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect(
    address: str,
    port: int,
    *,
    timeout: float,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    session_prefix: str = "out",
    logger: logging.Logger | None = None,
    idle_timeout: float = 300.0,
    write_timeout: float = 120.0,
) -> Stream:
    """Connect to ``address``:``port`` (an IP address or a name) within ``timeout`` seconds.

    With ``tls`` the handshake happens before this returns, within the same deadline;
    ``server_hostname`` is sent as SNI and checked when the context verifies. Raises
    :class:`ConnectFailed`, or :class:`TLSHandshakeError` when TCP worked and TLS did not.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                address, port, ssl=tls,
                server_hostname=(server_hostname or address) if tls is not None else None,
                ssl_handshake_timeout=timeout if tls is not None else None)
    except TimeoutError:
        raise ConnectFailed(f"no connection to {address} port {port} within {timeout:g}s"
                            ) from None
    except ssl.SSLError as exc:
        raise TLSHandshakeError(f"TLS handshake with {address} failed: {exc}") from exc
    except OSError as exc:
        raise ConnectFailed(f"connection to {address} port {port} failed: "
                            f"{exc.strerror or exc}") from exc
    return Stream(reader, writer, session_id=new_session_id(session_prefix),
                  logger=logger or _log, idle_timeout=idle_timeout,
                  write_timeout=write_timeout)
