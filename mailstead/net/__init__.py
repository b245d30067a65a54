"""Networking shared by the SMTP, IMAP and POP3 servers: listeners, bounded streams, TLS."""

from __future__ import annotations

from mailstead.net.listener import Listener, ListenerGroup
from mailstead.net.stream import (
    ConnectionClosed,
    IdleTimeout,
    LineTooLong,
    Stream,
    StreamError,
    TLSHandshakeError,
)
from mailstead.net.tls import TLSContexts, describe_tls, ensure_self_signed

__all__ = [
    "ConnectionClosed",
    "IdleTimeout",
    "LineTooLong",
    "Listener",
    "ListenerGroup",
    "Stream",
    "StreamError",
    "TLSContexts",
    "TLSHandshakeError",
    "describe_tls",
    "ensure_self_signed",
]
