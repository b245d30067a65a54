"""Self-signed certificate creation, a real handshake, and reload on SIGHUP."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from mailstead.core.errors import ConfigError
from mailstead.net.tls import TLSContexts, describe_tls, ensure_self_signed


def test_creates_once_with_private_key_mode(tmp_path: Path) -> None:
    cert, key = tmp_path / "sub" / "cert.pem", tmp_path / "sub" / "key.pem"
    assert ensure_self_signed(cert, key, "mail.example.org") is True
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = cert.read_bytes()
    assert ensure_self_signed(cert, key, "mail.example.org") is False
    assert cert.read_bytes() == before
    assert not list(cert.parent.glob("*.tmp"))


def test_san_names(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, "localhost")
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    lifetime = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    assert 700 <= lifetime.days <= 740


def test_recreates_when_one_file_missing(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, "localhost")
    key.unlink()
    assert ensure_self_signed(cert, key, "localhost") is True
    TLSContexts(cert, key)  # the pair matches again


def test_context_settings(tls_contexts: TLSContexts) -> None:
    ctx = tls_contexts.server_context
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION


async def _serve_once(ctx_source: TLSContexts) -> tuple[asyncio.Server, int]:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\r\n")
        await writer.drain()
        writer.close()

    # Like the listeners: the context is looked up per connection, via start_tls.
    async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await writer.start_tls(ctx_source.server_context)
        await on_connect(reader, writer)

    server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _peer_cert(port: int, client: ssl.SSLContext) -> tuple[bytes, str]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname="localhost"
    )
    assert await reader.readline() == b"hello\r\n"
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    info = describe_tls(ssl_object)
    writer.close()
    return der, info


async def test_real_handshake_and_reload(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    ensure_self_signed(first / "cert.pem", first / "key.pem", "localhost")
    ensure_self_signed(second / "cert.pem", second / "key.pem", "localhost")
    live = tmp_path / "live"
    shutil.copytree(first, live)
    contexts = TLSContexts(live / "cert.pem", live / "key.pem")
    server, port = await _serve_once(contexts)
    try:
        client_a = ssl.create_default_context(cafile=str(first / "cert.pem"))
        der_a, info = await _peer_cert(port, client_a)
        assert info.startswith("TLSv1.") and " " in info

        # Replace the files and reload (what SIGHUP does): the next handshake uses the new one.
        shutil.copy(second / "cert.pem", live / "cert.pem")
        shutil.copy(second / "key.pem", live / "key.pem")
        contexts.reload()
        client_b = ssl.create_default_context(cafile=str(second / "cert.pem"))
        der_b, _ = await _peer_cert(port, client_b)
        assert der_a != der_b
        with pytest.raises(ssl.SSLCertVerificationError):
            await _peer_cert(port, client_a)
    finally:
        server.close()


async def test_bad_reload_keeps_old_context(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, "localhost")
    contexts = TLSContexts(cert, key)
    old = contexts.server_context
    good_cert = cert.read_bytes()

    cert.write_bytes(b"not a certificate")
    with pytest.raises(ConfigError) as info:
        contexts.reload()
    assert info.value.file == str(cert)
    assert contexts.server_context is old

    cert.write_bytes(good_cert)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as info:
        contexts.reload()
    assert info.value.file == str(key)
    assert contexts.server_context is old

    server, port = await _serve_once(contexts)
    try:
        client = ssl.create_default_context(cafile=str(cert))
        await _peer_cert(port, client)  # still serving the old certificate
    finally:
        server.close()


def test_mismatched_key_names_key_file(tmp_path: Path) -> None:
    ensure_self_signed(tmp_path / "a" / "c.pem", tmp_path / "a" / "k.pem", "localhost")
    ensure_self_signed(tmp_path / "b" / "c.pem", tmp_path / "b" / "k.pem", "localhost")
    with pytest.raises(ConfigError) as info:
        TLSContexts(tmp_path / "a" / "c.pem", tmp_path / "b" / "k.pem")
    assert info.value.file == str(tmp_path / "b" / "k.pem")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        TLSContexts(tmp_path / "nope.pem", tmp_path / "key.pem")
    assert info.value.file == str(tmp_path / "nope.pem")


def test_describe_tls_without_tls() -> None:
    assert describe_tls(None) == ""
