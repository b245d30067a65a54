"""mbsync (Debian package ``isync``) synchronises a local Maildir with mailstead both ways.

mbsync talks IMAPS to the test server, trusting its self-signed certificate through
``CertificateFile``, and keeps its sync state in the Maildir. Each test starts from a fresh
account and one initial pull, then checks one direction: local flag changes and deletions
pushed to the server, new server mail and server-side flag changes pulled, a new local
message appended to the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.core.types import FlagMode
from mailstead.mime.stored import StoredStructure
from mailstead.store.models import MessageMeta, Recipient
from mailstead.store.models import User as StoreUser
from mailstead.testing.server import ServerThread

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (isync) not installed"),
]

PASSWORD = "sync me both ways"

#: Maildir info flags (https://cr.yp.to/proto/maildir.html) <-> IMAP system flags.
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                 "T": "\\Deleted"}


def message(subject: str) -> bytes:
    return (
        f"From: Sender <sender@example.net>\r\nTo: mb@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.net>\r\n"
        f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nbody of {subject}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(tmp_path_factory.mktemp("mbsync-server")) as srv:
        yield srv


class Sync:
    """One account on the server and one mbsync set-up (config + Maildir) for it."""

    _accounts = 0

    def __init__(self, server: ServerThread, root: Path, patterns: str = "INBOX") -> None:
        Sync._accounts += 1
        self.address = f"mb{Sync._accounts}@example.org"
        self.server = server
        self.user: StoreUser = server.add_user(self.address, PASSWORD)
        self.root = root
        self.maildir = root / "mail"
        self.maildir.mkdir()
        self.config = root / "mbsyncrc"
        self.config.write_text(
            f"IMAPAccount mailstead\n"
            f"Host 127.0.0.1\n"
            f"Port {server.port('imaps')}\n"
            f"User {self.address}\n"
            f'Pass "{PASSWORD}"\n'
            f"SSLType IMAPS\n"
            f"SystemCertificates no\n"
            f"CertificateFile {server.cert_path}\n"
            f"\n"
            f"IMAPStore remote\n"
            f"Account mailstead\n"
            f"\n"
            f"MaildirStore local\n"
            f"Path {self.maildir}/\n"
            f"Inbox {self.maildir}/INBOX\n"
            f"SubFolders Verbatim\n"
            f"\n"
            f"Channel mailstead\n"
            f"Far :remote:\n"
            f"Near :local:\n"
            f"Patterns {patterns}\n"
            f"Create Both\n"
            f"Expunge Both\n"
            f"SyncState *\n"
            f"Sync All\n"
        )
        self.config.chmod(0o600)

    # -- running mbsync --------------------------------------------------------------------
    def run(self) -> str:
        env = dict(os.environ, HOME=str(self.root))
        proc = subprocess.run(
            ["mbsync", "-c", str(self.config), "-V", "mailstead"],
            capture_output=True, text=True, env=env, timeout=30, check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"mbsync failed ({proc.returncode}):\n{output}"
        return output

    # -- the local side ----------------------------------------------------------------------
    def local_files(self) -> dict[str, Path]:
        """Subject -> file, for every message in the local INBOX (new/ and cur/)."""
        out: dict[str, Path] = {}
        for sub in ("new", "cur"):
            for path in (self.maildir / "INBOX" / sub).iterdir():
                for line in path.read_bytes().splitlines():
                    if line.startswith(b"Subject: "):
                        out[line[9:].decode()] = path
                        break
        return out

    @staticmethod
    def local_flags(path: Path) -> set[str]:
        _, _, info = path.name.partition(":2,")
        return {MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS}

    @staticmethod
    def set_local_flags(path: Path, flags: str) -> Path:
        """Rename a message to carry the given Maildir flags (as a mail reader would)."""
        base = path.name.partition(":2,")[0]
        target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
        path.rename(target)
        return target

    def add_local(self, data: bytes, name: str) -> None:
        tmp = self.maildir / "INBOX" / "tmp" / name
        tmp.write_bytes(data.replace(b"\r\n", b"\n"))
        tmp.rename(self.maildir / "INBOX" / "new" / name)

    # -- the server side ---------------------------------------------------------------------
    def deliver(self, subject: str) -> None:
        self.server.call(self.server.store.deliver(message(subject), [Recipient(self.user.id)]))

    def server_messages(self) -> dict[str, MessageMeta]:
        """Subject -> metadata for every message in the server's INBOX."""
        store = self.server.store

        async def read() -> dict[str, MessageMeta]:
            box = await store.get_mailbox(self.user.id, "INBOX")
            out = {}
            for meta in await store.list_messages(box.id):
                subject = StoredStructure(await store.get_structure(meta.blob_id)).subject
                out[str(subject)] = meta
            return out

        return self.server.call(read())

    def server_flags(self, subject: str, mode: FlagMode, flags: list[str]) -> None:
        store = self.server.store
        meta = self.server_messages()[subject]

        async def change() -> None:
            box = await store.get_mailbox(self.user.id, "INBOX")
            await store.store_flags(box.id, [meta.uid], mode, flags)

        self.server.call(change())


@pytest.fixture
def sync(server: ServerThread, tmp_path: Path) -> Sync:
    """An account with three messages (one already \\Seen), pulled once by mbsync."""
    s = Sync(server, tmp_path)
    for subject in ("first", "second", "third"):
        s.deliver(subject)
    s.server_flags("first", FlagMode.ADD, ["\\Seen"])
    s.run()
    return s


def test_initial_pull_copies_messages_and_flags(sync: Sync) -> None:
    files = sync.local_files()
    assert set(files) == {"first", "second", "third"}
    assert sync.local_flags(files["first"]) == {"\\Seen"}
    assert sync.local_flags(files["second"]) == set()
    body = files["third"].read_bytes()
    assert b"body of third" in body
    # A second run with nothing changed changes nothing on either side.
    before = {subject: meta.flags for subject, meta in sync.server_messages().items()}
    sync.run()
    assert set(sync.local_files()) == {"first", "second", "third"}
    assert {s: m.flags for s, m in sync.server_messages().items()} == before


def test_local_flag_change_and_deletion_are_pushed(sync: Sync) -> None:
    files = sync.local_files()
    sync.set_local_flags(files["second"], "FS")
    files["third"].unlink()
    sync.run()
    on_server = sync.server_messages()
    assert set(on_server) == {"first", "second"}
    assert {"\\Seen", "\\Flagged"} <= on_server["second"].flags
    assert "\\Deleted" not in on_server["second"].flags
    assert set(sync.local_files()) == {"first", "second"}


def test_new_server_message_and_server_flags_are_pulled(sync: Sync) -> None:
    sync.deliver("fourth")
    sync.server_flags("second", FlagMode.ADD, ["\\Flagged", "\\Answered"])
    sync.server_flags("first", FlagMode.REMOVE, ["\\Seen"])
    sync.run()
    files = sync.local_files()
    assert set(files) == {"first", "second", "third", "fourth"}
    assert b"body of fourth" in files["fourth"].read_bytes()
    assert sync.local_flags(files["second"]) == {"\\Flagged", "\\Answered"}
    assert sync.local_flags(files["first"]) == set()


def test_new_local_message_is_appended_to_the_server(sync: Sync) -> None:
    sync.add_local(message("written offline"), "1764064800.M1P1.laptop")
    sync.run()
    on_server = sync.server_messages()
    assert set(on_server) == {"first", "second", "third", "written offline"}
    store = sync.server.store
    raw = sync.server.call(store.read_blob(on_server["written offline"].blob_id))
    assert b"body of written offline" in raw
    # mbsync renamed the local file to carry the server's UID and keeps it.
    assert set(sync.local_files()) == set(on_server)


def test_server_expunge_is_pulled(sync: Sync) -> None:
    store = sync.server.store
    meta = sync.server_messages()["first"]

    async def delete() -> None:
        box = await store.get_mailbox(sync.user.id, "INBOX")
        await store.delete_messages(box.id, [meta.uid])

    sync.server.call(delete())
    sync.run()
    assert set(sync.local_files()) == {"second", "third"}


def test_folders_are_created_both_ways(server: ServerThread, tmp_path: Path) -> None:
    """``Patterns *``: server folders (nested, non-ASCII in modified UTF-7, special-use)
    appear locally; a new local folder and its message appear on the server."""
    s = Sync(server, tmp_path, patterns="*")
    store = server.store
    server.call(store.create_mailbox(s.user.id, "Work/Projects"))
    server.call(store.create_mailbox(s.user.id, "Caf\u00e9"))
    s.run()
    local = {p.relative_to(s.maildir).as_posix() for p in s.maildir.rglob("cur")}
    # mbsync names non-ASCII folders by their modified UTF-7 wire form (RFC 3501 §5.1.3).
    assert {"INBOX/cur", "Work/Projects/cur", "Caf&AOk-/cur", "Trash/cur"} <= local

    folder = s.maildir / "Reading List"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    (folder / "new" / "1764064800.M2P1.laptop").write_bytes(
        message("read later").replace(b"\r\n", b"\n")
    )
    s.run()

    async def read() -> list[bytes]:
        box = await store.get_mailbox(s.user.id, "Reading List")
        return [await store.read_blob(m.blob_id) for m in await store.list_messages(box.id)]

    bodies = server.call(read())
    assert len(bodies) == 1 and b"body of read later" in bodies[0]
