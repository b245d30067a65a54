"""The application's routes, called in process (httpx's ASGI transport)."""

from __future__ import annotations

import httpx

from mailstead.core.errors import StorageUnavailable
from mailstead.http.app import HTTPServices, build_app
from mailstead.store.models import Domain


class _Directory:
    def __init__(self, failing: bool = False) -> None:
        self.failing = failing

    async def list_domains(self) -> list[Domain]:
        if self.failing:
            raise StorageUnavailable("database is locked")
        return []


class _Queue:
    def __init__(self, running: bool) -> None:
        self.running = running


async def _get(services: HTTPServices, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_health_is_ready_when_the_store_answers_and_the_queue_runs() -> None:
    response = await _get(HTTPServices(_Directory(), _Queue(True)), "/health")  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"store": "ok", "queue": "ok"}}


async def test_health_says_what_is_not_ready() -> None:
    response = await _get(HTTPServices(_Directory(failing=True), _Queue(False)),  # type: ignore[arg-type]
                          "/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank", "title": "Service Unavailable", "status": 503,
        "detail": "not ready: store failing, queue stopped",
    }
