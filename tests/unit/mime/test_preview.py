"""The RFC 8970 preview made at parse time (``mime/preview.py``): which part, how it is
decoded and cleaned, and its limits; properties over any input with hypothesis."""

from __future__ import annotations

import base64
import html
import itertools
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.mime.parse import parse_message
from mailstead.mime.preview import MAX_CHARS, MAX_SOURCE, _Text, preview_text


def _message(body: bytes, content_type: str = "text/plain", cte: str | None = None) -> bytes:
    head = "From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    head += f"Content-Type: {content_type}\r\n"
    if cte is not None:
        head += f"Content-Transfer-Encoding: {cte}\r\n"
    return head.encode() + b"\r\n" + body


def _preview(raw: bytes) -> str:
    """The preview as ``parse_message`` stores it, checked to be the function's answer."""
    parsed = parse_message(raw)
    assert parsed.preview == preview_text(raw, parsed.root)
    assert parsed.preview is not None
    return parsed.preview


def _clean(text: str) -> None:
    """What every preview must be: short, one line, no controls, no stray spaces."""
    assert len(text) <= MAX_CHARS
    assert text == text.strip(" ")
    assert "  " not in text
    for ch in text:
        assert ch == " " or not ch.isspace(), repr(ch)
        category = unicodedata.category(ch)
        assert category[0] != "C" or ch in "\u200c\u200d", repr(ch)


def test_plain_text_with_its_white_space_collapsed() -> None:
    raw = _message(b"  Hello   there,\r\n\r\n\tthis is\x07 a test.\r\n> quoted\r\n")
    assert _preview(raw) == "Hello there, this is a test. > quoted"


def test_quoted_printable_in_latin_1() -> None:
    raw = _message(b"Caf=E9 cr=E8me soft=\r\nbreak=20\r\n", "text/plain; charset=iso-8859-1",
                   "quoted-printable")
    assert _preview(raw) == "Café crème softbreak"


def test_base64_utf_8() -> None:
    body = base64.encodebytes("Grüße aus Köln ✔".encode())
    raw = _message(body, "text/plain; charset=utf-8", "base64")
    assert _preview(raw) == "Grüße aus Köln ✔"


def test_unknown_and_non_text_charsets_read_as_utf_8() -> None:
    for charset in ("x-no-such-charset", "base64", "rot13", "idna"):
        raw = _message("naïve\r\n".encode(), f"text/plain; charset={charset}")
        assert _preview(raw) == "naïve", charset


def test_undeclared_8bit_text_is_read_as_utf_8_with_replacement() -> None:
    assert _preview(_message("für\r\n".encode())) == "für"
    assert _preview(_message("für\r\n".encode(), "text/plain; charset=US-ASCII")) == "für"
    assert _preview(_message(b"f\xfcr\r\n")) == "f\ufffdr"


def test_html_loses_tags_head_script_style_and_resolves_references() -> None:
    page = (b"<html><head><title>Title</title><style>p {color: red}</style></head>"
            b"<body><p>Hi &amp; welcome &lt;b&gt; caf&eacute;</p>"
            b"<script>var x = '<p>no</p>';</script><div>Sec<b>ond</b></div>"
            b"<!-- a comment --><table><tr><td>a</td><td>b</td></tr></table></body></html>")
    assert _preview(_message(page, "text/html")) == "Hi & welcome <b> café Second a b"


def test_html_head_left_open_ends_at_the_body() -> None:
    page = b"<html><head><meta charset=utf-8><body>Visible text</body></html>"
    assert _preview(_message(page, "text/html")) == "Visible text"


def test_html_unfinished_tag_at_the_end_is_not_text() -> None:
    page = b"<p>Text</p><a href=\"http://example.org/very-long"
    assert _preview(_message(page, "text/html")) == "Text"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (b"<p>a</p><![foo[ x ]]><p>b</p>", "a"),  # html.parser gives up here
        (b"<p>a</p><![ bar", "a"),
        (b"<p>a</p><![if !vml]>v<![endif]><p>b", "a v b"),  # Outlook's marked sections
        (b"<p>a</p><![CDATA[zz]]><p>b", "a b"),
        (b"<p>a</p><!1 x>b", "a b"),
        (b"a<?php echo 1 ?>b</?x>c", "abc"),
        (b"<p>a &#0; &#x110000; &bogus; &amp b", "a \ufffd \ufffd &bogus; & b"),
    ],
)
def test_malformed_html_never_fails(page: bytes, expected: str) -> None:
    assert _preview(_message(page, "text/html")) == expected


def test_plain_part_is_preferred_to_an_earlier_html_part() -> None:
    raw = (b"Subject: alt\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nplain part\r\n--b--\r\n")
    assert _preview(raw) == "plain part"


def test_html_when_there_is_no_plain_part() -> None:
    raw = (b"Subject: alt\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/related; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/html; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>\r\n"
           b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"iVBORw0KGgo=\r\n--b--\r\n")
    assert _preview(raw) == "café"


def test_attachments_and_attached_messages_are_passed_over() -> None:
    raw = (b"Subject: fwd\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n"
           b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
           b"filename=notes.txt\r\n\r\nattached notes\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nthe message's own text\r\n--b--\r\n")
    assert _preview(raw) == "the message's own text"


def test_no_text_part_is_an_empty_preview() -> None:
    raw = _message(b"iVBORw0KGgo=\r\n", "image/png", "base64")
    assert _preview(raw) == ""
    assert _preview(b"Subject: empty\r\n\r\n") == ""


def test_cut_at_256_characters() -> None:
    preview = _preview(_message(b"word " * 200))
    assert preview == ("word " * 52)[:MAX_CHARS]  # characters, not words: "... word w"
    assert len(preview) == MAX_CHARS
    assert _preview(_message(b"word " * 51 + b" wx")) == ("word " * 51) + "w"


def test_bidi_overrides_and_format_characters_are_dropped() -> None:
    raw = _message("a\u202eb\u200bc \U0001f468\u200d\U0001f469\r\n".encode(),
                   "text/plain; charset=utf-8")
    assert _preview(raw) == "abc \U0001f468\u200d\U0001f469"


def test_reading_stops_at_the_source_limit() -> None:
    """A part is read up to MAX_SOURCE octets: text after that much white space is not
    looked for (the limit on a 40 MB part)."""
    raw = _message(b" " * MAX_SOURCE + b"too late\r\n")
    assert _preview(raw) == ""
    raw = _message(b" " * (MAX_SOURCE - 100) + b"in time\r\n")
    assert _preview(raw) == "in time"


# --- properties --------------------------------------------------------------------------------

_CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "us-ascii", "windows-1252", "shift_jis",
                             "utf-16", "x-unknown", ""])
_ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "binary"])


@given(body=st.binary(max_size=2000), charset=_CHARSETS, cte=_ENCODINGS,
       subtype=st.sampled_from(["plain", "html"]))
def test_any_body_gives_a_clean_preview(body: bytes, charset: str, cte: str, subtype: str) -> None:
    ctype = f"text/{subtype}" + (f"; charset={charset}" if charset else "")
    _clean(_preview(_message(body, ctype, cte)))


@given(text=st.text(max_size=600))
def test_any_text_gives_a_clean_preview(text: str) -> None:
    raw = _message(text.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8")
    preview = _preview(raw)
    _clean(preview)
    words = "".join(ch if not ch.isspace() else " " for ch in text).split()
    if words and all(unicodedata.category(ch)[0] != "C" for ch in text if not ch.isspace()):
        assert preview == " ".join(words)[:MAX_CHARS].rstrip(" ")


_TAGS = st.sampled_from(["p", "div", "span", "b", "td", "li", "br", "h1", "a", "font"])
_WORDS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn")),
                 min_size=1, max_size=30)


@given(nodes=st.lists(st.tuples(_TAGS, _WORDS, st.sampled_from(['', ' class="x"',
                                                                ' href="a>b"'])),
                      max_size=40))
def test_html_keeps_the_text_and_no_tag(nodes: list[tuple[str, str, str]]) -> None:
    page = "".join(f"<{tag}{attrs}>{html.escape(text)}</{tag}> " for tag, text, attrs in nodes)
    preview = _preview(_message(page.encode(), "text/html; charset=utf-8"))
    _clean(preview)
    words = " ".join(text for _, text, _ in nodes).split()
    assert preview == " ".join(words)[:MAX_CHARS].rstrip(" ")
    if all("<" not in text for _, text, _ in nodes):
        assert "<" not in preview and 'class="x"' not in preview


@pytest.mark.parametrize("n", [255, 256, 257, 1000])
def test_length_around_the_limit(n: int) -> None:
    preview = _preview(_message(b"x" * n))
    assert preview == "x" * min(n, MAX_CHARS)


@given(text=st.text(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_text_in_pieces_reads_as_one(text: str, cuts: list[int]) -> None:
    """Parts are read a piece at a time: where a piece ends (inside a word, a run of white
    space, between controls) must not change the preview."""
    bounds = [0, *sorted(min(c, len(text)) for c in cuts), len(text)]
    whole, pieces = _Text(), _Text()
    whole.add(text)
    for start, end in itertools.pairwise(bounds):
        pieces.add(text[start:end])
    assert pieces.result() == whole.result()
    _clean(whole.result())


_FRAGMENTS = st.sampled_from([
    "<![foo[", "<![", "]]>", "<!--", "-->", "<!", "<?", "</", "<", ">", "&", "&#", "&#x;",
    "&amp;", "<script>", "</script>", "<style>", "<head>", "</head>", "<body>", "<p>",
    "<a href='", "\"", "\x00", "\x1b", "\u202e", "\r\n", " ",
])


@given(pieces=st.lists(st.one_of(_FRAGMENTS, st.text(max_size=20)), max_size=60))
def test_any_markup_gives_a_clean_preview(pieces: list[str]) -> None:
    """Broken markup of every kind html.parser meets in mail: never an error, always a
    clean preview (with the sanity flag on, a failure inside would raise here)."""
    page = "".join(pieces).encode("utf-8", "surrogatepass")
    _clean(_preview(_message(page, "text/html; charset=utf-8")))
