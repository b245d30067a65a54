"""The base subject of RFC 5256 §2.1: what SORT SUBJECT compares and THREAD groups by.

A pure function of the subject text. Two messages of one conversation ("Lunch",
"Re: Lunch", "[list] RE: Re: Lunch", "[Fwd: Lunch]", "Lunch (fwd)") share a base subject;
whether anything of a reply or a forward was taken off is kept too, because THREAD=REFERENCES
prefers the original message over a reply when it merges threads (§5 step 5).

The grammar the steps remove (RFC 5256 §5, ABNF)::

    subj-trailer = "(fwd)" / WSP
    subj-leader  = (*subj-blob subj-refwd) / WSP
    subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
    subj-blob    = "[" *BLOBCHAR "]" *WSP          ; BLOBCHAR: any octet but "[" and "]"
    subj-fwd-hdr = "[fwd:"
    subj-fwd-trl = "]"

All matching is case-insensitive (the RFC's ABNF strings are).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailstead.mime.parse import decode_encoded_words

#: Step 1: tabs and line breaks of continuations become spaces; runs of spaces become one.
_SPACES = re.compile(r"[ \t\r\n]+")
#: Step 2: one subj-trailer at the end (repeated by the caller).
_TRAILER = re.compile(r"(?:\(fwd\)| )\Z", re.IGNORECASE)
#: A subj-blob at the start: "[" *BLOBCHAR "]" *WSP.
_BLOB = re.compile(r"\[[^\[\]]*\] *")
#: subj-refwd at the start: ("re" / "fw" / "fwd") *WSP [subj-blob] ":".
_REFWD = re.compile(r"(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:", re.IGNORECASE)
_FWD_HDR = "[fwd:"
_FWD_TRL = "]"


@dataclass(frozen=True, slots=True)
class BaseSubject:
    """The base subject text, and whether extracting it removed a reply or forward marker
    (a subj-refwd, a "(fwd)" trailer, or a "[fwd: ...]" wrapper)."""

    text: str
    reply: bool


def _strip_leaders(text: str) -> tuple[str, bool]:
    """Steps 3 to 5: leaders (``*subj-blob subj-refwd`` or a space) off the front, and a
    subj-blob when something other than space is left after it, until none remains."""
    reply = False
    while True:
        before = text
        # Step 3: subj-leader = (*subj-blob subj-refwd) / WSP.
        if text.startswith(" "):
            text = text[1:]
        else:
            at = 0
            while (blob := _BLOB.match(text, at)) is not None:
                at = blob.end()
            refwd = _REFWD.match(text, at)
            if refwd is not None:
                text = text[refwd.end() :]
                reply = True
        # Step 4: a leading subj-blob, if what follows is a non-empty subj-base.
        blob = _BLOB.match(text)
        if blob is not None and text[blob.end() :].strip(" "):
            text = text[blob.end() :]
        if text == before:  # step 5: until nothing matches
            return text, reply


def extract(subject: str) -> BaseSubject:
    """The base subject of ``subject``, decoded text (RFC 2047 words already decoded, as
    ``mime/`` stores the Subject at delivery): steps 1 (whitespace) to 7 of §2.1."""
    text = _SPACES.sub(" ", subject)
    reply = False
    while True:
        # Step 2: trailers ("(fwd)" or a space) off the end, repeatedly.
        while (trailer := _TRAILER.search(text)) is not None:
            if trailer.group() != " ":
                reply = True
            text = text[: trailer.start()]
        # Steps 3 to 5.
        text, leader_reply = _strip_leaders(text)
        reply = reply or leader_reply
        # Step 6: "[fwd:" ... "]" around the rest: unwrap it and start again from step 2.
        if text[: len(_FWD_HDR)].lower() == _FWD_HDR and text.endswith(_FWD_TRL):
            text = text[len(_FWD_HDR) : -len(_FWD_TRL)]
            reply = True
            continue
        return BaseSubject(text, reply)


def base_subject(field_value: str) -> BaseSubject:
    """The base subject of a Subject field's value as written: its RFC 2047 encoded-words
    decoded first (§2.1 step 1), then :func:`extract`."""
    return extract(decode_encoded_words(field_value))


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_casemap(text: str) -> str:
    """The i;ascii-casemap comparator's form (RFC 4790 §9.2): ASCII letters upper-cased,
    everything else as it is. SORT compares, and THREAD groups, by this (RFC 5256 §2.1)."""
    return text.translate(_ASCII_UPPER)
