"""Runs as a separate process for the crash test: several clients append concurrently and
print ``ACK <client> <seq> <uid> <sha256>`` once each append has returned. The test kills
this process with SIGKILL mid-stream and checks every acknowledged message survived."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

from mailstead.store.sql.sqlite import SQLiteStore


def body(client: int, seq: int) -> bytes:
    filler = (f"client {client} message {seq} ".encode() * 200)[: 4096 + seq % 512]
    return f"Subject: crash {client}/{seq}\r\n\r\n".encode() + filler + b"\r\n"


async def client(store: SQLiteStore, mailbox_id: int, number: int) -> None:
    seq = 0
    while True:
        data = body(number, seq)
        result = await store.append(mailbox_id, data)
        digest = hashlib.sha256(data).hexdigest()
        sys.stdout.write(f"ACK {number} {seq} {result.uid} {digest}\n")
        sys.stdout.flush()
        seq += 1


async def main(data_dir: Path, clients: int) -> None:
    store = SQLiteStore(data_dir)
    await store.open()
    user = await store.find_user("crash@example.org")
    if user is None:
        await store.add_domain("example.org")
        user = await store.add_user("crash@example.org", "hash")
    inbox = await store.get_mailbox(user.id, "INBOX")
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await asyncio.gather(*(client(store, inbox.id, n) for n in range(clients)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
