"""COMPRESS (RFC 4978): DEFLATE in both directions from the next octet on.

The tagged OK goes out uncompressed, then the stream compresses everything (its
``start_compression``); the layer sits above TLS, which STARTTLS set up before login, as
RFC 4978 §4 requires. Decision 0024 says why the compressor's memory is bounded as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstead.imap import response
from mailstead.imap.parse.commands import Command
from mailstead.imap.replies import Reply, bad, no

if TYPE_CHECKING:
    from mailstead.imap.session import Session

#: The algorithms RFC 4978 §3 registers that we implement.
ALGORITHMS = ("DEFLATE",)


async def compress(session: Session, cmd: Command[str]) -> Reply:
    if cmd.args not in ALGORITHMS:
        raise bad(f"Unknown compression algorithm {cmd.args}")
    if session.stream.compressed:
        # RFC 4978 §3: once, and not over a TLS layer that compresses already.
        raise no("Compression is already active", "COMPRESSIONACTIVE")
    session.send(response.tagged(cmd.tag, "OK", "DEFLATE active"))
    session.stream.start_compression()
    return Reply(sent=True)
