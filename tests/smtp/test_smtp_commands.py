"""The command table: every entry is complete, and its parts agree with each other.

mypy checks the same agreement statically (``spec()`` solves each entry's types); this
checks it at run time, from the annotations the handlers and grammars actually carry, and
the parts mypy cannot see (non-empty states, the 503 text, HELP's list).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import pytest

from mailstead.smtp.commands import COMMANDS, CommandSpec
from mailstead.smtp.commands.help import HELP
from mailstead.smtp.session import Session
from mailstead.smtp.states import ANY, Chunking

VERBS = sorted(COMMANDS)


def hints(function: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(function, localns={"Session": Session})


def members(hint: Any) -> set[Any]:
    """The classes a (union) annotation names."""
    return set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}


def test_the_table_has_every_command_we_implement() -> None:
    implemented = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET",
                   "NOOP", "QUIT", "VRFY", "EXPN", "HELP"}
    assert set(COMMANDS) == implemented


@pytest.mark.parametrize("verb", VERBS)
def test_every_spec_is_complete(verb: str) -> None:
    spec: CommandSpec[Any, Any] = COMMANDS[verb]
    assert callable(spec.grammar)
    assert inspect.iscoroutinefunction(spec.handler)
    assert isinstance(spec.record, type)
    assert spec.states, "a command no state allows"
    assert spec.states <= ANY
    assert spec.out_of_sequence.strip(), "the 503 needs its text"
    if spec.refuse is not None:
        assert inspect.iscoroutinefunction(spec.refuse)


@pytest.mark.parametrize("verb", VERBS)
def test_grammar_record_and_handler_agree(verb: str) -> None:
    spec = COMMANDS[verb]
    grammar = hints(spec.grammar)
    handler = hints(spec.handler)
    # The grammar returns the record, and the handler takes it.
    assert grammar["return"] is spec.record, verb
    assert list(handler) == ["session", "state", "args", "return"], verb
    assert handler["args"] is spec.record, verb


@pytest.mark.parametrize("verb", VERBS)
def test_handler_and_guard_take_exactly_the_states_allowed(verb: str) -> None:
    spec = COMMANDS[verb]
    assert members(hints(spec.handler)["state"]) == set(spec.states), verb
    if spec.guard is not None:
        assert members(hints(spec.guard)["state"]) == set(spec.states), verb


def test_only_bdat_rset_noop_and_quit_inside_bdat() -> None:
    # RFC 3030 §2: DATA inside a BDAT sequence is 503; nothing else may interleave either.
    inside = sorted(verb for verb, spec in COMMANDS.items() if Chunking in spec.states)
    assert inside == ["BDAT", "NOOP", "QUIT", "RSET"]


def test_help_lists_every_command_but_expn() -> None:
    listed = HELP.lines[0].removeprefix("Commands: ").split()
    assert sorted(listed) == sorted(set(VERBS) - {"EXPN"})
