"""The rules for passwords people choose: each rule alone, then what always passes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.auth.password_rules import (
    MAX_LENGTH,
    PasswordRules,
    WeakPassword,
    check_new_password,
    common_passwords,
)
from mailstead.auth.passwords import generate_password
from mailstead.core.errors import InvalidName

RULES = PasswordRules()
ADDRESS = "margaret@example.org"


def refused(password: str, address: str = ADDRESS, rules: PasswordRules = RULES) -> str:
    with pytest.raises(WeakPassword) as failure:
        check_new_password(password, address, rules)
    return str(failure.value)


def test_a_passphrase_passes() -> None:
    check_new_password("copper kettle on the stove", ADDRESS, RULES)


def test_too_short_names_the_minimum() -> None:
    assert "at least 10 characters" in refused("x7#Kp2!q9")  # 9 characters
    check_new_password("x7#Kp2!q9Z", ADDRESS, RULES)  # 10
    strict = PasswordRules(min_length=16)
    assert "at least 16 characters" in refused("x7#Kp2!q9Zr8w$", rules=strict)


def test_too_long() -> None:
    assert "at most 1024 characters" in refused("ab" * 513)
    check_new_password("xy" * (MAX_LENGTH // 2), ADDRESS, RULES)


@pytest.mark.parametrize("char", ["\x00", "\r", "\n", "\x7f", "\udcff"])
def test_control_characters_and_undecodable_bytes(char: str) -> None:
    assert "control character" in refused(f"copper kettle{char}stove")


@pytest.mark.parametrize("password", [
    "margaret@example.org",
    "MARGARET@EXAMPLE.ORG",  # case does not matter
    "Margaret2024",  # the local part is most of it
    "example.org!!",  # the domain
    "Example-2024",  # the domain's name without its top-level label
    "<margaret@example.org>",  # the whole address inside
])
def test_the_address_and_its_parts(password: str) -> None:
    assert "too close to the account's address" in refused(password)


def test_the_name_as_a_small_part_of_a_long_password_is_fine() -> None:
    check_new_password("margaret's copper kettle", ADDRESS, RULES)
    # Short names are not looked for at all: "jo" is in many good passwords.
    check_new_password("enjoy the long winter", "jo@ab.io", RULES)


@pytest.mark.parametrize("password", [
    "qwertyuiop",  # in the list as it is
    "1q2w3e4r5t",
    "Password123",  # any case
    "password2024!",  # a listed one, most of the whole, with digits and symbols around
    "!!superman99",
    "password123456",
])
def test_common_passwords(password: str) -> None:
    assert "most common passwords" in refused(password)


def test_common_check_can_be_turned_off() -> None:
    check_new_password("qwertyuiop", ADDRESS, PasswordRules(check_common=False))


def test_a_common_word_inside_a_longer_password_is_fine() -> None:
    check_new_password("password manager tip", ADDRESS, RULES)
    check_new_password("dragon-1-2-3-4-5-6", ADDRESS, RULES)  # the listed word is a third


def test_the_list_is_the_breach_corpus() -> None:
    common = common_passwords()
    assert len(common) > 25_000
    assert {"123456", "password", "qwerty", "dragon", "trustno1"} <= common
    assert common_passwords() is common  # loaded once


def test_weak_password_is_an_invalid_name() -> None:
    """The command line prints InvalidName as one line, exit 1."""
    assert issubclass(WeakPassword, InvalidName)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")),
               min_size=0, max_size=39).map(lambda s: s + "\u00a7"))
def test_the_reason_never_contains_the_password(password: str) -> None:
    # Each password ends in a character no reason contains, so "pass" or "word" (parts of
    # the reason's own words) cannot make the assertion fail when nothing was echoed.
    try:
        check_new_password(password, ADDRESS, RULES)
    except WeakPassword as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1
        if len(password) >= 4:
            assert password not in message


@given(st.integers(min_value=10, max_value=64))
def test_generated_passwords_pass(length: int) -> None:
    check_new_password(generate_password(length), "postmaster@example.org", RULES)


@given(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=9))
def test_anything_under_the_minimum_is_refused(password: str) -> None:
    assert "too short" in refused(password)


def test_an_empty_password_is_called_empty() -> None:
    assert refused("") == "the password is empty"
