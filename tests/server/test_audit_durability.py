"""kill -9 while the admin API is making changes: every acknowledged change is on disk with
its audit record, and no change or record is on disk without the other."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from mailstead.admin.actors import command_line
from mailstead.cli.serve import build_admin
from mailstead.store.sql.sqlite import SQLiteStore
from mailstead.testing.server import SubprocessServer


async def _make_token(server: SubprocessServer) -> str:
    async with SQLiteStore(server.data_dir) as store:
        admin = build_admin(store, server.settings)
        return (await admin.create_token(command_line(), "crash test", "admin")).text


def test_kill_9_keeps_changes_and_their_audit_records_together(tmp_path: Path) -> None:
    server = SubprocessServer(tmp_path, {"auth": {"allow_plaintext": True}})
    token = asyncio.run(_make_token(server))
    server.start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        url = f"http://127.0.0.1:{server.port('http')}/api/v1/domains"
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                name = f"d{worker}-{n}.test"
                try:
                    response = client.post(url, json={"name": name})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 201:
                    acknowledged.append(name)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        while len(acknowledged) < 40 and all(t.is_alive() for t in threads):
            threading.Event().wait(0.01)
        server.kill()  # in the middle of the stream of writes
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.kill()
    assert len(acknowledged) >= 40

    async def read() -> tuple[set[str], list[str]]:
        async with SQLiteStore(server.data_dir) as store:
            domains = {d.name for d in await store.list_domains()}
            records = [r.target for r in await store.audit_log(limit=100_000)
                       if r.action == "domain.add"]
            return domains, records

    domains, records = asyncio.run(read())
    assert set(acknowledged) <= domains  # acknowledged means on disk
    assert sorted(records) == sorted(domains)  # one record per domain, none without it
