"""``mailstead sendmail`` as cron and PHP run it: a subprocess beside a running server.

The message must be readable over IMAP from the running server (local recipients) or be
in ``mailstead queue`` (remote ones) once the command has exited, and every failure must
be a sysexits status with one line on stderr.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import itertools
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.cli.sendmail_message import (
    EX_DATAERR,
    EX_NOUSER,
    EX_USAGE,
    parse_command_line,
)
from mailstead.testing.server import ServerThread

PASSWORD = "sendmail-test-pw"
MAX_SIZE = 64 * 1024
_counter = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    tmp = tmp_path_factory.mktemp("sendmail")
    config = {"auth": {"allow_plaintext": True}, "limits": {"max_message_size": MAX_SIZE},
              "hostname": "mx.example.org"}
    with ServerThread(tmp, config) as srv:
        # What sendmail reads of the server's configuration (its ports are ephemeral, which
        # a file cannot say).
        (tmp / "mailstead.toml").write_text(
            f'data_dir = "{srv.data_dir}"\nhostname = "mx.example.org"\n'
            f"[limits]\nmax_message_size = {MAX_SIZE}\n[delivery]\nenabled = false\n")
        yield srv


@pytest.fixture
def account(server: ServerThread) -> str:
    address = f"user{next(_counter)}@example.org"
    server.add_user(address, PASSWORD)
    return address


def sendmail(server: ServerThread, *args: str,
             message: bytes = b"Subject: test\n\nhello\n") -> subprocess.CompletedProcess[str]:
    """The real program, as /usr/sbin/sendmail would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    config = server.data_dir.parent / "mailstead.toml"
    result = subprocess.run(
        [sys.executable, "-m", "mailstead", "--config", str(config), "sendmail", *args],
        input=message, capture_output=True, env=env, timeout=60,
    )
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(), result.stderr.decode())


def mailstead(server: ServerThread, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    config = server.data_dir.parent / "mailstead.toml"
    result = subprocess.run([sys.executable, "-m", "mailstead", "--config", str(config), *args],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def imap_inbox(server: ServerThread, account: str) -> list[bytes]:
    """Every message in INBOX, fetched over IMAP from the running server."""
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        client.login(account, PASSWORD)
        client.select("INBOX", readonly=True)
        _, data = client.uid("SEARCH", "ALL")
        messages = []
        for uid in data[0].split():
            _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            part = fetched[0]
            assert isinstance(part, tuple)
            messages.append(part[1])
        return messages
    finally:
        client.logout()


def one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mailstead sendmail: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def queued_ids(server: ServerThread) -> list[str]:
    listing = mailstead(server, "queue", "list").splitlines()
    return [] if listing == ["the queue is empty"] else [line.split()[0] for line in listing[1:]]


# -- delivery --------------------------------------------------------------------------------


def test_local_mail_is_readable_over_imap_with_crlf_and_added_headers(
        server: ServerThread, account: str) -> None:
    result = sendmail(server, account, message=b"Subject: cron output\n\nline one\nline two\n")
    assert (result.returncode, result.stderr) == (0, "")
    [raw] = imap_inbox(server, account)
    assert b"\r\nline one\r\nline two\r\n" in raw
    assert raw.count(b"\n") == raw.count(b"\r\n")  # every line end stored as CRLF
    message = email.message_from_bytes(raw, policy=email.policy.default)
    login = pwd.getpwuid(os.getuid()).pw_name
    assert message["Subject"] == "cron output"
    assert message["From"].addresses[0].addr_spec == f"{login}@mx.example.org"
    assert message["Return-Path"] == f"<{login}@mx.example.org>"
    assert message["Date"] is not None and message["Date"].datetime is not None
    assert message["Message-ID"].endswith("@mx.example.org>")
    assert message["Delivered-To"] == account
    assert f"(mailstead, from userid {os.getuid()})" in message["Received"]


def test_existing_headers_are_kept_not_duplicated(server: ServerThread, account: str) -> None:
    message = (b"From: Backup <backup@example.org>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
               b"Message-ID: <fixed@example.org>\r\nSubject: x\r\n\r\nbody\r\n")
    assert sendmail(server, account, message=message).returncode == 0
    [raw] = imap_inbox(server, account)
    for name in (b"From:", b"Date:", b"Message-ID:"):
        assert raw.count(b"\r\n" + name) + raw.startswith(name) == 1, name
    assert b"Message-ID: <fixed@example.org>" in raw


def test_remote_recipient_is_queued(server: ServerThread, account: str) -> None:
    before = set(queued_ids(server))
    result = sendmail(server, "-f", account, "someone@remote-host.test",
                      message=b"From: " + account.encode() + b"\nSubject: out\n\nbye\n")
    assert result.returncode == 0, result.stderr
    [new] = set(queued_ids(server)) - before
    shown = mailstead(server, "queue", "show", new)
    assert f"sender:     <{account}>" in shown
    assert "<someone@remote-host.test>  queued" in shown


def test_dash_t_takes_to_cc_bcc_and_removes_bcc(server: ServerThread) -> None:
    to, cc, bcc = (f"user{next(_counter)}@example.org" for _ in range(3))
    for address in (to, cc, bcc):
        server.add_user(address, PASSWORD)
    message = (f"To: Someone <{to}>\nCc: {cc}\nBcc: {bcc},\n  {to}\n"
               "Subject: extracted\n\nbody\n").encode()
    assert sendmail(server, "-t", message=message).returncode == 0
    for address in (to, cc, bcc):
        [raw] = imap_inbox(server, address)
        header = raw.split(b"\r\n\r\n")[0]
        assert b"Subject: extracted" in header
        assert b"Bcc:" not in header
        assert bcc.encode() not in header  # no Delivered-To or "for" with three recipients


def test_dash_t_with_arguments_adds_them(server: ServerThread, account: str) -> None:
    other = f"user{next(_counter)}@example.org"
    server.add_user(other, PASSWORD)
    assert sendmail(server, "-t", other, message=f"To: {account}\n\nx\n".encode()
                    ).returncode == 0
    assert len(imap_inbox(server, account)) == 1
    assert len(imap_inbox(server, other)) == 1


def test_sender_and_full_name(server: ServerThread, account: str) -> None:
    assert sendmail(server, "-fnoreply@example.org", "-F", "Cron Daemon", account,
                    message=b"Subject: named\n\nx\n").returncode == 0
    assert sendmail(server, "-f", "<>", account, message=b"Subject: null\n\nx\n").returncode == 0
    first, second = imap_inbox(server, account)
    parsed = email.message_from_bytes(first, policy=email.policy.default)
    assert parsed["Return-Path"] == "<noreply@example.org>"
    assert str(parsed["From"]) == "Cron Daemon <noreply@example.org>"
    assert b"Return-Path: <>\r\n" in second


def test_a_lone_dot_ends_the_message_unless_i_or_oi(server: ServerThread, account: str) -> None:
    text = b"Subject: dots\n\nbefore\n.\nafter\n"
    assert sendmail(server, account, message=text).returncode == 0
    assert sendmail(server, "-i", account, message=text).returncode == 0
    assert sendmail(server, "-oi", account, message=text).returncode == 0
    plain, with_i, with_oi = imap_inbox(server, account)
    assert plain.endswith(b"\r\nbefore\r\n")
    assert with_i.endswith(b"\r\nbefore\r\n.\r\nafter\r\n")
    assert with_oi.endswith(b"\r\nbefore\r\n.\r\nafter\r\n")


def test_harmless_options_are_accepted(server: ServerThread, account: str) -> None:
    """What cron (-FCronDaemon -i -B8BITMIME -oem), PHP (-t -i) and mail(1) pass."""
    result = sendmail(server, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-oep", "-odi",
                      "-Lcron", "-U", "-m", "--", account)
    assert (result.returncode, result.stderr) == (0, "")
    assert len(imap_inbox(server, account)) == 1


def test_verbose_prints_the_id(server: ServerThread, account: str) -> None:
    line = one_line(sendmail(server, "-v", account), 0)
    [raw] = imap_inbox(server, account)
    trace_id = line.split()[3].rstrip(":")
    assert f"id {trace_id}".encode() in raw


def test_dsn_options_reach_the_queue(server: ServerThread, account: str) -> None:
    before = set(queued_ids(server))
    assert sendmail(server, "-N", "failure,delay", "-R", "hdrs", "-V", "env-1",
                    "-f", account, "far@remote-host.test").returncode == 0
    [new] = set(queued_ids(server)) - before
    shown = mailstead(server, "queue", "show", new)
    assert "RET=HDRS ENVID=env-1" in shown
    assert "NOTIFY=FAILURE,DELAY" in shown


def test_outgoing_mail_is_dkim_signed(server: ServerThread, account: str) -> None:
    mailstead(server, "dkim", "keygen", "example.org")
    before = set(queued_ids(server))
    assert sendmail(server, "far@remote-host.test",
                    message=f"From: {account}\nSubject: signed\n\nx\n".encode()
                    ).returncode == 0
    [new] = set(queued_ids(server)) - before

    async def queued_data() -> bytes:
        message = await server.store.get_queued(int(new))
        return await server.store.read_blob(message.blob_id)

    data = server.call(queued_data())
    assert data.startswith(b"Received: ") and b"\r\nDKIM-Signature: " in data
    assert b"d=example.org;" in data.replace(b"\r\n\t", b" ").replace(b" ", b"")


# -- refusals --------------------------------------------------------------------------------


def test_no_recipients_is_a_usage_error(server: ServerThread) -> None:
    assert "no recipients" in one_line(sendmail(server), EX_USAGE)
    assert "no recipients" in one_line(
        sendmail(server, "-t", message=b"Subject: nobody\n\nx\n"), EX_USAGE)


def test_unknown_local_user_is_ex_nouser_and_nothing_is_delivered(
        server: ServerThread, account: str) -> None:
    line = one_line(sendmail(server, account, "ghost@example.org"), EX_NOUSER)
    assert "<ghost@example.org>: 550 5.1.1" in line
    assert imap_inbox(server, account) == []  # all or nothing: the good one got no copy


def test_oversize_is_ex_dataerr(server: ServerThread, account: str) -> None:
    big = b"Subject: big\n\n" + (b"x" * 99 + b"\n") * (MAX_SIZE // 100 + 10)
    line = one_line(sendmail(server, account, message=big), EX_DATAERR)
    assert "larger than limits.max_message_size" in line
    # LF to CRLF makes it larger than what was read: checked again after conversion.
    nearly = b"Subject: big\n\n" + b"\n" * (MAX_SIZE - 20)
    assert "max_message_size" in one_line(sendmail(server, account, message=nearly),
                                          EX_DATAERR)
    assert imap_inbox(server, account) == []


@pytest.mark.parametrize(("args", "needle"), [
    (["-x", "a@example.org"], "unsupported option -x"),
    (["-bp"], "unsupported mode -bp"),
    (["-oQ/var/spool", "a@example.org"], "unsupported option -oQ/var/spool"),
    (["-f"], "option -f needs a value"),
    (["not-an-address"], "recipient: not an e-mail address"),
    (["-f", "bad sender@example.org", "a@example.org"], "-f: address contains whitespace"),
    (["-N", "sometimes", "a@example.org"], "-N takes NEVER"),
])
def test_bad_command_lines(server: ServerThread, args: list[str], needle: str) -> None:
    assert needle in one_line(sendmail(server, *args), EX_USAGE)


def test_bad_header_address_with_t_is_ex_dataerr(server: ServerThread) -> None:
    line = one_line(sendmail(server, "-t", message=b"To: <a b@example.org>\n\nx\n"),
                    EX_DATAERR)
    assert line.startswith("mailstead sendmail: To: ")


def test_nul_bytes_are_refused(server: ServerThread, account: str) -> None:
    assert "NUL" in one_line(sendmail(server, account, message=b"Subject: x\n\na\0b\n"),
                             EX_DATAERR)


def test_a_missing_mailstore_is_unavailable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    result = subprocess.run(
        [sys.executable, "-m", "mailstead", "--data", str(tmp_path / "none"), "sendmail",
         "a@example.org"], input=b"x\n", capture_output=True, env=env, timeout=60)
    assert result.returncode == 69
    assert result.stderr.decode().startswith("mailstead sendmail: no mailstore in ")


# -- the command line, without a process -----------------------------------------------------


def test_grouped_and_attached_options_in_any_order() -> None:
    request = parse_command_line(["bob@example.org", "-ti", "-fme@example.org", "-F",
                                  "Me", "--", "carol@example.org"])
    assert request.recipients == ("bob@example.org", "carol@example.org")
    assert (request.extract, request.ignore_dots, request.sender, request.full_name) == (
        True, True, "me@example.org", "Me")
    assert parse_command_line(["-r", "x@example.org", "a@example.org"]).sender == (
        "x@example.org")
    assert parse_command_line(["-oi", "a@example.org"]).ignore_dots
    assert not parse_command_line(["-oem", "a@example.org"]).ignore_dots


@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
def test_run_by_root_it_writes_as_the_data_directory_owner(tmp_path: Path) -> None:
    """cron's root jobs: files the store creates must stay the server user's."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir="/tmp"))  # reachable by the other user, unlike tmp_path
    try:
        base.chmod(0o755)
        data = base / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
        prefix = [sys.executable, "-m", "mailstead", "--data", str(data)]
        subprocess.run([*prefix, "domain", "add", "example.org"], env=env, check=True,
                       capture_output=True, timeout=60)
        subprocess.run([*prefix, "user", "add", "bob@example.org", "--password-stdin"],
                       input=b"a long enough password\n", env=env, check=True,
                       capture_output=True, timeout=60)
        nobody = pwd.getpwnam("nobody")
        for path in [data, *data.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        big = b"Subject: big\n\n" + b"x" * 300_000 + b"\n"  # a body file in blobs/
        result = subprocess.run([*prefix, "sendmail", "bob@example.org"], input=big, env=env,
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        owners = {path: path.stat().st_uid for path in [data, *data.rglob("*")]}
        assert set(owners.values()) == {nobody.pw_uid}, owners
        assert list((data / "blobs").rglob("*.*")) or any(
            p.is_file() for p in (data / "blobs").rglob("*"))
    finally:
        shutil.rmtree(base)
