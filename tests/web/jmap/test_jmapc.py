"""A real JMAP client, jmapc (requests over the network), against the JMAP routes served by
mailstead's own HTTP server (http/server.py) on an implicit-TLS listener: jmapc only speaks
https, and finds the session at /.well-known/jmap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jmapc
import pytest
from starlette.applications import Starlette

from mailstead.config.schema import HTTPSettings, ListenerSettings
from mailstead.http.jmap.app import build_jmap
from mailstead.http.server import HTTPServer
from mailstead.net.listener import Listener
from mailstead.net.tls import TLSContexts, ensure_self_signed
from tests.web.jmap.memory import Blobs, services

ALICE = ("alice@example.org", "alice's password")


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[tuple[int, Path, Blobs]]:
    """The JMAP routes on an https listener: (port, the certificate to trust, the blobs)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, "localhost")
    blobs = Blobs()
    app = Starlette(routes=build_jmap(services(blobs=blobs)))
    handler, reject = HTTPServer(app, HTTPSettings()).endpoint(
        "https", ListenerSettings(tls="implicit")
    )
    listener = Listener(
        "https",
        "127.0.0.1",
        0,
        handler,
        tls=TLSContexts(cert, key),
        implicit_tls=True,
        reject=reject,
    )
    await listener.start()
    try:
        yield listener.port, cert, blobs
    finally:
        await listener.stop(1.0)


def jmapc_client(port: int, cert: Path) -> jmapc.Client:
    client = jmapc.Client.create_with_password(f"localhost:{port}", *ALICE)
    client.requests_session.trust_env = False  # REQUESTS_CA_BUNDLE would win over verify
    client.requests_session.verify = str(cert)
    return client


async def test_core_echo_through_jmapc(https: tuple[int, Path, Blobs]) -> None:
    port, cert, _ = https

    def talk() -> tuple[str, Any, Any]:
        client = jmapc_client(port, cert)
        single = client.request(jmapc.methods.CoreEcho(data={"hello": ["world", 1]}))
        batch = client.request(
            [jmapc.methods.CoreEcho(data={"n": 1}), jmapc.methods.CoreEcho(data={"n": 2})]
        )
        return client.account_id, single, batch

    account_id, single, batch = await asyncio.to_thread(talk)
    assert account_id.startswith("A")
    assert isinstance(single, jmapc.methods.CoreEchoResponse)
    assert single.data == {"hello": ["world", 1]}
    assert [(r.id, r.response.data) for r in batch] == [
        ("0.Core/echo", {"n": 1}),
        ("1.Core/echo", {"n": 2}),
    ]


async def test_upload_and_download_through_jmapc(
    https: tuple[int, Path, Blobs], tmp_path: Path
) -> None:
    port, cert, blobs = https
    source = tmp_path / "note.txt"
    source.write_bytes("grüße\n".encode() * 100)
    target = tmp_path / "back.txt"

    def talk() -> Any:
        client = jmapc_client(port, cert)
        blob = client.upload_blob(source)
        client.download_attachment(
            jmapc.EmailBodyPart(blob_id=blob.id, name="note.txt", type="text/plain"), target
        )
        return blob

    blob = await asyncio.to_thread(talk)
    assert (blob.type, blob.size) == ("text/plain", source.stat().st_size)
    assert target.read_bytes() == source.read_bytes()
    assert list(blobs.held.values()) == [(source.read_bytes(), "text/plain")]
