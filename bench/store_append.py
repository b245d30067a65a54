"""store-append: durable appends per second, against plain write+fsync in the same run.

mailstead's append writes the body (fsync), parses it once, and commits the metadata
(one WAL fsync shared by every append in the batch). The baseline is the least a durable
store could do: a loop writing the same bytes to new files with an fsync each.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bench.harness import BenchEnv, Result
from mailstead.cli.serve import parse_structure
from mailstead.store.sql.sqlite import SQLiteStore


def make_message(n: int, size: int) -> bytes:
    head = (
        f"From: Bench <bench@example.org>\r\nTo: user@example.org\r\n"
        f"Subject: benchmark message {n}\r\nMessage-ID: <{n}.{size}@bench>\r\n"
        f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again. 0123456789\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def baseline_fsync_files(directory: Path, messages: list[bytes]) -> float:
    """Files per second for write + fsync of each message, one after another."""
    started = time.perf_counter()
    for n, data in enumerate(messages):
        fd = os.open(directory / f"{n}.eml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    return len(messages) / (time.perf_counter() - started)


async def store_appends(directory: Path, messages: list[bytes], writers: int) -> float:
    store = SQLiteStore(directory, parse=parse_structure)
    await store.open()
    try:
        await store.add_domain("example.org")
        user = await store.add_user("user@example.org", "x")
        inbox = await store.get_mailbox(user.id, "INBOX")
        queue = list(enumerate(messages))

        async def writer() -> None:
            while queue:
                _, data = queue.pop()
                await store.append(inbox.id, data)

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        elapsed = time.perf_counter() - started
        assert (await store.get_mailbox_by_id(inbox.id)).message_count == len(messages)
        return len(messages) / elapsed
    finally:
        await store.close()


def run(env: BenchEnv) -> list[Result]:
    results = []
    for size, label in ((4 * 1024, "4 KiB"), (100 * 1024, "100 KiB")):
        count = env.scale(2000, 300) if size < 10_000 else env.scale(400, 100)
        messages = [make_message(n, size) for n in range(count)]
        baseline = baseline_fsync_files(env.scratch("baseline"), messages)
        for writers in (1, 10, 100):
            rate = asyncio.run(store_appends(env.scratch("store"), messages, writers))
            results.append(Result(
                "store-append", f"{label}, {writers} writer{'s' if writers > 1 else ''}",
                rate, "msg/s", baseline, "write+fsync loop",
                notes=f"{count} messages",
            ))
    return results
