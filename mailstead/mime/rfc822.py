"""RFC 5322 / RFC 2045 header-value lexing: addresses, content types, parameters.

Header values arrive here as latin-1 ``str`` (one character per raw byte) so that 8-bit
headers in any charset survive byte-exactly into IMAP literals. The grammar follows the
lenient reading Dovecot uses (``rfc822-parser.c``, ``message-address.c``) because ENVELOPE
and BODYSTRUCTURE are compared byte-for-byte with Dovecot. No input makes this code raise:
the address parser's catch-all is there for bugs, and fails under test (``core/sanity.py``).
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from dataclasses import dataclass

from mailstead.core import sanity

_log = logging.getLogger("mailstead.mime")

# RFC 5322 §3.2.3 atext; 8-bit bytes count as atext (UTF-8 and legacy charsets in the wild).
_SPECIALS = frozenset('()<>[]:;@\\,."')
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')  # RFC 2045 §5.1


def _is_atext(c: str) -> bool:
    return c > " " and c != "\x7f" and c not in _SPECIALS


def _is_token(c: str) -> bool:
    return c > " " and c != "\x7f" and c not in _TSPECIALS


class Lexer:
    """A cursor over one unfolded header value; methods mirror the RFC 5322 productions."""

    __slots__ = ("end", "last_comment", "pos", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.pos = 0
        self.end = len(s)
        self.last_comment = ""

    def more(self) -> bool:
        return self.pos < self.end

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < self.end else ""

    def skip_comment(self) -> bool:
        """RFC 5322 §3.2.2 comment, nested; returns False when unterminated."""
        depth = 0
        start = self.pos + 1
        s = self.s
        while self.pos < self.end:
            c = s[self.pos]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    self.last_comment = s[start : self.pos]
                    self.pos += 1
                    return True
            elif c == "\\":
                self.pos += 1
            self.pos += 1
        return False

    def skip_lwsp(self) -> int:
        """Skip CFWS. Returns -1 on a broken comment, 0 at end of input, 1 otherwise."""
        s = self.s
        while self.pos < self.end:
            c = s[self.pos]
            if c in " \t\r\n":
                self.pos += 1
            elif c == "(":
                if not self.skip_comment():
                    return -1
            else:
                break
        return 1 if self.pos < self.end else 0

    def _run(self, pred_dot: bool, token: bool = False) -> str:
        s = self.s
        start = self.pos
        while self.pos < self.end:
            c = s[self.pos]
            if (_is_token(c) if token else _is_atext(c)) or (pred_dot and c == "."):
                self.pos += 1
            else:
                break
        return s[start : self.pos]

    def atom(self) -> tuple[int, str]:
        if not self.more() or not _is_atext(self.peek()):
            return -1, ""
        text = self._run(False)
        return (self.skip_lwsp() if self.more() else 0), text

    def dot_atom(self) -> tuple[int, str]:
        """dot-atom, allowing LWSP around '.' for RFC 822 compatibility."""
        if not self.more() or not _is_atext(self.peek()):
            return -1, ""
        out: list[str] = []
        while True:
            out.append(self._run(False))
            if not self.more():
                return 0, "".join(out)
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret, "".join(out)
            if self.peek() != ".":
                return 1, "".join(out)
            self.pos += 1
            out.append(".")
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret, "".join(out)

    def quoted_string(self) -> tuple[int, str]:
        """RFC 5322 §3.2.4; removes quoting and folding (CR)LF."""
        s = self.s
        self.pos += 1
        out: list[str] = []
        start = self.pos
        while self.pos < self.end:
            c = s[self.pos]
            if c == '"':
                out.append(s[start : self.pos])
                self.pos += 1
                return self.skip_lwsp(), "".join(out)
            if c == "\n":
                chunk = s[start : self.pos]
                out.append(chunk[:-1] if chunk.endswith("\r") else chunk)
                start = self.pos + 1
            elif c == "\\":
                self.pos += 1
                if self.pos >= self.end:
                    return -1, "".join(out)
                out.append(s[start : self.pos - 1])
                start = self.pos
            self.pos += 1
        out.append(s[start:])
        return -1, "".join(out)

    def phrase(self) -> tuple[int, str]:
        """RFC 5322 §3.2.5 phrase / obs-phrase: words joined by one space."""
        if not self.more():
            return 0, ""
        if self.peek() == ".":
            return -1, ""
        words: list[str] = []
        while True:
            if self.peek() == '"':
                ret, w = self.quoted_string()
            else:
                w = self._run(True)
                ret = self.skip_lwsp() if self.more() else 0
            words.append(w)
            if ret <= 0:
                return ret, " ".join(words)
            c = self.peek()
            if not (_is_atext(c) or c in '".'):
                break
        return self.skip_lwsp(), " ".join(words)

    def domain_literal(self) -> tuple[int, str]:
        s = self.s
        start = self.pos
        while self.pos < self.end:
            c = s[self.pos]
            if c == "\\":
                self.pos += 1
            elif c == "]":
                self.pos += 1
                return self.skip_lwsp(), s[start : self.pos]
            self.pos += 1
        return -1, ""

    def domain(self) -> tuple[int, str]:
        self.pos += 1  # '@'
        if self.skip_lwsp() <= 0:
            return -1, ""
        if self.peek() == "[":
            return self.domain_literal()
        return self.dot_atom()

    def mime_token(self) -> tuple[int, str]:
        """RFC 2045 §5.1 token (plus '.'), then CFWS."""
        text = self._run(True, token=True)
        if not self.more():
            return 0, text
        return self.skip_lwsp(), text


# --- addresses (RFC 5322 §3.4) -------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """One IMAP address structure; a group start has only ``mailbox`` (the group name) and
    a group end has all four fields None, as RFC 9051 §7.5.2 and Dovecot write them."""

    name: str | None
    route: str | None
    mailbox: str | None
    host: str | None


class _AddrParser:
    """Dovecot-compatible address-list parser with missing parts filled in."""

    def __init__(self, value: str) -> None:
        self.lx = Lexer(value)
        self.out: list[Address] = []
        self.name: str | None = None
        self.route: str | None = None
        self.mailbox: str | None = None
        self.domain: str | None = None

    def _reset(self) -> None:
        self.name = self.route = self.mailbox = self.domain = None

    def _add(self) -> None:
        self.out.append(Address(self.name, self.route, self.mailbox, self.domain))
        self._reset()

    def _add_fixed(self) -> None:
        if self.mailbox is None:
            self.mailbox = "MISSING_MAILBOX"
        if self.domain is None:
            self.domain = "MISSING_DOMAIN"
        self._add()

    def _local_part(self) -> int:
        lx = self.lx
        if lx.peek() == '"':
            ret, text = lx.quoted_string()
        else:
            # Leading dots (".0.@host") are kept, as Dovecot's local-part parser does; the
            # RFC 5322 grammar has no recovery for them and dropping the text helps no one.
            start = lx.pos
            while lx.more() and lx.peek() == ".":
                lx.pos += 1
            dots = lx.s[start : lx.pos]
            if dots and (not lx.more() or not _is_atext(lx.peek())):
                ret, text = (lx.skip_lwsp() if lx.more() else 0), dots
            else:
                ret, text = lx.dot_atom()
                text = dots + text
        if ret < 0:
            return -1
        self.mailbox = text
        return ret

    def _domain(self) -> int:
        ret, text = self.lx.domain()
        if ret < 0:
            return -1
        self.domain = text
        return ret

    def _domain_list(self) -> int:
        lx = self.lx
        parts: list[str] = []
        while True:
            if not lx.more():
                return 0
            if lx.peek() != "@":
                break
            ret, text = lx.domain()
            if ret <= 0:
                return ret
            parts.append("@" + text)
            while lx.skip_lwsp() > 0 and lx.peek() == ",":
                lx.pos += 1
        self.route = ",".join(parts)
        return 1

    def _angle_addr(self) -> int:
        lx = self.lx
        lx.pos += 1  # '<'
        ret = lx.skip_lwsp()
        if ret <= 0:
            return ret
        if lx.peek() == "@":
            if self._domain_list() <= 0 or lx.peek() != ":":
                self.route = "INVALID_ROUTE"
                return -1
            lx.pos += 1
            ret = lx.skip_lwsp()
            if ret <= 0:
                return ret
        if lx.peek() != ">":  # "<>" has neither part: filled in as MISSING_* (as Dovecot)
            ret = self._local_part()
            if ret <= 0:
                return ret
            if lx.peek() == "@":
                ret = self._domain()
                if ret <= 0:
                    return ret
        if lx.peek() != ">":
            return -1
        lx.pos += 1
        return lx.skip_lwsp()

    def _name_addr(self) -> int:
        lx = self.lx
        ret, text = lx.phrase()
        if ret <= 0 or lx.peek() != "<":
            return -1
        self.name = text or None
        if self._angle_addr() < 0:
            self.domain = "SYNTAX_ERROR"
        return 1 if lx.more() else 0

    def _addr_spec(self) -> int:
        lx = self.lx
        lx.last_comment = ""
        ret = self._local_part()
        at = ret != 0 and lx.peek() == "@"
        if at:
            ret2 = self._domain()
            if ret2 <= 0:
                ret = ret2
        if lx.last_comment:
            self.name = lx.last_comment
        elif not at and ret > 0 and self.mailbox is not None:
            # "word more words" with no address at all: a display name without a mailbox
            # (RFC 5322 has no recovery; Dovecot keeps all the text as the name).
            pret, rest = lx.phrase()
            if rest:
                self.name = self.mailbox + " " + rest
                self.mailbox = None
                return -1 if pret >= 0 else pret
        return ret

    def _mailbox(self) -> int:
        lx = self.lx
        start = lx.pos
        ret = self._name_addr()
        if ret < 0:
            lx.pos = start
            self._reset()
            ret = self._addr_spec()
        self._add_fixed()
        return ret

    def _group(self) -> int:
        lx = self.lx
        ret, text = lx.phrase()
        if ret <= 0 or lx.peek() != ":":
            return -1
        lx.pos += 1
        ret = lx.skip_lwsp()
        self.mailbox = text
        self._add()
        if ret > 0 and lx.peek() != ";":
            while True:
                if self._mailbox() <= 0:
                    ret = -1
                    break
                if lx.peek() != ",":
                    break
                lx.pos += 1
                if lx.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if lx.peek() != ";":
                ret = -1
            else:
                lx.pos += 1
                ret = lx.skip_lwsp()
        self._add()  # group end marker
        return 0 if ret == 0 else 1

    def _address(self) -> int:
        lx = self.lx
        start = lx.pos
        ret = self._group()
        if ret < 0:
            lx.pos = start
            self._reset()
            ret = self._mailbox()
        return ret

    def parse(self) -> list[Address]:
        lx = self.lx
        if lx.skip_lwsp() <= 0:
            return []
        while True:
            before = lx.pos
            if self._address() == 0:
                break
            if lx.peek() != ",":
                break
            lx.pos += 1
            ret = lx.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self._add_fixed()
                break
            if lx.pos == before:  # no progress: never loop forever on garbage
                break
        return self.out


def parse_addresses(value: str) -> list[Address]:
    """Parse an address-list header value (latin-1 str); [] when it holds no address."""
    if len(value) > _CACHED_VALUE_LIMIT:  # long lists are rare: not worth the memory
        return list(_parse_addresses_cached.__wrapped__(value))
    return list(_parse_addresses_cached(value))


_CACHED_VALUE_LIMIT = 512  # at most 4096 entries of this size stay cached (about 2 MiB)


@functools.lru_cache(maxsize=4096)
def _parse_addresses_cached(value: str) -> tuple[Address, ...]:
    """Memoised: each message's From/To/Cc are parsed for its ENVELOPE and again for its
    search fields, and the same senders and recipients recur across messages. Address is
    immutable, so sharing results is safe."""
    try:
        return tuple(_AddrParser(value).parse())
    except Exception as exc:
        # A bug, not bad input (the parser reads any text): in production the field reads
        # as holding no address rather than failing the delivery; under test it fails.
        sanity.degrade(
            _log, exc,
            "address parser failed (%s) on a value of %d characters; read as no address",
            len(value),
        )
        return ()


# --- Content-Type and parameters (RFC 2045 §5.1, RFC 2231) ---------------------------------


@dataclass(frozen=True)
class ContentType:
    type: str
    subtype: str
    ok: bool  # False when the value is broken (parameters then are not read, as Dovecot)
    slash: bool  # a "/" was seen: "multipart" alone is not a multipart
    params: tuple[tuple[str, str], ...]  # raw (name, value) pairs, RFC 2231 not decoded


def parse_params(lx: Lexer) -> tuple[tuple[str, str], ...]:
    """``*(";" attribute "=" value)``; stops at the first broken parameter."""
    out: list[tuple[str, str]] = []
    while lx.more():
        if lx.peek() != ";":
            # junk where a ";" belongs: skip to the next ";" (as Dovecot does)
            nxt = lx.s.find(";", lx.pos)
            if nxt < 0:
                break
            lx.pos = nxt
        lx.pos += 1
        if lx.skip_lwsp() <= 0:
            break
        ret, key = lx.mime_token()
        if ret <= 0 or not key or lx.peek() != "=":
            break
        lx.pos += 1
        ret = lx.skip_lwsp()
        value = ""
        if ret <= 0:
            pass
        elif lx.peek() == '"':
            ret, value = lx.quoted_string()
            if ret < 0:
                break  # unterminated quoted-string (RFC 5322 §3.2.4): not a value
        elif lx.peek() == "=":
            # broken input such as name==?utf-8?b?...?= (kept whole, like Dovecot)
            start = lx.pos
            while lx.more() and lx.peek() not in "; \t\r\n":
                lx.pos += 1
            value = lx.s[start : lx.pos]
        else:
            ret, value = lx.mime_token()
        out.append((key, value))
        if ret < 0:
            break
    return tuple(out)


def parse_content_type(value: str) -> ContentType:
    lx = Lexer(value)
    ok = lx.skip_lwsp() > 0
    ctype = subtype = ""
    slash = False
    if ok:
        ret, ctype = lx.mime_token()
        slash = lx.peek() == "/"
        ok = ret > 0 and slash
        if ok:
            lx.pos += 1
            ok = lx.skip_lwsp() > 0
            if ok:
                ret, subtype = lx.mime_token()
                ok = ret >= 0 and bool(subtype)
                if ok:
                    # RFC 2045 §5.1: only parameters (";") may follow the subtype
                    lx.skip_lwsp()
                    ok = not lx.more() or lx.peek() == ";"
    params = parse_params(lx) if ok else ()
    return ContentType(ctype, subtype, ok, slash, params)


def parse_disposition(value: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """RFC 2183 disposition type and its raw parameters."""
    lx = Lexer(value)
    lx.skip_lwsp()
    ret, token = lx.mime_token()
    if ret < 0:
        return None
    return token, parse_params(lx)


def parse_token(value: str) -> str | None:
    """A single MIME token such as a Content-Transfer-Encoding (RFC 2045 §6.1)."""
    lx = Lexer(value)
    lx.skip_lwsp()
    ret, token = lx.mime_token()
    if ret < 0 or lx.skip_lwsp() != 0 or not token:
        return None
    return token


def parse_language(value: str) -> tuple[str, ...]:
    """RFC 3282 Content-Language: a comma list of atoms."""
    lx = Lexer(value)
    lx.skip_lwsp()
    langs: list[str] = []
    while True:
        ret, atom = lx.atom()
        if ret < 0:
            break
        langs.append(atom)
        if lx.peek() != ",":
            break
        lx.pos += 1
        lx.skip_lwsp()
    return tuple(langs)


def _split_2231(name: str) -> tuple[str, int | None, bool]:
    """``title*1*`` -> ("title", 1, True); plain names -> (name, None, False)."""
    extended = name.endswith("*")
    base = name[:-1] if extended else name
    star = base.rfind("*")
    if star > 0 and base[star + 1 :].isdigit():
        return base[:star], int(base[star + 1 :]), extended
    return base, None, extended


def _merge_2231(
    params: tuple[tuple[str, str], ...],
) -> list[tuple[str, list[tuple[int, bool, str]]]]:
    merged: dict[str, tuple[str, list[tuple[int, bool, str]]]] = {}
    order: list[str] = []
    for name, value in params:
        base, index, extended = _split_2231(name)
        key = base.lower()
        if key not in merged:
            merged[key] = (base, [])
            order.append(key)
        merged[key][1].append((index if index is not None else -1, extended, value))
    return [merged[k] for k in order]


def decode_params(params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """RFC 2231 §3-4: join continuations and decode charset'lang'%XX values to text.

    Values stay latin-1 str when there is no RFC 2231 charset, so callers can tell bytes.
    """
    out: list[tuple[str, str]] = []
    for base, segments in _merge_2231(params):
        segments.sort(key=lambda seg: seg[0])
        if not any(ext for _, ext, _ in segments):
            out.append((base, "".join(v for _, _, v in segments)))
            continue
        charset = "us-ascii"
        raw = bytearray()
        for i, (_, ext, value) in enumerate(segments):
            if ext:
                if i == 0 and value.count("'") >= 2:
                    charset, _lang, value = value.split("'", 2)
                raw += urllib.parse.unquote_to_bytes(value)
            else:
                raw += value.encode("latin-1", "replace")
        try:
            text = raw.decode(charset or "us-ascii", "replace")
        except LookupError:
            text = raw.decode("utf-8", "replace")
        out.append((base, text))
    return tuple(out)


def dovecot_params(params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Parameters as Dovecot's rfc2231_parse returns them for BODYSTRUCTURE: continuations
    joined, extended values left %-encoded under ``name*`` (RFC 2231 §4)."""
    if not any("*" in name for name, _ in params):
        return params
    out: list[tuple[str, str]] = []
    for base, segments in _merge_2231(params):
        segments.sort(key=lambda seg: seg[0])
        if not any(ext for _, ext, _ in segments):
            out.append((base, "".join(v for _, _, v in segments)))
            continue
        parts: list[str] = []
        for i, (_, ext, value) in enumerate(segments):
            if ext:
                parts.append(value)
            else:
                if i == 0:
                    parts.append("''")
                parts.append(urllib.parse.quote(value, safe=""))
        out.append((base + "*", "".join(parts)))
    return tuple(out)
