"""A throw-away Postfix for interop tests and benchmarks: 127.0.0.1 only, its own world.

``Postfix(domain, users)`` writes a private ``config_directory`` (``main.cf`` and a minimal
``master.cf``), ``queue_directory`` and ``data_directory`` under a temp dir, then runs
``postfix -c <dir> start``. Nothing of the system instance is used or touched (only the
Debian binaries and ``meta_directory``): smtpd listens on a free loopback port, never 25.

Mail for ``domain`` goes through Postfix's ``virtual(8)`` delivery agent into
``<root>/mail/<local-part>/`` Maildirs (``virtual_mailbox_maps``, a ``texthash:`` file, so
no ``postmap`` and no system accounts); delivery runs as ``nobody`` (``virtual_uid_maps``).
An unknown user is refused with ``550 5.1.1`` at RCPT; nothing is relayed.

Usage::

    with Postfix("pf.test", ["bob"]) as pf:
        smtplib.SMTP("127.0.0.1", pf.port) ...
        pf.wait_maildir("bob", 1)

``start()`` raises ``PostfixUnavailable`` when Postfix is not installed or cannot start
here; the ``postfix`` pytest fixture turns that into a skip. ``stop()`` is always safe and
kills the master by its pid file if ``postfix stop`` did not end it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from mailstead.testing.server import free_port

# Services a delivery-only instance needs; chroot off (column 5 "n") so no chroot setup.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixUnavailable(RuntimeError):
    pass


def postfix_binaries() -> tuple[str, str] | None:
    found = []
    for name in ("postfix", "postconf"):
        path = shutil.which(name) or (f"/usr/sbin/{name}"
                                      if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


class Postfix:
    """One private Postfix instance; use as a context manager or call start()/stop()."""

    def __init__(self, domain: str = "pf.test", users: Iterable[str] = ("bob",),
                 hostname: str | None = None, extra: dict[str, str] | None = None) -> None:
        self.domain = domain
        self.users = list(users)
        self.hostname = hostname or f"mx.{domain}"
        self.extra = dict(extra or {})
        self.port = 0
        self.root: Path | None = None
        self.started = False

    # -- paths -------------------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        assert self.root is not None
        return self.root / "etc"

    @property
    def queue_dir(self) -> Path:
        assert self.root is not None
        return self.root / "spool"

    @property
    def mail_dir(self) -> Path:
        assert self.root is not None
        return self.root / "mail"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "log" / "maillog"

    def maildir(self, user: str) -> Path:
        return self.mail_dir / user

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------

    def _settings(self, root: Path) -> dict[str, str]:
        uid = gid = os.getuid()
        if uid == 0:  # virtual(8) refuses uid 0 (virtual_minimum_uid): deliver as nobody
            entry = pwd.getpwnam("nobody")
            uid, gid = entry.pw_uid, entry.pw_gid
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(root / "spool"),
            "data_directory": str(root / "data"),
            "myhostname": self.hostname,
            "mydomain": self.domain,
            "myorigin": "$myhostname",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.1/32",
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery is disabled",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_maps": f"texthash:{root / 'etc' / 'vmailbox'}",
            "virtual_mailbox_base": str(root / "mail"),
            "virtual_uid_maps": f"static:{uid}",
            "virtual_gid_maps": f"static:{gid}",
            "virtual_minimum_uid": str(min(uid, 100)),
            "virtual_alias_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "smtpd_relay_restrictions": "reject_unauth_destination",  # no relaying at all
            "smtpd_recipient_restrictions": "reject_unauth_destination",
            "smtpd_reject_unlisted_recipient": "yes",
            "smtpd_peername_lookup": "no",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "smtpd_banner": "$myhostname ESMTP Postfix (mailstead test instance)",
            "biff": "no",
            "maillog_file": str(root / "log" / "maillog"),
            "maillog_file_prefixes": str(root),
            "default_destination_concurrency_limit": "20",
            "soft_bounce": "no",
        }
        settings.update(self.extra)
        return settings

    def start(self) -> Postfix:
        binaries = postfix_binaries()
        if binaries is None:
            raise PostfixUnavailable("postfix/postconf are not installed")
        self.postfix_bin, self.postconf_bin = binaries
        self.root = root = Path(tempfile.mkdtemp(prefix="mailstead-postfix-"))
        root.chmod(0o755)  # postfix and the delivery uid must traverse it
        for sub in ("etc", "spool", "data", "mail", "log"):
            (root / sub).mkdir()
        self.port = free_port()
        etc = root / "etc"
        (etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        (etc / "main.cf").write_text("")
        (etc / "vmailbox").write_text(
            "".join(f"{u}@{self.domain} {u}/\n" for u in self.users))
        settings = self._settings(root)
        subprocess.run([self.postconf_bin, "-c", str(etc), "-e",
                        *(f"{k}={v}" for k, v in settings.items())],
                       check=True, capture_output=True)
        if os.getuid() == 0:
            owner = pwd.getpwnam(settings.get("mail_owner", "postfix"))
            os.chown(root / "data", owner.pw_uid, owner.pw_gid)
            uid = int(settings["virtual_uid_maps"].split(":")[1])
            gid = int(settings["virtual_gid_maps"].split(":")[1])
            os.chown(root / "mail", uid, gid)
        self.started = True  # from here on stop() has something to clean up
        done = subprocess.run([self.postfix_bin, "-c", str(etc), "start"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            self.stop()
            raise PostfixUnavailable(f"postfix start failed: {done.stdout}{done.stderr}")
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    if sock.recv(512).startswith(b"220"):
                        sock.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise PostfixUnavailable(f"postfix did not answer on {self.port}:\n{log}")
            time.sleep(0.1)

    def _master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if not self.started or self.root is None:
            return
        self.started = False
        pid = self._master_pid()
        subprocess.run([self.postfix_bin, "-c", str(self.config_dir), "stop"],
                       capture_output=True, check=False, timeout=30)
        if pid is not None:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):  # our master, by the pid it wrote in our queue directory
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- results -----------------------------------------------------------------------

    def messages(self, user: str) -> list[bytes]:
        """Delivered messages of ``user`` (Maildir new/ and cur/), oldest first."""
        box = self.maildir(user)
        files = [p for sub in ("new", "cur") if (box / sub).is_dir()
                 for p in (box / sub).iterdir()]
        files.sort(key=lambda p: (p.stat().st_mtime, p.name))
        return [p.read_bytes() for p in files]

    def count(self, user: str) -> int:
        box = self.maildir(user)
        return sum(len(os.listdir(box / sub)) for sub in ("new", "cur")
                   if (box / sub).is_dir())

    def wait_maildir(self, user: str, count: int, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(user) >= count:
                return self.messages(user)
            time.sleep(0.05)
        raise AssertionError(f"{user}@{self.domain} has {self.count(user)} messages, "
                             f"expected {count}\n{self.log()[-4000:]}")

    def wait_delivered(self, users: Iterable[str], total: int, timeout: float = 120.0) -> int:
        """Wait until the Maildirs of ``users`` hold ``total`` messages together."""
        users = list(users)
        deadline = time.monotonic() + timeout
        while True:
            got = sum(self.count(u) for u in users)
            if got >= total or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def postfix() -> Iterator[Postfix]:
    """A running private Postfix for ``pf.test`` with user ``bob``; skips when unavailable."""
    instance = Postfix("pf.test", ["bob"])
    try:
        instance.start()
    except PostfixUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield instance
    finally:
        instance.stop()
