"""Envelope addresses: the Reverse-path and Forward-path grammar of RFC 5321 §4.1.2.

Pure functions, no I/O. The parser is strict where leniency has been abused to relay:

- source routes (``<@a,@b:user@c>``) are refused outright (RFC 5321 §3.6.1 lets a server
  decline them, and they are a classic relay trick);
- ``%`` and ``!`` in a local part are ordinary characters (RFC 5321 §2.3.11): the local part
  is looked up literally and never re-interpreted as a route;
- a quoted local part is reduced to its unquoted form only when that form is a plain
  dot-string (RFC 5321 §4.1.2: ``"abc"@x`` and ``abc@x`` are the same mailbox); otherwise it
  stays quoted, so ``"user@remote"@local`` is a local part that no account has.

UTF-8 in local parts and domains is parsed (RFC 6531 §3.3); whether it is allowed depends on
the SMTPUTF8 parameter, which the caller checks with :attr:`Path.is_ascii`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailstead.core.errors import MailsteadError
from mailstead.core.types import Address

# RFC 5321 §4.1.2 atext (via RFC 5322 §3.2.3).
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
_LDH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
MAX_LOCAL = 256  # octets; RFC 5321 §4.5.3.1.1 asks for at least 64 and to be liberal
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 512  # octets between the brackets; §4.5.3.1.3 asks for at least 256


class AddressError(MailsteadError):
    """The path is not valid RFC 5321 syntax; ``reason`` is safe to log, not to echo."""


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed path. ``address`` is None for the null reverse-path ``<>``."""

    address: Address | None
    is_ascii: bool = True
    is_literal: bool = False  # the domain is an address literal such as [192.0.2.1]

    def __str__(self) -> str:
        return "" if self.address is None else str(self.address)


def _is_utf8_text(ch: str) -> bool:
    return ord(ch) >= 0x80


def _check_dot_string(text: str) -> None:
    if not text:
        raise AddressError("empty local part")
    for atom in text.split("."):
        if not atom:
            raise AddressError("empty atom in local part")
        for ch in atom:
            if ch not in _ATEXT and not _is_utf8_text(ch):
                raise AddressError(f"character {ch!r} not allowed in local part")


def _unquote(quoted: str) -> str:
    """Quoted-string -> its content (RFC 5321 §4.1.2 quoted-pairSMTP, qtextSMTP)."""
    body = quoted[1:-1]
    out = []
    escaped = False
    for ch in body:
        if escaped:
            if not (32 <= ord(ch) <= 126):
                raise AddressError("bad quoted pair")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"' or (ord(ch) < 32 or ord(ch) == 127):
            raise AddressError("bad character in quoted local part")
        else:
            out.append(ch)
    if escaped:
        raise AddressError("quoted local part ends in a backslash")
    return "".join(out)


def _canonical_local(local: str) -> str:
    if local.startswith('"'):
        content = _unquote(local)
        try:
            _check_dot_string(content)
        except AddressError:
            return local  # keep the quotes: this local part needs them
        return content
    _check_dot_string(local)
    return local


def check_domain(domain: str) -> tuple[str, bool]:
    """Validate a Domain or address-literal; returns (lower-cased domain, is_literal)."""
    if len(domain.encode("utf-8")) > MAX_DOMAIN or not domain:
        raise AddressError("bad domain length")
    if domain.startswith("["):
        if not domain.endswith("]"):
            raise AddressError("unterminated address literal")
        inner = domain[1:-1]
        try:
            if inner[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(inner[5:])
            else:
                ipaddress.IPv4Address(inner)
        except ValueError:
            raise AddressError("bad address literal") from None
        return domain.lower(), True
    clean = domain.lower().removesuffix(".")
    for label in clean.split("."):
        if not label or len(label) > 63 * 4:
            raise AddressError("empty or long domain label")
        if label.startswith("-") or label.endswith("-"):
            raise AddressError("domain label starts or ends with a hyphen")
        for ch in label:
            if ch not in _LDH and not _is_utf8_text(ch):
                raise AddressError(f"character {ch!r} not allowed in domain")
    return clean, False


def _split_mailbox(text: str) -> tuple[str, str]:
    """Split ``local@domain`` at the @ that is outside the quoted local part."""
    if text.startswith('"'):
        index = 1
        while index < len(text):
            ch = text[index]
            if ch == "\\":
                index += 2
                continue
            if ch == '"':
                break
            index += 1
        else:
            raise AddressError("unterminated quoted local part")
        local, rest = text[: index + 1], text[index + 1 :]
        if not rest.startswith("@"):
            raise AddressError("missing @ after quoted local part")
        return local, rest[1:]
    local, sep, domain = text.rpartition("@")
    if not sep:
        raise AddressError("missing @")
    if "@" in local:
        raise AddressError("unquoted @ in local part")
    return local, domain


def parse_mailbox(text: str) -> Path:
    """``local@domain`` (no brackets) -> Path; AddressError when it is not RFC 5321 syntax."""
    if len(text.encode("utf-8")) > MAX_PATH:
        raise AddressError("path too long")
    if text.startswith("@"):
        # RFC 5321 §3.6.1: we decline source routes rather than strip them.
        raise AddressError("source routes are not accepted")
    local, domain = _split_mailbox(text)
    if len(local.encode("utf-8")) > MAX_LOCAL:
        raise AddressError("local part too long")
    canonical = _canonical_local(local)
    clean_domain, literal = check_domain(domain)
    return Path(Address(canonical, clean_domain), text.isascii(), literal)


def split_path(argument: str) -> tuple[str, str]:
    """``<path> params`` -> (path content, parameter text). The brackets are required.

    The closing bracket is found outside any quoted local part, so ``<"a>b"@x>`` works.
    """
    text = argument.lstrip(" ")  # RFC 5321 has no space after the colon; many clients send one
    if not text.startswith("<"):
        raise AddressError("path must be enclosed in <>")
    index = 1
    quoted = False
    while index < len(text):
        ch = text[index]
        if quoted and ch == "\\":
            index += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            break
        index += 1
    else:
        raise AddressError("path has no closing >")
    rest = text[index + 1 :]
    if rest and not rest.startswith(" "):
        raise AddressError("junk after path")
    return text[1:index], rest.strip(" ")


def parse_reverse_path(content: str) -> Path:
    """MAIL FROM path content: ``""`` is the null sender (RFC 5321 §4.5.5)."""
    if content == "":
        return Path(None)
    return parse_mailbox(content)


def parse_forward_path(content: str, postmaster_domain: str) -> Path:
    """RCPT TO path content. ``<Postmaster>`` without a domain is accepted and means the
    postmaster of ``postmaster_domain`` (RFC 5321 §4.1.1.3, §4.5.1)."""
    if content.lower() == "postmaster":
        return Path(Address("postmaster", postmaster_domain.lower()))
    if content == "":
        raise AddressError("empty forward path")
    return parse_mailbox(content)
