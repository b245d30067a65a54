"""Both key types sign, and the signature verifies against the published record."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest

from mailstead.delivery.dkim import generate_key, sign_message

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: bob@remote.test\r\n"
    b"Subject: signed\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1@example.org>\r\n\r\nHello, Bob.\r\n"
)


@pytest.mark.parametrize("algorithm", ["rsa2048", "ed25519"])
def test_signature_verifies_against_the_txt_record(tmp_path: Path, algorithm: str) -> None:
    key = generate_key(tmp_path, "example.org", "s1", algorithm)
    signed = sign_message(MESSAGE, key) + MESSAGE

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.org."
        return key.txt_value.encode()

    assert dkim.verify(signed, dnsfunc=dnsfunc)
    tampered = signed.replace(b"Hello, Bob.", b"Hello, Eve.")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)
