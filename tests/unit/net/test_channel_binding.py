"""tls-server-end-point (RFC 5929 §4.1) hashes and which bindings a connection has."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from scramp.core import CBindData

from mailstead.net.channel_binding import channel_bindings, server_end_point
from mailstead.net.tls import TLSContexts, ensure_self_signed


def certificate(key: object, algorithm: hashes.HashAlgorithm | None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(1))
    )
    return builder.sign(key, algorithm)  # type: ignore[arg-type]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        (hashes.SHA256(), "sha256"),
        (hashes.SHA384(), "sha384"),
        (hashes.SHA512(), "sha512"),
    ],
)
def test_end_point_hash_follows_the_signature(algorithm: hashes.HashAlgorithm, digest: str) -> None:
    cert = certificate(ec.generate_private_key(ec.SECP256R1()), algorithm)
    assert server_end_point(cert) == hashlib.new(digest, der(cert)).digest()
    assert server_end_point(cert) == CBindData.from_der(der(cert)).data  # what scramp sends


class OldCertificate:
    """What a SHA-1 or MD5 signed certificate shows (cryptography no longer signs them)."""

    def __init__(self, algorithm: hashes.HashAlgorithm) -> None:
        self.signature_hash_algorithm = algorithm

    def public_bytes(self, encoding: serialization.Encoding) -> bytes:
        return b"DER of an old certificate"


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.MD5()])
def test_md5_and_sha1_become_sha256(algorithm: hashes.HashAlgorithm) -> None:
    """RFC 5929 §4.1."""
    old = OldCertificate(algorithm)
    assert server_end_point(old) == hashlib.sha256(b"DER of an old certificate").digest()  # type: ignore[arg-type]


def test_rsa_certificate() -> None:
    cert = certificate(rsa.generate_private_key(65537, 2048), hashes.SHA256())
    assert server_end_point(cert) == hashlib.sha256(der(cert)).digest()


def test_no_end_point_for_signatures_without_a_hash() -> None:
    assert server_end_point(certificate(ed25519.Ed25519PrivateKey.generate(), None)) is None


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """A TLS handshake in memory; the server's SSLObject."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    cli = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    done = {"s": False, "c": False}
    for _ in range(20):
        for key, obj, out, peer_in in (("c", cli, c_out, s_in), ("s", srv, s_out, c_in)):
            if not done[key]:
                try:
                    obj.do_handshake()
                    done[key] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return srv
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_bindings_of_a_connection(tmp_path: Path, version: ssl.TLSVersion) -> None:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert_path, key_path, "localhost")
    contexts = TLSContexts(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    client.maximum_version = version
    conn = handshake(contexts.server_context, client)
    bindings = channel_bindings(conn)
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert bindings["tls-server-end-point"] == hashlib.sha256(der(leaf)).digest()
    # RFC 9266 §3: tls-unique only below TLS 1.3.
    assert ("tls-unique" in bindings) == (version is ssl.TLSVersion.TLSv1_2)
    assert channel_bindings(None) == {}
    # A context mailstead did not build (no known certificate): no end-point binding.
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    other.load_cert_chain(cert_path, key_path)
    assert "tls-server-end-point" not in channel_bindings(handshake(other, client))
