"""A throw-away Dovecot for interop tests: unprivileged config in a temp dir, 127.0.0.1 only.

``Dovecot(tmp).start()`` writes a self-contained ``dovecot.conf`` (no system config is read),
a passwd-file with one user and an empty Maildir, then runs ``dovecot -F -c <conf>`` in the
foreground as a child process listening on a free loopback port. ``deliver`` writes messages
straight into ``Maildir/cur`` (``deliver_new``: into ``Maildir/new``); ``fetch_items`` logs
in over plain TCP and runs one ``FETCH 1:*`` for all messages, returning the exact wire octets
of each requested item.

Also used by the conformance runner to check the runner itself against a known-good server.
``Dovecot(pop3=True)`` also serves POP3 on ``pop3_port`` (used by ``bench/pop3_download.py``);
``mail_fsync`` defaults to ``never`` for tests, a benchmark may ask for Dovecot's default.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from mailstead.testing.server import free_port

USER = "tester"
PASSWORD = "pass"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None
    )


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _dovecot_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    m = re.match(r"(\d+)\.(\d+)", out.stdout.strip())
    return (int(m.group(1)), int(m.group(2))) if m else (2, 3)


class Dovecot:
    """One Dovecot instance; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        users: Sequence[tuple[str, str]] = ((USER, PASSWORD),),
        *,
        pop3: bool = False,
        mail_fsync: str = "never",
        extra_config: str = "",
    ) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("dovecot is not installed")
        self.binary = binary
        # Our own world-traversable dir: as root, mail processes run as an unprivileged
        # user (Dovecot refuses UID 0 for mail) and must reach the Maildir.
        self.root = root = Path(tempfile.mkdtemp(prefix="mailstead-dovecot-"))
        root.chmod(0o755)
        self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
        if self.mail_uid == 0:
            for name in ("dovecot", "dovenull", "nobody"):
                if _has_user(name):
                    entry = pwd.getpwnam(name)
                    self.mail_uid, self.mail_gid = entry.pw_uid, entry.pw_gid
                    break
        self.users = list(users)
        self.port = free_port()
        self.pop3_port: int | None = free_port() if pop3 else None
        self.mail_fsync = mail_fsync
        self.extra_config = extra_config  # appended to dovecot.conf (benchmark limits)
        self.proc: subprocess.Popen[bytes] | None = None
        self.maildir = root / "Maildir" / USER
        self.conf = root / "dovecot.conf"

    # --- lifecycle ------------------------------------------------------------------------

    def _write_config(self) -> None:
        root = self.root
        for sub in ("run", "state", "home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        uid, gid = self.mail_uid, self.mail_gid
        user = pwd.getpwuid(os.getuid()).pw_name
        login_user = user
        if os.getuid() == 0:  # Dovecot refuses to run its login processes as root
            login_user = next((n for n in ("dovenull", "nobody") if _has_user(n)), "nobody")
        # A password that starts with a {SCHEME} is a hash given as is (a benchmark gives
        # Dovecot the argon2id hashes mailstead stores); any other is plain text.
        lines = [f"{name}:{password if password.startswith('{') else '{PLAIN}' + password}:::::"
                 for name, password in self.users]
        (root / "passwd").write_text("\n".join(lines) + "\n")
        v = _dovecot_version(self.binary)
        cleartext = "auth_allow_cleartext = yes" if v >= (2, 4) else "disable_plaintext_auth = no"
        version_line = "dovecot_config_version = 2.4.0\n" if v >= (2, 4) else ""
        protocols = "imap pop3" if self.pop3_port is not None else "imap"
        pop3_service = ""
        if self.pop3_port is not None:
            pop3_service = f"""service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
        self.conf.write_text(
            f"""{version_line}base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
ssl = no
{cleartext}
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {grp.getgrgid(os.getgid()).gr_name}
default_login_user = {login_user}
first_valid_uid = {min(uid, 100)}
first_valid_gid = {min(gid, 100)}
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{root}/Maildir/%u
mail_fsync = {self.mail_fsync}
imap_hibernate_timeout = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
  override_fields = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{pop3_service}service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
{self.extra_config}
"""
        )

    def start(self, timeout: float = 20.0) -> Dovecot:
        self._write_config()
        for name, _ in self.users:
            box = self.root / "Maildir" / name
            for sub in ("cur", "new", "tmp"):
                (box / sub).mkdir(parents=True, exist_ok=True)
            home = self.root / "home" / name
            home.mkdir(parents=True, exist_ok=True)
            for path in (
                self.root / "Maildir",
                box,
                *(box / s for s in ("cur", "new", "tmp")),
                self.root / "home",
                home,
            ):
                os.chown(path, self.mail_uid, self.mail_gid)
        log = open(self.root / "stderr.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.conf)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        waiting = [self.port] + ([self.pop3_port] if self.pop3_port is not None else [])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=1),
            ):
                waiting.pop(0)
                if not waiting:
                    return self
                continue
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        out = []
        for name in ("stderr.log", "dovecot.log"):
            with contextlib.suppress(FileNotFoundError):
                out.append((self.root / name).read_text(errors="replace"))
        return "\n".join(out)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- messages -------------------------------------------------------------------------

    def deliver(self, messages: Sequence[bytes], user: str = USER) -> list[str]:
        """Write each message as a Maildir file in cur/; returns the base names, which
        Dovecot reports back as the message's X-GUID. Names sort in delivery order."""
        cur = self.root / "Maildir" / user / "cur"
        names = []
        now = int(time.time())
        for i, data in enumerate(messages):
            base = f"{now}.M{i:06d}P{os.getpid()}.mailstead"
            path = cur / f"{base}:2,"
            path.write_bytes(data)
            os.chown(path, self.mail_uid, self.mail_gid)
            names.append(base)
        return names

    def deliver_new(self, messages: Sequence[bytes], user: str = USER) -> list[str]:
        """Write each message as a Maildir file in new/ (as an MDA would, unseen and not
        yet indexed); returns the file names, which sort in delivery order."""
        new = self.root / "Maildir" / user / "new"
        names = []
        now = int(time.time())
        for i, data in enumerate(messages):
            name = f"{now}.M{i:06d}P{os.getpid()}.mailstead"
            path = new / name
            path.write_bytes(data)
            os.chown(path, self.mail_uid, self.mail_gid)
            names.append(name)
        return names

    @contextlib.contextmanager
    def connect(self, user: str = USER, password: str = PASSWORD) -> Iterator[IMAPWire]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=120) as sock:
            wire = IMAPWire(sock)
            wire.read_response()  # greeting
            wire.command(f"LOGIN {user} {password}")
            yield wire

    def fetch_items(
        self, items: Sequence[str], mailbox: str = "INBOX"
    ) -> dict[str, dict[str, bytes]]:
        """X-GUID (the Maildir base name) -> {item: exact wire octets} for every message."""
        out: dict[str, dict[str, bytes]] = {}
        with self.connect() as wire:
            wire.command(f"EXAMINE {mailbox}")
            for line in wire.command(f"FETCH 1:* (X-GUID {' '.join(items)})"):
                if not re.match(rb"\* \d+ FETCH \(", line):
                    continue
                fetched = fetch_attributes(line)
                out[fetched.pop("X-GUID").strip(b'"').decode()] = fetched
            wire.command("LOGOUT", expect=b"OK")
        return out


class IMAPWire:
    """A tiny synchronous IMAP client that keeps responses as exact octets."""

    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rwb")
        self._tags = 0

    def read_response(self) -> bytes:
        """One response: a line plus any literals it announces (``{n}``, ``{n+}`` and the
        literal8 ``~{n}``), CRLFs included."""
        parts = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            parts.append(line)
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if m is None:
                return b"".join(parts)
            parts.append(self.file.read(int(m.group(1))))

    def command(self, text: str, expect: bytes | None = b"OK") -> list[bytes]:
        """Send one command; returns the untagged responses. Raises unless tagged ``expect``."""
        self._tags += 1
        tag = f"t{self._tags}".encode()
        self.file.write(tag + b" " + text.encode() + b"\r\n")
        self.file.flush()
        untagged = []
        while True:
            resp = self.read_response()
            if resp.startswith(tag + b" "):
                status = resp[len(tag) + 1 :].split(b" ", 1)[0]
                if expect is not None and status != expect:
                    raise RuntimeError(f"{text!r} -> {resp!r}")
                return untagged
            untagged.append(resp)


def _skip_value(data: bytes, i: int) -> int:
    """Index just past the IMAP value (atom, string, literal or list) starting at ``i``."""
    c = data[i : i + 1]
    if c == b"(":
        depth = 0
        while True:
            c = data[i : i + 1]
            if c == b"(":
                depth += 1
                i += 1
            elif c == b")":
                depth -= 1
                i += 1
                if depth == 0:
                    return i
            elif c in (b'"', b"{"):
                i = _skip_value(data, i)
            elif c == b"":
                raise ValueError("unbalanced list")
            else:
                i += 1
    if c == b'"':
        i += 1
        while data[i : i + 1] != b'"':
            i += 2 if data[i : i + 1] == b"\\" else 1
        return i + 1
    if c == b"{":
        close = data.index(b"}", i)
        return close + 3 + int(data[i + 1 : close].rstrip(b"+"))
    m = re.compile(rb"[^ ()\r\n]*").match(data, i)
    assert m is not None
    return m.end()


def fetch_attributes(response: bytes) -> dict[str, bytes]:
    """``* n FETCH (NAME value ...)`` -> {NAME: value octets}."""
    i = response.index(b"(") + 1
    out: dict[str, bytes] = {}
    while response[i : i + 1] not in (b")", b""):
        if response[i : i + 1] == b" ":
            i += 1
            continue
        m = re.compile(rb"[^ ]+").match(response, i)
        assert m is not None
        name = m.group().decode()
        i = m.end() + 1
        end = _skip_value(response, i)
        out[name] = response[i:end]
        i = end
    return out
