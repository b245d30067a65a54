"""Sans-I/O wire formats shared by a server and a client of the same protocol.

A module here turns bytes into values and values into bytes, with the protocol's limits,
and does nothing else: no sockets, no asyncio, no store. It imports only :mod:`mailstead.core`.
Both sides of a protocol build on it, so they agree on one reply type, one parser and one
set of limits: for SMTP the receiving server (:mod:`mailstead.smtp`) and the outbound
client (:mod:`mailstead.delivery.remote`) both use :mod:`mailstead.wire.smtp`. The layers
stay as they were: ``delivery`` below the ``smtp`` front end, both above ``wire``
(docs/decisions/0006-outbound-smtp-client.md).
"""
