"""The command table is complete: every entry says everything the session derives from it.

The session reads nothing about a command from anywhere else, so a missing or inconsistent
field here is a command that misparses, runs in the wrong state, maps the wrong names or is
advertised wrongly. These checks make such an entry fail at once.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from mailstead.imap.commands import COMMAND_CAPABILITIES, COMMANDS, GRAMMARS
from mailstead.imap.dispatch import CommandSpec, Expunge, for_selected, plain, table
from mailstead.imap.parse import commands as grammar
from mailstead.imap.parse.commands import Command
from mailstead.imap.session import Session
from mailstead.imap.states import Selected, StateKind
from mailstead.store.models import User

#: Every command mailstead serves: RFC 9051 §6 and the extensions it advertises. A command
#: dropped from the table, or added without a decision, fails here.
SERVED = {
    "CAPABILITY", "NOOP", "LOGOUT", "ID", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE",
    "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
    "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA",
    "GETMETADATA", "SETMETADATA",
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "UID EXPUNGE", "SEARCH", "UID SEARCH", "FETCH",
    "SORT", "UID SORT", "THREAD", "UID THREAD",
    "UID FETCH", "STORE", "UID STORE", "COPY", "UID COPY", "MOVE", "UID MOVE",
    "REPLACE", "UID REPLACE", "CANCELUPDATE", "COMPRESS", "NOTIFY",
    "SETACL", "DELETEACL", "GETACL", "LISTRIGHTS", "MYRIGHTS",  # RFC 4314, decision 0028
}
SPECS = sorted(COMMANDS.values(), key=lambda s: s.name)


def _record_type(spec: CommandSpec) -> Any:
    """What the spec's grammar returns: its argument record type, or None."""
    hints = typing.get_type_hints(spec.grammar)
    record = hints["return"]
    return None if record is type(None) else record


def test_the_table_serves_exactly_the_known_commands() -> None:
    assert set(COMMANDS) == SERVED
    assert set(GRAMMARS) == SERVED


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_entry_is_complete(spec: CommandSpec) -> None:
    assert COMMANDS[spec.name] is spec
    assert spec.name == spec.name.upper() and spec.name.strip() == spec.name
    assert GRAMMARS[spec.name] is spec.grammar
    assert callable(spec.handler) and callable(spec.run)
    assert spec.states and spec.states <= {StateKind.NONAUTH, StateKind.AUTH, StateKind.SELECTED}
    assert isinstance(spec.expunge, Expunge)
    assert spec.capability is None or spec.capability in COMMAND_CAPABILITIES


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_handler_takes_the_record_its_grammar_returns(spec: CommandSpec) -> None:
    """mypy proves this where the table is built; checked here too, at run time, so that a
    handler annotated loosely (``Command[Any]``) cannot slip through."""
    module = typing.cast(Any, __import__(spec.handler.__module__, fromlist=["_"]))
    hints = typing.get_type_hints(
        spec.handler, globalns=vars(module), localns={"Session": Session}
    )
    command = hints["cmd"]
    assert typing.get_origin(command) is Command
    (argument,) = typing.get_args(command)
    expected = _record_type(spec)
    assert argument is (type(None) if expected is None else expected), spec.name
    state_param = [name for name in hints if name not in ("session", "cmd", "return")]
    if StateKind.NONAUTH in spec.states or spec.states == {StateKind.AUTH}:
        assert state_param == []  # nothing of the state to hand over
    elif spec.states == {StateKind.SELECTED} and state_param:
        assert hints[state_param[0]] is Selected
    elif state_param:
        assert hints[state_param[0]] is User


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_mailbox_fields_name_str_fields_of_the_record(spec: CommandSpec) -> None:
    record = _record_type(spec)
    fields = (*spec.mailbox.names, *spec.mailbox.patterns)
    if not fields:
        return
    assert record is not None and dataclasses.is_dataclass(record), spec.name
    hints = typing.get_type_hints(record)
    for field in fields:
        assert hints[field] in (str, tuple[str, ...]), (spec.name, field)


def test_every_record_field_holding_a_mailbox_is_mapped() -> None:
    """A record field called like a mailbox name must be listed, or a client using "." as
    the separator would reach the wrong mailbox."""
    for spec in SPECS:
        record = _record_type(spec)
        if record is None or not dataclasses.is_dataclass(record):
            continue
        mapped = {*spec.mailbox.names, *spec.mailbox.patterns}
        for field in dataclasses.fields(record):
            if field.name in ("name", "mailbox", "old", "new", "reference", "patterns"):
                assert field.name in mapped, (spec.name, field.name)


def test_expunges_are_held_only_around_fetch_store_and_search() -> None:
    """RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH; their UID forms
    may see one. SORT and THREAD answer in sequence numbers as SEARCH does (RFC 5256), so
    the same holds for them."""
    held = {s.name for s in SPECS if s.expunge is Expunge.HELD}
    assert held == {"FETCH", "STORE", "SEARCH", "SORT", "THREAD"}
    leaving = {s.name for s in SPECS if s.expunge is Expunge.DROPPED}
    assert leaving == {"SELECT", "EXAMINE", "CLOSE", "UNSELECT"}


def test_a_command_listed_twice_is_refused() -> None:
    async def handler(session: Session, cmd: Command[None]) -> Any:
        raise AssertionError

    spec = plain("NOOP", grammar.no_args, handler)
    with pytest.raises(ValueError, match="listed twice"):
        table(spec, spec)


async def test_a_selected_handler_never_runs_outside_the_selected_state() -> None:
    """The dispatcher checks states first; the spec's own guard catches a dispatcher bug
    instead of handing a handler a state without a mailbox."""
    from mailstead.imap.dispatch import WrongState

    async def handler(session: Session, cmd: Command[None], selected: Selected) -> Any:
        raise AssertionError("ran without a selection")

    spec = for_selected("CHECK", grammar.no_args, handler)

    class Unselected:
        state = object()

    with pytest.raises(WrongState):
        await spec.run(typing.cast(Session, Unselected()), Command("t", "CHECK", None))
