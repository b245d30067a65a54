"""LIST and LSUB mailbox patterns (RFC 9051 §6.3.9), matched in linear time.

``*`` matches any run of characters, ``%`` any run without the hierarchy separator. A
translation to a backtracking regex (``%*%*%*…z`` → ``[^/]*.*[^/]*.*…z``) takes time
exponential in the number of wildcards on a name that does not match, and it runs on the
event loop: a 101-byte pattern once stalled every protocol of the server until SIGKILL.

Here a pattern is a small automaton simulated over the name with every live state at once
(states held as bits of an ``int``), so a match costs one step per character of the name
whatever the pattern: O(len(name) * len(pattern) / word size). Runs of wildcards collapse
first (any run holding ``*`` is ``*``; a run of ``%`` is ``%``); that changes no answer and
keeps the automaton as small as the pattern's literal text.

Pure, no I/O: the IMAP session decides the reference and INBOX rules, this module matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ANY = "*"
_LOCAL = "%"


def _collapse(pattern: str) -> list[str]:
    """The pattern as tokens: one character each, wildcard runs collapsed to one."""
    tokens: list[str] = []
    for char in pattern:
        if char in (_ANY, _LOCAL) and tokens and tokens[-1] in (_ANY, _LOCAL):
            if char == _ANY:
                tokens[-1] = _ANY  # "%*" and "*%" match what "*" matches
            continue
        tokens.append(char)
    return tokens


@dataclass(frozen=True, slots=True)
class MailboxPattern:
    """One compiled pattern; :meth:`matches` answers for a whole mailbox name.

    Bit ``i`` of a state set means "the first ``i`` tokens have matched a prefix of the
    name". A literal token moves its bit one place up on its own character; a wildcard
    keeps its bit (``%`` not on the separator) and, by an empty match, also lights the bit
    above it.
    """

    text: str
    separator: str = "/"
    _literal: dict[str, int] = field(init=False, repr=False, compare=False)
    _any: int = field(init=False, repr=False, compare=False)
    _local: int = field(init=False, repr=False, compare=False)
    _accept: int = field(init=False, repr=False, compare=False)
    _start: int = field(init=False, repr=False, compare=False)
    _plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = _collapse(self.text)
        literal: dict[str, int] = {}
        any_mask = local_mask = 0
        for index, token in enumerate(tokens):
            bit = 1 << index
            if token == _ANY:
                any_mask |= bit
            elif token == _LOCAL:
                local_mask |= bit
            else:
                literal[token] = literal.get(token, 0) | bit
        set_ = object.__setattr__
        set_(self, "_literal", literal)
        set_(self, "_any", any_mask)
        set_(self, "_local", local_mask)
        set_(self, "_accept", 1 << len(tokens))
        set_(self, "_plain", not (any_mask or local_mask))
        set_(self, "_start", self._closure(1))

    def _closure(self, states: int) -> int:
        """Add the states reached by letting each live wildcard match nothing more.

        After :func:`_collapse` no wildcard follows another, so one step is enough.
        """
        return states | ((states & (self._any | self._local)) << 1)

    def matches(self, name: str) -> bool:
        if self._plain:
            return name == self.text
        literal, any_mask, local_mask = self._literal, self._any, self._local
        separator = self.separator
        states = self._start
        for char in name:
            stay = states & any_mask
            if char != separator:
                stay |= states & local_mask
            states = self._closure(((states & literal.get(char, 0)) << 1) | stay)
            if not states:
                return False
        return bool(states & self._accept)
