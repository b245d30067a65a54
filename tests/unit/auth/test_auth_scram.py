"""SCRAM-SHA-256[-PLUS] as a pure state machine, against the RFC 7677 vector and scramp."""

from __future__ import annotations

import base64

import pytest
import scramp
from hypothesis import given
from hypothesis import strategies as st

from mailstead.auth.sasl import (
    Challenge,
    KeysNeeded,
    SaslCancelled,
    SaslMalformed,
    SaslRefused,
    Verified,
)
from mailstead.auth.scram import MAX_NONCE, ScramSha256
from mailstead.auth.scram_keys import (
    MIN_ITERATIONS,
    ScramKeyError,
    ScramKeys,
    derive_keys,
    mock_keys,
    saslprep,
)
from mailstead.core.errors import AuthError

# RFC 7677 §3: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CNONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SNONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

BINDING = b"\x01" * 32
KEYS = derive_keys("pencil", MIN_ITERATIONS, salt=RFC_SALT)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def server(
    *, plus: bool = False, bindings: dict[str, bytes] | None = None, snonce: str = RFC_SNONCE
) -> ScramSha256:
    mech = ScramSha256(None, plus=plus, bindings=bindings or {}, server_nonce=snonce)
    assert mech.step(None) == Challenge(b"")
    return mech


def test_rfc7677_vector() -> None:
    mech = server()
    assert mech.step(b64(RFC_CLIENT_FIRST)) == KeysNeeded("user")
    assert mech.provide_keys(KEYS) == Challenge(RFC_SERVER_FIRST)
    result = mech.step(b64(RFC_CLIENT_FINAL))
    assert result == Verified("user", True, RFC_SERVER_FINAL)


def test_rfc7677_vector_wrong_password_is_a_failed_proof() -> None:
    mech = server()
    mech.step(b64(RFC_CLIENT_FIRST))
    mech.provide_keys(derive_keys("pencil2", MIN_ITERATIONS, salt=RFC_SALT))
    result = mech.step(b64(RFC_CLIENT_FINAL))
    assert isinstance(result, Verified) and not result.proof_ok and result.server_final == b""


def test_keys_round_trip_in_postgresql_form() -> None:
    text = KEYS.encode()
    assert text.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert ScramKeys.decode(text) == KEYS
    # The same StoredKey/ServerKey as scramp (the client library of the tests) derives.
    _salt, stored, server_key, iterations = scramp.ScramMechanism().make_auth_info(
        "pencil", iteration_count=4096, salt=RFC_SALT
    )
    assert (stored, server_key, iterations) == (KEYS.stored_key, KEYS.server_key, 4096)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "md5$abc",
        "SCRAM-SHA-1$4096:c2FsdA==$" + "A" * 44 + ":" + "A" * 44,
        "SCRAM-SHA-256$100:c2FsdA==$" + KEYS.encode().split("$")[2],  # too few iterations
        "SCRAM-SHA-256$4096:!!$" + KEYS.encode().split("$")[2],
        "SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:c2hvcnQ=",  # keys too short
    ],
)
def test_unreadable_keys(text: str) -> None:
    with pytest.raises(ScramKeyError):
        ScramKeys.decode(text)


def test_saslprep() -> None:
    assert saslprep("I\u00adX") == "IX"  # RFC 4013 §3 examples
    assert saslprep("user") == "user"
    assert saslprep("\u00aa") == "a"
    assert saslprep("\u2168") == "IX"
    with pytest.raises(ValueError):
        saslprep("\u0007")
    with pytest.raises(ValueError):
        saslprep("\u0627\u0031")  # RandALCat not at both ends


def test_password_saslprep_fallback_matches_scramp() -> None:
    """scramp SASLpreps too: a password with a non-ASCII space gives the same keys."""
    password = "pass\u00a0word"
    ours = derive_keys(password, 4096, salt=RFC_SALT)
    _, stored, _, _ = scramp.ScramMechanism().make_auth_info(password, 4096, RFC_SALT)
    assert ours.stored_key == stored == derive_keys("pass word", 4096, RFC_SALT).stored_key


def test_mock_keys_are_stable_per_name_and_secret() -> None:
    a = mock_keys(b"k" * 32, "nobody@example.org", 4096)
    assert a == mock_keys(b"k" * 32, "Nobody@Example.org", 4096)
    assert a.salt != mock_keys(b"k" * 32, "other@example.org", 4096).salt
    assert a.salt != mock_keys(b"j" * 32, "nobody@example.org", 4096).salt


# -- against scramp as the client -----------------------------------------------------------------


def run(client: scramp.ScramClient, mech: ScramSha256, keys: ScramKeys = KEYS) -> Verified:
    needed = mech.step(b64(client.get_client_first().encode()))
    assert isinstance(needed, KeysNeeded)
    first = mech.provide_keys(keys)
    client.set_server_first(first.data.decode())
    result = mech.step(b64(client.get_client_final().encode()))
    assert isinstance(result, Verified)
    return result


def test_scramp_client_without_binding() -> None:
    client = scramp.ScramClient(["SCRAM-SHA-256"], "bob@example.org", "pencil")
    result = run(client, server())
    assert result.proof_ok and result.username == "bob@example.org"
    client.set_server_final(result.server_final.decode())  # the server proved itself


def test_scramp_client_with_tls_server_end_point() -> None:
    client = scramp.ScramClient(
        ["SCRAM-SHA-256-PLUS"],
        "bob@example.org",
        "pencil",
        channel_binding=("tls-server-end-point", BINDING),
    )
    mech = server(plus=True, bindings={"tls-server-end-point": BINDING})
    result = run(client, mech)
    assert result.proof_ok and mech.binding == "tls-server-end-point"
    client.set_server_final(result.server_final.decode())


def test_binding_data_that_differs_is_refused() -> None:
    """A man in the middle terminates TLS with another certificate: the data differ."""
    client = scramp.ScramClient(
        ["SCRAM-SHA-256-PLUS"],
        "bob@example.org",
        "pencil",
        channel_binding=("tls-server-end-point", b"\x02" * 32),
    )
    with pytest.raises(SaslRefused, match="channel binding"):
        run(client, server(plus=True, bindings={"tls-server-end-point": BINDING}))


def test_binding_type_not_available_is_refused() -> None:
    client = scramp.ScramClient(
        ["SCRAM-SHA-256-PLUS"],
        "bob@example.org",
        "pencil",
        channel_binding=("tls-unique", BINDING),
    )
    with pytest.raises(SaslRefused, match="not available"):
        run(client, server(plus=True, bindings={"tls-server-end-point": BINDING}))


def test_downgrade_detected() -> None:
    """RFC 5802 §6: "y" (client can bind, thinks we cannot) where -PLUS was offered."""
    client = scramp.ScramClient(
        ["SCRAM-SHA-256"],
        "bob@example.org",
        "pencil",
        channel_binding=("tls-server-end-point", BINDING),
    )
    first = client.get_client_first().encode()
    assert first.startswith(b"y,,")
    mech = server(bindings={"tls-server-end-point": BINDING})
    with pytest.raises(SaslRefused, match="downgrade"):
        mech.step(b64(first))
    # Where no binding exists (no TLS), "y" is fine: the server really cannot bind.
    client = scramp.ScramClient(
        ["SCRAM-SHA-256"],
        "bob@example.org",
        "pencil",
        channel_binding=("tls-server-end-point", BINDING),
    )
    assert run(client, server()).proof_ok


@pytest.mark.parametrize(
    ("plus", "first"),
    [
        (True, b"n,,n=bob@example.org,r=abc"),  # -PLUS without binding
        (True, b"y,,n=bob@example.org,r=abc"),
        (False, b"p=tls-server-end-point,,n=bob@example.org,r=abc"),  # binding, non-PLUS
        (False, b"n,a=alice@example.org,n=bob@example.org,r=abc"),  # another identity
    ],
)
def test_flag_and_mechanism_mismatch_refused(plus: bool, first: bytes) -> None:
    mech = server(plus=plus, bindings={"tls-server-end-point": BINDING})
    with pytest.raises(SaslRefused):
        mech.step(b64(first))


def test_same_authzid_accepted() -> None:
    mech = server()
    assert mech.step(b64(b"n,a=bob@EXAMPLE.org,n=bob@example.org,r=abc")) == KeysNeeded(
        "bob@example.org"
    )


def test_saslname_escapes() -> None:
    mech = server()
    assert mech.step(b64(b"n,,n=a=2Cb=3Dc@example.org,r=abc")) == KeysNeeded("a,b=c@example.org")


@pytest.mark.parametrize(
    "first",
    [
        b"",
        b"n,,",
        b"x,,n=bob,r=abc",  # bad flag
        b"p=bad name,,n=bob,r=abc",
        b"n,,m=ext,n=bob,r=abc",  # mandatory extension
        b"n,,n=bob",  # no nonce
        b"n,,r=abc,n=bob",  # wrong order
        b"n,,n=,r=abc",  # empty name
        b"n,,n=bo=41b,r=abc",  # bad escape
        b"n,,n=bob,r=",  # empty nonce
        b"n,,n=bob,r=ab\x7fc",  # nonce not printable
        b"n,,n=bob,r=" + b"a" * (MAX_NONCE + 1),  # nonce too long
        b"n,,n=bob,r=abc,1=x",  # extension name not a letter
        b"n,,n=b\xffob,r=abc",  # not UTF-8
        b"n,,n=b\x00ob,r=abc",
    ],
)
def test_malformed_client_first(first: bytes) -> None:
    mech = server()
    with pytest.raises(SaslMalformed):
        mech.step(b64(first))


def test_extensions_ignored() -> None:
    mech = server()
    assert mech.step(b64(b"n,,n=bob,r=abc,x=future")) == KeysNeeded("bob")


def final_for(cnonce: str = "abc") -> str:
    return f"c=biws,r={cnonce}{RFC_SNONCE}"


@pytest.mark.parametrize(
    ("final", "error"),
    [
        (final_for(), SaslMalformed),  # no proof
        (final_for() + ",p=!!", SaslMalformed),
        (final_for() + ",p=" + base64.b64encode(b"x" * 31).decode(), SaslMalformed),
        ("r=abc,p=" + "A" * 43 + "=", SaslMalformed),  # no c=
        (f"c=biws,r=abcX{RFC_SNONCE},p=" + "A" * 43 + "=", SaslRefused),  # nonce changed
        (f"c=eSws,r=abc{RFC_SNONCE},p=" + "A" * 43 + "=", SaslRefused),  # c= says "y,,"
    ],
)
def test_bad_client_final(final: str, error: type[AuthError]) -> None:
    mech = server()
    mech.step(b64(b"n,,n=bob,r=abc"))
    mech.provide_keys(KEYS)
    with pytest.raises(error):
        mech.step(b64(final.encode()))


def test_cancel_and_order() -> None:
    mech = server()
    with pytest.raises(SaslCancelled):
        mech.step(b"*")
    mech = server()
    with pytest.raises(SaslMalformed):
        mech.provide_keys(KEYS)  # before the client-first
    mech = ScramSha256(b"=", plus=False, bindings={})
    with pytest.raises(SaslMalformed):  # "=": an empty client-first
        mech.step(None)


def test_initial_response() -> None:
    mech = ScramSha256(b64(RFC_CLIENT_FIRST), plus=False, bindings={}, server_nonce=RFC_SNONCE)
    assert mech.step(None) == KeysNeeded("user")
    assert mech.provide_keys(KEYS) == Challenge(RFC_SERVER_FIRST)
    assert mech.step(b64(RFC_CLIENT_FINAL)) == Verified("user", True, RFC_SERVER_FINAL)


@given(
    plus=st.booleans(),
    first=st.binary(max_size=120) | st.text(max_size=80).map(str.encode),
    final=st.binary(max_size=160) | st.text(max_size=120).map(str.encode),
)
def test_arbitrary_input_only_raises_auth_errors(plus: bool, first: bytes, final: bytes) -> None:
    mech = ScramSha256(None, plus=plus, bindings={"tls-server-end-point": BINDING})
    try:
        mech.step(None)
        if isinstance(mech.step(b64(first)), KeysNeeded):
            mech.provide_keys(KEYS)
            result = mech.step(b64(final))
            assert isinstance(result, Verified) and not result.proof_ok
    except (AuthError, SaslCancelled):
        pass
