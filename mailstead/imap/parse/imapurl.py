"""IMAP URLs naming a message or a part of one (RFC 5092), as CATENATE uses them (RFC 4469
§3). Pure: text in, a :class:`MessageURL` out, or :class:`URLError`.

Only what CATENATE needs is accepted: a URL naming one message of a mailbox by UID, with an
optional section and partial range (RFC 5092 ``imessagepart``). A URL may be absolute
(``imap://user@host/INBOX;UIDVALIDITY=5/;UID=20/;SECTION=1``) or relative: RFC 4469 §3 reads
it against the URL of the selected mailbox, by the rules of RFC 3986 §5.2, so
``/Drafts;UIDVALIDITY=5/;UID=20`` names a message of Drafts on this server and
``;UID=20/;SECTION=HEADER`` one of the selected mailbox. URLAUTH (RFC 4467: ``;EXPIRE=``,
``;URLAUTH=``) is refused and ``;AUTH=`` ignored: the parts come from the logged-in user's
own mailboxes, under their own login. Whose mailboxes and which host are the caller's
checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from mailstead.imap.parse.errors import ParseError
from mailstead.imap.parse.fetch import section_spec
from mailstead.imap.parse.primitives import MAX_NUMBER, Reader
from mailstead.mime.sections import Section

#: Longer URLs are refused before any parsing (a mailbox name is at most 512 characters,
#: a section a few dozen; percent-encoding triples them at worst).
MAX_URL_LENGTH = 4096

_AUTHORITY = re.compile(
    r"^//(?:(?P<user>[^@/;]*)(?P<auth>;(?i:AUTH)=[^@/;]+)?@)?(?P<host>\[[^\]/]*\]|[^:/@]*)"
    r"(?::(?P<port>\d{1,5}))?(?=/|$)"
)
_UIDVALIDITY = re.compile(r";UIDVALIDITY=([1-9][0-9]{0,9})$", re.IGNORECASE)
_UID = re.compile(r"^;UID=([1-9][0-9]{0,9})$", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_URLAUTH = re.compile(r";(?:URLAUTH|EXPIRE)=", re.IGNORECASE)
_SECTION = re.compile(r"^;SECTION=(.+)$", re.IGNORECASE)
_PARTIAL = re.compile(r"^;PARTIAL=([0-9]{1,10})(?:\.([1-9][0-9]{0,9}))?$", re.IGNORECASE)


class URLError(ValueError):
    """The URL is not one CATENATE can use; the text says why (for the log and the NO)."""


@dataclass(frozen=True, slots=True)
class MessageURL:
    """One message, or a part of it: ``user`` None when the URL names none (anonymous),
    ``mailbox`` the IMAP name (UTF-8, the server's hierarchy separator)."""

    user: str | None
    host: str
    port: int | None
    mailbox: str
    uidvalidity: int | None
    uid: int
    section: Section | None = None
    partial: tuple[int, int | None] | None = None


def base_url(user: str, host: str, mailbox: str | None) -> str:
    """The URL relative ones are read against (RFC 4469 §3): the selected mailbox's, or
    the server's when none is selected."""
    # RFC 5092 §3: achar/bchar, less what has a meaning where it stands.
    path = "/" if mailbox is None else "/" + quote(mailbox, safe="!$&'()*+,=:@-._~/") + "/"
    return "imap://" + quote(user, safe="!$&'()*+,=-._~") + "@" + host + path


def resolve(reference: str, base: str) -> str:
    """``reference`` made absolute against ``base`` (RFC 3986 §5.2.2, without queries and
    fragments, which IMAP URLs for messages do not have)."""
    if _SCHEME.match(reference):
        return reference  # absolute (an imap: one, or one parse_url refuses)
    scheme, _, rest = base.partition(":")
    if reference.startswith("//"):
        return f"{scheme}:{reference}"
    m = _AUTHORITY.match(rest)
    if m is None:
        raise URLError("bad base URL")
    authority, base_path = rest[: m.end()], rest[m.end() :] or "/"
    if reference.startswith("/"):
        path = reference
    else:
        path = base_path[: base_path.rfind("/") + 1] + reference  # RFC 3986 §5.2.3 merge
    return f"{scheme}:{authority}{_remove_dots(path)}"


def _remove_dots(path: str) -> str:
    """RFC 3986 §5.2.4, for the segments a client might write (``./``, ``../``)."""
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out)


def parse_url(url: str) -> MessageURL:
    """An absolute IMAP URL naming a message part (RFC 5092 §11 ``imessagepart``)."""
    if len(url) > MAX_URL_LENGTH:
        raise URLError("URL too long")
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        raise URLError("URL with characters that must be percent-encoded")
    if _URLAUTH.search(url):
        raise URLError("URLAUTH is not supported")
    if not url.lower().startswith("imap://"):
        raise URLError("not an IMAP URL")
    rest = url[len("imap:") :]
    m = _AUTHORITY.match(rest)
    if m is None or not m.group("host"):
        raise URLError("bad server in URL")
    # ";AUTH=" says how a client would log in to read the URL; here the session's own
    # login reads it, so it changes nothing (unlike URLAUTH, refused above).
    user = _decode(m.group("user")) if m.group("user") is not None else None
    port = int(m.group("port")) if m.group("port") else None
    path = rest[m.end() :]
    if "?" in path or "#" in path:
        raise URLError("a search or fragment names no message part")
    # "/" enc-mailbox [";UIDVALIDITY=" n] "/;UID=" n ["/;SECTION=" s] ["/;PARTIAL=" p]
    head, *params = path.split("/;")
    if not head.startswith("/"):
        raise URLError("URL names no mailbox")
    head = head[1:]
    uidvalidity: int | None = None
    v = _UIDVALIDITY.search(head)
    if v is not None:
        uidvalidity = int(v.group(1))
        head = head[: v.start()]
    if ";" in head:
        raise URLError("unknown parameter after the mailbox")
    mailbox = _decode(head)
    if not mailbox:
        raise URLError("URL names no mailbox")
    if mailbox.upper() == "INBOX":
        mailbox = "INBOX"  # RFC 9051 §5.1: INBOX in any case
    if not params:
        raise URLError("URL names no message (;UID= missing)")
    u = _UID.match(";" + params[0])
    if u is None:
        raise URLError("URL names no message (;UID= missing)")
    uid = int(u.group(1))
    if uid > MAX_NUMBER or (uidvalidity or 0) > MAX_NUMBER:
        raise URLError("number out of range")
    section: Section | None = None
    partial: tuple[int, int | None] | None = None
    for param in params[1:]:
        s = _SECTION.match(";" + param)
        p = _PARTIAL.match(";" + param)
        if s is not None and section is None and partial is None:
            section = _parse_section(_decode(s.group(1)))
        elif p is not None and partial is None:
            length = int(p.group(2)) if p.group(2) else None
            partial = (int(p.group(1)), length)
        else:
            raise URLError("unknown or misplaced parameter in URL")
    return MessageURL(user, m.group("host"), port, mailbox, uidvalidity, uid, section, partial)


def _decode(text: str) -> str:
    """Percent-decoded UTF-8 (RFC 5092 §3: names are UTF-8, then percent-encoded)."""
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise URLError("URL text that is not UTF-8") from None


def _parse_section(text: str) -> Section:
    """RFC 5092 ``enc-section``: a FETCH section-spec (RFC 3501 §9), as FETCH parses it."""
    r = Reader(b"[" + text.encode("utf-8") + b"]")
    try:
        section = section_spec(r)
        r.end()
    except ParseError as exc:
        raise URLError(f"bad section: {exc.reason}") from None
    return section
