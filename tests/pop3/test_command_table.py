"""The command table is complete: every entry knows its grammar, record, handler, states
and capability, and the table holds exactly the commands the server serves."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing

import pytest

from mailstead.pop3.commands import COMMANDS
from mailstead.pop3.commands.arguments import no_arguments
from mailstead.pop3.protocol import Capability, parse_command
from mailstead.pop3.session import CommandSpec, Session
from mailstead.pop3.states import Authorization, Transaction, Update
from mailstead.testing.transport import POP3Transcript
from tests.pop3.conftest import PASSWORD, Mailstore

#: RFC 1939 §4-§7 (APOP left out on purpose), RFC 2449 §5 CAPA, RFC 2595 §4 STLS,
#: RFC 5034 §4 AUTH, RFC 6856 §2 UTF8.
SERVED = {
    "USER", "PASS", "AUTH", "STLS", "UTF8", "CAPA", "QUIT",
    "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET",
}


def members(annotation: object) -> tuple[object, ...]:
    """The types of a union annotation, or the one type."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def test_the_table_holds_exactly_the_served_commands() -> None:
    assert set(COMMANDS) == SERVED
    assert "APOP" not in COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_name_is_a_keyword_the_parser_can_produce(name: str) -> None:
    """RFC 2449 §4: the parser upper-cases keywords of at most four characters; a table
    key it can never produce would be a command nobody can reach."""
    assert parse_command(name.lower().encode() + b"\r\n").name == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_spec_is_complete(name: str) -> None:
    spec = COMMANDS[name]
    assert isinstance(spec, CommandSpec)
    # Allowed somewhere, and only in states a client can talk in.
    assert spec.states
    assert set(spec.states) <= {Authorization, Transaction}
    assert Update not in spec.states
    # The grammar returns a record: nothing, or frozen dataclasses.
    grammar_hints = typing.get_type_hints(spec.grammar)
    record = grammar_hints["return"]
    for kind in members(record):
        assert kind is type(None) or (
            dataclasses.is_dataclass(kind) and kind.__dataclass_params__.frozen
        ), (name, kind)
    # A command without arguments uses the one grammar that says so.
    assert (record is type(None)) == (spec.grammar is no_arguments), name
    # The handler takes the session, the state the spec allows, and the grammar's record.
    assert inspect.iscoroutinefunction(spec.handler)
    handler_hints = typing.get_type_hints(spec.handler)
    session_param, state_param, record_param = list(inspect.signature(spec.handler).parameters)
    assert handler_hints[session_param] is Session
    assert set(members(handler_hints[state_param])) == set(spec.states), name
    assert set(members(handler_hints[record_param])) == set(members(record)), name
    assert spec.capability is None or isinstance(spec.capability, Capability)
    assert spec.keeps_pending_user == (name == "PASS")


def test_capabilities_of_commands_belong_to_commands_of_their_kind() -> None:
    """USER covers USER and PASS (RFC 2449 §6.2); SASL is AUTH (§6.3); TOP and UIDL their
    own command; STLS and UTF8 theirs. CAPA lists these only while such a command is."""
    by_capability: dict[Capability, set[str]] = {}
    for name, spec in COMMANDS.items():
        if spec.capability is not None:
            by_capability.setdefault(spec.capability, set()).add(name)
    assert by_capability == {
        Capability.USER: {"USER", "PASS"},
        Capability.SASL: {"AUTH"},
        Capability.TOP: {"TOP"},
        Capability.UIDL: {"UIDL"},
        Capability.STLS: {"STLS"},
        Capability.UTF8: {"UTF8"},
    }


async def test_every_command_is_served_and_nothing_else(mailstore: Mailstore) -> None:
    """Each name in the table reaches a handler (in some state, nothing answers "unknown
    command"); a name outside it does not."""
    user = await mailstore.add_user()
    await mailstore.deliver(user, b"Subject: x\r\n\r\nbody\r\n")
    before = mailstore.connect()
    await before.greeting()
    after = mailstore.connect()
    await after.greeting()
    await after.transact("+OK", f"USER {user.address}")
    await after.transact("+OK", f"PASS {PASSWORD}")

    multiline = {"CAPA", "LIST", "UIDL", "RETR", "TOP"}
    arguments = {"RETR": " 1", "TOP": " 1 0", "DELE": " 1", "USER": " u@example.org",
                 "PASS": " x", "AUTH": " PLAIN"}

    async def first_line(pop: POP3Transcript, name: str) -> str:
        pop.peer.send_line(name + arguments.get(name, ""))
        line = await pop.line()
        if line.startswith("+OK") and name in multiline:
            while await pop.line() != ".":
                pass
        if line == "+ ":
            pop.peer.send_line("*")  # cancel the SASL exchange
            await pop.line()
        return line

    for name in sorted(set(COMMANDS) - {"QUIT", "STLS"}):
        pop = after if Transaction in COMMANDS[name].states else before
        assert await first_line(pop, name) != "-ERR unknown command", name
    assert await first_line(before, "STLS") == "-ERR STLS not available"  # served, refused
    assert await first_line(before, "APOP") == "-ERR unknown command"
    assert (await first_line(after, "QUIT")).startswith("+OK bye")
