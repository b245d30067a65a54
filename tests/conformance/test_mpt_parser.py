"""The MPT script parser and the free-text relaxation, without a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mpt import (
    ALL_SESSIONS,
    Client,
    Reinit,
    ScriptError,
    Server,
    Unordered,
    Wait,
    parse_script,
    relax,
)

from mailstead.testing.paths import SHARED

SCRIPTS = Path(
    str(SHARED) + "/conformance/james-mpt/mpt/impl/imap-mailbox/core/src/main/resources"
    "/org/apache/james/imap/scripts"
)


def test_client_server_and_comments() -> None:
    s = parse_script("# comment\n\nC: a1 NOOP\nS: a1 OK NOOP completed.\n")
    assert s.elements == [
        Client(ALL_SESSIONS, "a1 NOOP", 3),
        Server(ALL_SESSIONS, "a1 OK NOOP completed.", 4),
    ]
    assert s.sessions == 1


def test_empty_client_line_is_sent_as_empty() -> None:
    assert parse_script("C:\nC: \n").elements == [Client(-1, "", 1), Client(-1, "", 2)]


def test_unordered_block_and_sessions() -> None:
    s = parse_script(
        "SESSION: 2\nC: x\nSUB {\nS: \\* 1 EXISTS\nS: \\* 1 RECENT\n}\nREINIT\n"
        "WAIT 5\nLOG INFO hi\nTIMER start x\nAWAIT\n"
    )
    assert s.elements == [
        Client(2, "x", 2),
        Unordered(2, ("\\* 1 EXISTS", "\\* 1 RECENT"), 3),
        Reinit(2, 7),
        Wait(5, 8),
    ]
    assert s.sessions == 3


@pytest.mark.parametrize(
    "text", ["SUB {\nC: x\n}\n", "SUB {\nS: x\n", "SESSION: x\n", "BOGUS\n", "WAIT soon\n"]
)
def test_malformed_scripts_are_rejected(text: str) -> None:
    with pytest.raises(ScriptError):
        parse_script(text)


@pytest.mark.parametrize(
    ("pattern", "relaxed"),
    [
        ("a1 OK NOOP completed.", "a1 OK(?: .*)?"),
        ("a1 OK", "a1 OK(?: .*)?"),
        ("a001 NO SELECT failed. Command not valid in this state.", "a001 NO(?: .*)?"),
        ("a1 OK \\[READ-WRITE\\] SELECT completed.", "a1 OK \\[READ-WRITE\\](?: .*)?"),
        (
            "a1 OK \\[MAILBOXID \\(.+\\)\\] CREATE completed.",
            "a1 OK \\[MAILBOXID \\(.+\\)\\](?: .*)?",
        ),
        ("\\* OK \\[UIDVALIDITY \\d+\\].*", "\\* OK \\[UIDVALIDITY \\d+\\](?: .*)?"),
        (
            "\\* OK \\[PERMANENTFLAGS \\(\\\\Answered \\\\Seen( \\\\\\*)?\\)\\].*",
            "\\* OK \\[PERMANENTFLAGS \\(\\\\Answered \\\\Seen( \\\\\\*)?\\)\\](?: .*)?",
        ),
        ("\\* BYE IMAP4rev1 Server logging out", "\\* BYE(?: .*)?"),
        ("\\+ Ok", "\\+.*"),
        ("\\* 4 EXISTS", "\\* 4 EXISTS"),
        ("\\* FLAGS \\(\\\\Answered\\)", "\\* FLAGS \\(\\\\Answered\\)"),
        ("\\* 1 FETCH \\(FLAGS \\(\\\\Seen\\)\\)", "\\* 1 FETCH \\(FLAGS \\(\\\\Seen\\)\\)"),
    ],
)
def test_relax_only_touches_free_text(pattern: str, relaxed: str) -> None:
    assert relax(pattern) == relaxed


def test_relaxed_patterns_keep_status_and_code() -> None:
    ok = re.compile(relax("a1 OK \\[READ-WRITE\\] SELECT completed."))
    assert ok.fullmatch("a1 OK [READ-WRITE] Select done")
    assert ok.fullmatch("a1 OK [READ-WRITE]")
    assert not ok.fullmatch("a1 OK [READ-ONLY] Select done")
    assert not ok.fullmatch("a1 NO [READ-WRITE] Select done")


@pytest.mark.skipif(not SCRIPTS.is_dir(), reason="James scripts not present")
def test_every_james_script_parses_and_compiles() -> None:
    paths = sorted(SCRIPTS.rglob("*.test"))
    assert len(paths) > 150
    for path in paths:
        script = parse_script(path.read_text(encoding="utf-8"), path.name)
        for element in script.elements:
            for pattern in getattr(element, "patterns", ()) or (
                [element.pattern] if isinstance(element, Server) else []
            ):
                re.compile(relax(pattern))
