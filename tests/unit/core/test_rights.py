"""The RFC 4314 rights parser: canonical letters, the obsolete "c" and "d", SETACL's +/-."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.core.errors import InvalidName
from mailstead.core.rights import (
    MAX_RIGHTS_LENGTH,
    RIGHTS,
    apply_change,
    canonical,
    parse_rights,
    with_obsolete,
)

rights_text = st.text(alphabet=RIGHTS + "cd", max_size=MAX_RIGHTS_LENGTH)


@given(rights_text)
def test_parse_is_canonical_and_idempotent(text: str) -> None:
    parsed = parse_rights(text)
    assert parsed == canonical(parsed)
    assert len(set(parsed)) == len(parsed)
    assert parse_rights(parsed) == parsed
    # every plain letter asked for is granted, nothing else but the obsolete sets
    expected = set(text) - {"c", "d"}
    if "c" in text:
        expected |= {"k", "x"}
    if "d" in text:
        expected |= {"e", "t"}
    assert set(parsed) == expected


@given(st.text(max_size=40))
def test_anything_else_is_refused(text: str) -> None:
    try:
        parsed = parse_rights(text)
    except InvalidName:
        assert len(text) > MAX_RIGHTS_LENGTH or any(c not in RIGHTS + "cd" for c in text)
    else:
        assert set(parsed) <= set(RIGHTS)


@given(rights_text, rights_text)
def test_plus_minus_and_replace(current: str, change: str) -> None:
    base = parse_rights(current)
    added = apply_change(base, "+" + change)
    assert set(added) == set(base) | set(parse_rights(change))
    removed = apply_change(base, "-" + change)
    assert set(removed) == set(base) - set(parse_rights(change))
    assert apply_change(base, change) == parse_rights(change)


@given(rights_text)
def test_response_names_obsolete_rights_of_any_member(text: str) -> None:
    shown = with_obsolete(parse_rights(text))
    assert ("c" in shown) == any(r in shown for r in "kx")
    assert ("d" in shown) == any(r in shown for r in "et")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", ""),
        ("rl", "lr"),
        ("c", "kx"),
        ("d", "te"),
        ("lrswipkxtecda", RIGHTS),
    ],
)
def test_examples(text: str, parsed: str) -> None:
    assert parse_rights(text) == parsed


def test_every_right_shown_with_c_and_d() -> None:
    assert with_obsolete(RIGHTS) == "lrswipkxtecda"
