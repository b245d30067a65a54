"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for clients that did not ENABLE UTF-8.

IMAP4rev1 clients send and expect mailbox names in this encoding; after ``ENABLE IMAP4rev2``
or ``ENABLE UTF8=ACCEPT`` names travel as UTF-8 (RFC 9051 §5.1, RFC 6855 §3).
"""

from __future__ import annotations

import base64


class MUTF7Error(ValueError):
    """The name is not valid modified UTF-7."""


def _b64_encode(text: str) -> str:
    raw = text.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode_mutf7(name: str) -> str:
    """Unicode -> modified UTF-7: printable ASCII stays, ``&`` becomes ``&-``, the rest is
    modified base64 of UTF-16BE between ``&`` and ``-``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append("&" + _b64_encode("".join(pending)) + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mutf7(name: str) -> str:
    """Modified UTF-7 -> Unicode; raises MUTF7Error on anything RFC 3501 §5.1.3 forbids
    (8-bit or control characters, unterminated or non-canonical shifts)."""
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise MUTF7Error("character outside printable US-ASCII")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise MUTF7Error("unterminated '&' shift")
        chunk = name[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        if any(not (c.isascii() and (c.isalnum() or c in "+,")) for c in chunk):
            raise MUTF7Error("invalid modified base64")
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
            text = raw.decode("utf-16-be")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MUTF7Error("invalid modified base64") from exc
        if not text or any(0x20 <= ord(c) <= 0x7E for c in text):
            # Printable ASCII must be sent directly, never base64-encoded.
            raise MUTF7Error("non-canonical shift")
        if _b64_encode(text) != chunk:
            raise MUTF7Error("non-canonical base64 padding")
        out.append(text)
    return "".join(out)
