"""Fixtures for net tests: a self-signed certificate made once per session."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from mailstead.net.tls import TLSContexts, ensure_self_signed


@pytest.fixture(scope="session")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    ensure_self_signed(cert, key, "localhost")
    return cert, key


@pytest.fixture
def tls_contexts(cert_files: tuple[Path, Path]) -> TLSContexts:
    return TLSContexts(*cert_files)


@pytest.fixture
def client_context(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A verifying client context that trusts exactly our self-signed certificate."""
    return ssl.create_default_context(cafile=str(cert_files[0]))
