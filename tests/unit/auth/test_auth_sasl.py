"""SASL PLAIN and LOGIN as pure state machines."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstead.auth import exchange
from mailstead.auth.sasl import (
    Challenge,
    Credentials,
    Mechanism,
    SaslCancelled,
    UnknownMechanism,
    decode_base64,
)
from mailstead.core.errors import AuthError


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def start_mechanism(name: str, initial_response: bytes | None = None) -> Mechanism:
    return exchange.start_mechanism(name, initial_response, offered=("PLAIN", "LOGIN"), bindings={})


def test_plain_with_initial_response() -> None:
    mech = start_mechanism("PLAIN", b64(b"\x00bob@example.org\x00s3cret"))
    assert mech.step(None) == Credentials("bob@example.org", "s3cret")


def test_plain_without_initial_response_gets_empty_challenge() -> None:
    mech = start_mechanism("plain")  # RFC 4422 §3.1: names are case-insensitive
    challenge = mech.step(None)
    assert challenge == Challenge(b"") and challenge.encoded() == b""
    assert mech.step(b64(b"\x00bob@example.org\x00pw")) == Credentials("bob@example.org", "pw")


def test_plain_utf8_password() -> None:
    mech = start_mechanism("PLAIN", b64("\x00jü@example.org\x00pässwörd".encode()))
    assert mech.step(None) == Credentials("jü@example.org", "pässwörd")


@pytest.mark.parametrize(
    "authzid", [b"bob@example.org", b"bob@EXAMPLE.org"]  # domain compared case-insensitively
)
def test_plain_authzid_same_identity_accepted(authzid: bytes) -> None:
    mech = start_mechanism("PLAIN", b64(authzid + b"\x00bob@example.org\x00pw"))
    assert mech.step(None) == Credentials("bob@example.org", "pw")


def test_plain_authzid_other_identity_rejected() -> None:
    mech = start_mechanism("PLAIN", b64(b"alice@example.org\x00bob@example.org\x00pw"))
    with pytest.raises(AuthError):
        mech.step(None)


@pytest.mark.parametrize(
    "message",
    [
        b"bob\x00pw",  # two fields
        b"\x00bob\x00pw\x00extra",  # four fields
        b"\x00\x00pw",  # empty authcid
        b"\x00bob\x00",  # empty password
        b"\x00b\xffob\x00pw",  # not UTF-8
    ],
)
def test_plain_malformed(message: bytes) -> None:
    with pytest.raises(AuthError):
        start_mechanism("PLAIN", b64(message)).step(None)


def test_plain_empty_initial_response_means_empty_message() -> None:
    with pytest.raises(AuthError):  # "=" decodes to b"", which is not a valid PLAIN message
        start_mechanism("PLAIN", b"=").step(None)


def test_login_happy_path() -> None:
    mech = start_mechanism("LOGIN")
    assert mech.step(None) == Challenge(b"Username:")
    assert mech.step(b64(b"bob@example.org")) == Challenge(b"Password:")
    assert mech.step(b64(b"pw")) == Credentials("bob@example.org", "pw")
    with pytest.raises(AuthError):
        mech.step(b64(b"more"))  # finished


def test_login_username_as_initial_response() -> None:
    mech = start_mechanism("LOGIN", b64(b"bob@example.org"))
    assert mech.step(None) == Challenge(b"Password:")
    assert Challenge(b"Password:").encoded() == b"UGFzc3dvcmQ6"
    assert mech.step(b64(b"pw") + b"\r\n") == Credentials("bob@example.org", "pw")


def test_login_rejects_nul() -> None:
    mech = start_mechanism("LOGIN")
    mech.step(None)
    with pytest.raises(AuthError):
        mech.step(b64(b"bob\x00@example.org"))


@pytest.mark.parametrize("garbage", [b"!!!!", b"YWJj=", b"YW Jj", b"\xff\xfe", b"Zm9v\x00"])
def test_bad_base64(garbage: bytes) -> None:
    mech = start_mechanism("LOGIN")
    mech.step(None)
    with pytest.raises(AuthError):
        mech.step(garbage)


def test_cancel_is_distinct() -> None:
    mech = start_mechanism("LOGIN")
    mech.step(None)
    with pytest.raises(SaslCancelled):
        mech.step(b"*")
    assert not issubclass(SaslCancelled, AuthError)  # cancelling is not a failed login
    with pytest.raises(SaslCancelled):
        start_mechanism("PLAIN", b"*").step(None)


def test_unknown_mechanism() -> None:
    with pytest.raises(UnknownMechanism):
        start_mechanism("CRAM-MD5")
    with pytest.raises(UnknownMechanism):  # known, but not offered here
        start_mechanism("SCRAM-SHA-256")


def test_misuse_of_step() -> None:
    mech = start_mechanism("PLAIN")
    with pytest.raises(AuthError):
        mech.step(b"data before the first challenge")
    mech = start_mechanism("PLAIN")
    mech.step(None)
    with pytest.raises(AuthError):
        mech.step(None)


def test_overlong_response() -> None:
    with pytest.raises(AuthError):
        decode_base64(b"A" * 100_000)


@given(
    mechanism=st.sampled_from(["PLAIN", "LOGIN"]),
    initial=st.none() | st.binary(max_size=64),
    steps=st.lists(st.binary(max_size=200) | st.binary(max_size=60).map(b64), max_size=4),
)
def test_arbitrary_input_only_raises_auth_errors(
    mechanism: str, initial: bytes | None, steps: list[bytes]
) -> None:
    mech = start_mechanism(mechanism, initial)
    try:
        result = mech.step(None)
        for data in steps:
            if isinstance(result, Credentials):
                break
            result = mech.step(data)
        if isinstance(result, Credentials):
            assert result.username and "\x00" not in result.username
            assert result.password and "\x00" not in result.password
    except (AuthError, SaslCancelled):
        pass
