"""Message data on its way in: in memory while small, in a spool file beyond the threshold,
under a memory budget and a disk budget that are whole again once the message is over."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mailstead.core.budget import InputBudget, Reservation
from mailstead.core.message_data import HEAD_LIMIT, MessageData
from mailstead.core.spool import SpoolDir

THRESHOLD = 4096


def _dir(tmp_path: Path, *, memory: int = 1 << 20, disk: int = 1 << 24) -> SpoolDir:
    return SpoolDir(tmp_path / "spool", threshold=THRESHOLD, memory=InputBudget(memory),
                    disk=InputBudget(disk))


def _used(spools: SpoolDir) -> tuple[int, int]:
    assert spools.memory is not None and spools.disk is not None
    return spools.memory.used, spools.disk.used


def _files(spools: SpoolDir) -> list[Path]:
    assert spools.path is not None
    return sorted(spools.path.iterdir())


def test_a_small_message_stays_in_memory(tmp_path: Path) -> None:
    spools = _dir(tmp_path)
    spools.clear()
    spool = spools.spool()

    async def run() -> MessageData:
        assert await spool.write(b"Subject: s\r\n\r\n")
        assert await spool.write(b"body\r\n")
        return await spool.finish()

    data = asyncio.run(run())
    assert data.in_memory and data.read() == b"Subject: s\r\n\r\nbody\r\n"
    assert _files(spools) == []
    assert _used(spools) == (len(data), 0)
    spool.close()
    assert _used(spools) == (0, 0)


def test_a_large_message_goes_to_a_file_and_leaves_with_it(tmp_path: Path) -> None:
    spools = _dir(tmp_path)
    spools.clear()
    spool = spools.spool()
    lines = [b"Subject: big\r\n\r\n"] + [b"%06d ........................\r\n" % i
                                        for i in range(2000)]
    expected = b"".join(lines)

    async def run() -> MessageData:
        for line in lines:
            assert await spool.write(line)
            memory, _ = _used(spools)
            assert memory <= THRESHOLD + len(line)  # never more than the threshold held
        return await spool.finish()

    data = asyncio.run(run())
    assert not data.in_memory and spool.on_disk
    assert [p.read_bytes() for p in _files(spools)] == [expected]
    assert _used(spools) == (0, len(expected))
    assert len(data) == len(expected)
    assert data.read() == expected
    assert b"".join(data.pieces(1000)) == expected
    assert data.head == expected[:HEAD_LIMIT]
    traced = data.prefixed(b"Received: x\r\n").prefixed(b"Return-Path: <>\r\n")
    assert traced.read() == b"Return-Path: <>\r\nReceived: x\r\n" + expected
    assert len(traced) == len(expected) + 30
    assert traced.head.startswith(b"Return-Path: <>\r\nReceived: x\r\nSubject: big")
    spool.close()
    assert _files(spools) == [] and _used(spools) == (0, 0)
    spool.close()  # twice is harmless


def test_the_disk_budget_refuses_and_gives_everything_back(tmp_path: Path) -> None:
    spools = _dir(tmp_path, disk=3 * THRESHOLD)
    spools.clear()
    spool = spools.spool()

    async def run() -> list[bool]:
        return [await spool.write(b"x" * 1000) for _ in range(20)]

    results = asyncio.run(run())
    assert results[:4] == [True] * 4 and not any(results[-5:])
    assert spool.refused
    assert _files(spools) == [] and _used(spools) == (0, 0)  # nothing kept once refused
    with pytest.raises(ValueError):
        asyncio.run(spool.finish())
    spool.close()
    assert _used(spools) == (0, 0)


def test_the_memory_budget_refuses(tmp_path: Path) -> None:
    spools = _dir(tmp_path, memory=2000)
    first, second = spools.spool(), spools.spool()

    async def run() -> tuple[bool, bool]:
        return await first.write(b"a" * 1500), await second.write(b"b" * 1000)

    assert asyncio.run(run()) == (True, False)
    assert second.refused and _used(spools) == (1500, 0)
    first.close()
    second.close()
    assert _used(spools) == (0, 0)


def test_a_known_size_is_reserved_before_it_arrives(tmp_path: Path) -> None:
    spools = _dir(tmp_path, disk=10_000)
    spools.clear()
    big, other = spools.spool(), spools.spool()
    assert big.expect(9000)
    assert not other.expect(2000) and other.refused  # refused before a byte arrives

    async def run() -> MessageData:
        for _ in range(9):
            assert await big.write(b"y" * 1000)  # within what expect() paid for
        return await big.finish()

    data = asyncio.run(run())
    assert data.read() == b"y" * 9000
    assert _used(spools) == (0, 9000)
    big.close()
    other.close()
    assert _used(spools) == (0, 0)


def test_a_failing_disk_refuses_the_message(tmp_path: Path) -> None:
    spools = _dir(tmp_path)
    spools.clear()
    spool = spools.spool()
    assert spools.path is not None
    spools.path.rmdir()  # the next write cannot open its file

    async def run() -> bool:
        return await spool.write(b"z" * (THRESHOLD + 1))

    assert not asyncio.run(run())
    assert spool.refused and _used(spools) == (0, 0)
    spool.close()


def test_leftovers_of_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    spools = _dir(tmp_path)
    spools.clear()
    assert spools.path is not None
    dead = spools.path / "999999999-0.msg"  # no process has this pid
    mine = spools.path / f"{os.getpid()}-7.msg"  # this process, before it started again
    other = spools.path / f"{os.getppid()}-3.msg"  # another worker, still running
    for path in (dead, mine, other):
        path.write_bytes(b"unfinished")
    assert spools.clear() == 2
    assert _files(spools) == [other]


def test_message_data_in_memory_or_in_a_file_not_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MessageData(b"", b"x", tmp_path / "f", 1)
    with pytest.raises(ValueError):
        MessageData(b"", None, None, 0)
    data = MessageData.of(b"abc")
    assert MessageData.of(data) is data and data.prefixed(b"X: y\r\n").read() == b"X: y\r\nabc"


class _Doubler:
    """A transform that doubles every octet (so the rewrite grows the message)."""

    def feed(self, piece: bytes) -> bytes:
        return bytes(b for c in piece for b in (c, c))

    def end(self) -> bytes:
        return b"!"


@pytest.mark.parametrize("size", [1000, 3 * THRESHOLD + 5])
def test_a_rewrite_replaces_the_octets_and_their_budget(tmp_path: Path, size: int) -> None:
    spools = _dir(tmp_path)
    spools.clear()
    spool = spools.spool()
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    async def run() -> MessageData:
        for n in range(0, len(data), 700):
            assert await spool.write(data[n : n + 700])
        assert await spool.rewrite(_Doubler())
        return await spool.finish()

    message = asyncio.run(run())
    expected = bytes(b for c in data for b in (c, c)) + b"!"
    assert message.read() == expected and len(message) == len(expected)
    assert message.head == expected[:HEAD_LIMIT]
    memory, disk = _used(spools)
    assert (memory, disk) == ((len(expected), 0) if message.in_memory else (0, len(expected)))
    assert len(_files(spools)) == (0 if message.in_memory else 1)
    spool.close()
    assert _used(spools) == (0, 0) and _files(spools) == []


def test_one_client_cannot_take_the_whole_disk_budget(tmp_path: Path) -> None:
    spools = SpoolDir(tmp_path / "spool", threshold=THRESHOLD, memory=InputBudget(1 << 20),
                      disk=InputBudget(1 << 20), per_client=2 * THRESHOLD)
    spools.clear()
    first, second = spools.spool("192.0.2.1"), spools.spool("192.0.2.1")
    other = spools.spool("2001:db8::/64")

    async def run() -> tuple[bool, bool, bool]:
        filled = all([await first.write(b"a" * 1000) for _ in range(2 * THRESHOLD // 1000)])
        over = all([await second.write(b"b" * 1000) for _ in range(2 * THRESHOLD // 1000)])
        elsewhere = all([await other.write(b"c" * 1000) for _ in range(2 * THRESHOLD // 1000)])
        return filled, over, elsewhere

    assert asyncio.run(run()) == (True, False, True)  # the same client's second is refused
    assert second.refused and not other.refused
    for spool in (first, second, other, first):  # closing twice counts once
        spool.close()
    assert _used(spools) == (0, 0) and spools._clients == {}
    assert spools.spool(None)._client is None  # not counted per client


def test_a_reservation_takes_from_every_budget_or_none() -> None:
    process, client = InputBudget(100), InputBudget(50)
    held = Reservation(process, client)
    assert held.take(40) and (process.used, client.used) == (40, 40)
    assert not held.take(20) and (process.used, client.used) == (40, 40)  # the client's
    held.close()
    assert (process.used, client.used) == (0, 0)
