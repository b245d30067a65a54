"""The base subject of RFC 5256 §2.1: a table from the RFC's rules, and properties that
hold for any subject."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.imap.basesubject import ascii_casemap, base_subject, extract

TABLE = [
    # (subject, base subject, reply or forward)
    ("Lunch", "Lunch", False),
    ("Re: Lunch", "Lunch", True),
    ("RE: re: Lunch", "Lunch", True),
    ("Fw: Lunch", "Lunch", True),
    ("FWD: Lunch", "Lunch", True),
    ("Fwd:Lunch", "Lunch", True),
    ("Re : Lunch", "Lunch", True),  # subj-refwd: *WSP before ":"
    ("Re[2]: Lunch", "Lunch", True),  # subj-refwd: a subj-blob before ":"
    ("Re [list]: Lunch", "Lunch", True),
    ("[list] Re: Lunch", "Lunch", True),  # *subj-blob subj-refwd
    ("[list] Lunch", "Lunch", False),  # step 4: a blob with something after it
    ("[list]", "[list]", False),  # step 4: not when nothing would be left
    ("[list]   ", "[list]", False),
    ("[a][b] Lunch", "Lunch", False),  # steps 4 and 5 repeat
    ("[a] [b] Re: [c] Lunch", "Lunch", True),
    ("Lunch (fwd)", "Lunch", True),  # step 2: subj-trailer
    ("Lunch (FWD) (fwd)  ", "Lunch", True),
    ("Lunch(fwd)", "Lunch", True),
    ("[Fwd: Lunch]", "Lunch", True),  # step 6
    ("[fwd: Re: Lunch (fwd)]", "Lunch", True),  # and from step 2 again
    ("[Fwd: [Fwd: Lunch]]", "Lunch", True),
    ("Re: [Fwd: Lunch]", "Lunch", True),
    ("  Lunch \t at\t\tnoon  ", "Lunch at noon", False),  # step 1: whitespace
    ("Lunch\r\n at noon", "Lunch at noon", False),  # a continuation
    ("Reply hazy", "Reply hazy", False),  # "re" without ":" is text
    ("Fwd Lunch", "Fwd Lunch", False),
    ("Re:", "", True),
    ("", "", False),
    ("[fwd: Lunch", "[fwd: Lunch", False),  # no subj-fwd-trl: not a wrapper
    ("Lunch [fwd: x]", "Lunch [fwd: x]", False),
    ("Re: Re: [list] [list2] Re: Lunch", "Lunch", True),
    ("(fwd)", "", True),
    ("Sv: Lunch", "Sv: Lunch", False),  # only "re", "fw", "fwd" (RFC 5256 ABNF)
]


@pytest.mark.parametrize(("subject", "base", "reply"), TABLE)
def test_base_subject_table(subject: str, base: str, reply: bool) -> None:
    found = extract(subject)
    assert (found.text, found.reply) == (base, reply)


def test_encoded_words_are_decoded_first() -> None:
    # §2.1 step 1: RFC 2047 words to UTF-8, then the rest; a "Re:" inside an encoded word
    # counts like a written one.
    assert base_subject("=?utf-8?q?Re=3A_caf=C3=A9?=").text == "café"
    assert base_subject("Re: =?iso-8859-1?q?caf=E9?= (fwd)").text == "café"
    assert base_subject("=?utf-8?q?Re=3A_caf=C3=A9?=").reply


def test_ascii_casemap_leaves_other_letters() -> None:
    assert ascii_casemap("Café straße") == "CAFé STRAßE"


_TEXT = st.text(
    alphabet=st.sampled_from(list("abRrEeFfWwDd[]():; \tx\u00e9")), max_size=30
)


@given(_TEXT)
def test_extraction_is_idempotent(subject: str) -> None:
    once = extract(subject).text
    again = extract(once)
    assert again.text == once
    assert not again.reply or once == ""  # nothing of a reply is left to take off


@given(_TEXT)
def test_whitespace_is_normalised(subject: str) -> None:
    text = extract(subject).text
    assert text == text.strip(" ")
    assert "  " not in text and "\t" not in text


@given(_TEXT)
def test_a_reply_prefix_and_a_forward_trailer_change_nothing_but_reply(subject: str) -> None:
    base = extract(subject).text
    for wrapped in (f"Re: {subject}", f"{subject} (fwd)", f"[list] Fwd: {subject}"):
        found = extract(wrapped)
        assert found.text == base
        assert found.reply
