"""A message as IMAP BODY sections present it: every part holding a NUL in base64.

An APPEND with a literal8 (RFC 3516 §4.3) may store parts with NUL octets, which no ordinary
literal may carry (RFC 9051 §4.3). The stored message keeps those octets (BINARY serves them
as they are), and BODY, BODYSTRUCTURE and the BODY sections show each such part re-encoded
(RFC 3516 §6): its Content-Transfer-Encoding says ``base64`` and its body is base64 in lines
of 76 characters, as Dovecot writes it. Only messages with such a part (:attr:`Part.nul`,
found once by the parser) are ever rewritten; decision 0017 says why at FETCH time, and why
NUL and not the ``binary`` label decides.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailstead.mime.parse import Part

_CTE = "content-transfer-encoding"
_BASE64_FIELD = b"Content-Transfer-Encoding: base64\r\n"
_LINE = 57  # octets per base64 line: 76 characters (RFC 2045 §6.8)


_MIME_VERSION = b"MIME-Version: 1.0\r\n"


def _leaves(part: Part, in_multipart: bool = False) -> Iterator[tuple[Part, bool]]:
    """Every leaf in order, with whether it is a body part of a multipart."""
    if part.children:
        for child in part.children:
            yield from _leaves(child, part.multipart)
    else:
        yield part, in_multipart


def has_nul_parts(root: Part) -> bool:
    """Whether BODY sections of this message differ from its stored octets."""
    return any(leaf.nul for leaf, _ in _leaves(root))


def _is_mime(part: Part, in_multipart: bool) -> bool:
    """RFC 2045 §4 as the parser reads it: Content-* fields count in a body part of a
    multipart or in an entity with MIME-Version or Content-Type."""
    return in_multipart or any(name in ("mime-version", "content-type")
                               for name, _, _ in part.headers)


def base64_body(data: bytes | memoryview) -> bytes:
    """``data`` in base64 lines of 76 characters joined by CRLF, with no line end after the
    last: the CRLF before a following boundary belongs to the boundary (RFC 2046 §5.1.1)."""
    view = memoryview(data)
    return b"\r\n".join(
        binascii.b2a_base64(view[i : i + _LINE], newline=False)
        for i in range(0, len(view), _LINE)
    )


def presented_header(raw: bytes, part: Part, *, mime: bool = True) -> bytes:
    """The part's header with its first Content-Transfer-Encoding field saying ``base64``
    (later ones dropped), or with that field added after the last field when it had none.
    An entity that was not MIME (``mime`` False: its Content-* fields did not count) gets
    ``MIME-Version: 1.0`` added too, so that the field it now has counts."""
    chunks: list[bytes] = []
    position = part.header_start
    replaced = False
    for name, start, end in part.headers:
        if name != _CTE:
            continue
        chunks.append(raw[position:start])
        if not replaced:
            chunks.append(_BASE64_FIELD)
            replaced = True
        position = end
    if not replaced:
        fields_end = max((end for _, _, end in part.headers), default=part.header_start)
        chunks.append(raw[position:fields_end])
        chunks.append(_BASE64_FIELD)
        position = fields_end
    if not mime:
        chunks.append(_MIME_VERSION)
    chunks.append(raw[position : part.header_end])
    return b"".join(chunks)


def present(raw: bytes, root: Part) -> bytes:
    """The whole message with the header and body of each part holding a NUL re-encoded;
    every other octet as stored. Only called for a message with such parts."""
    chunks: list[bytes] = []
    position = 0
    for leaf, in_multipart in _leaves(root):
        if not leaf.nul:
            continue
        chunks.append(raw[position : leaf.header_start])
        chunks.append(presented_header(raw, leaf, mime=_is_mime(leaf, in_multipart)))
        chunks.append(raw[leaf.header_end : leaf.body_start])
        chunks.append(base64_body(memoryview(raw)[leaf.body_start : leaf.body_end]))
        position = leaf.body_end
    chunks.append(raw[position:])
    return b"".join(chunks)
