"""Budgets for the message data every connection holds at once, in memory and on disk.

Each connection's message is bounded by ``limits.max_message_size``, but connections are
many: 60 unauthenticated SMTP clients holding unfinished 45 MiB DATA took the server from
138 MiB to 2.8 GB in 20 s, and the defaults allowed about 44 GB. So the octets of message
data a session keeps in memory (SMTP DATA and BDAT, an IMAP literal) are reserved here
first, and a session that finds the budget spent refuses that message with a temporary
error ("try again later") while the others go on. Reservations never wait, so no session
can hold up another, and every reservation is given back when its message is stored or
dropped.

One instance per process for memory (``limits.max_input_in_flight``) and one for the
spool files that message data beyond a small threshold goes to (``limits.max_spool_in_flight``,
:mod:`mailstead.core.spool`), built by the composition root and handed to the front ends.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("mailstead.limits")


class InputBudget:
    """Octets of message data held at once (in memory, or in spool files), for all
    connections together. ``setting`` and ``what`` name it in the warning it logs."""

    def __init__(self, total: int, setting: str = "limits.max_input_in_flight",
                 what: str = "message data in memory") -> None:
        if total <= 0:
            raise ValueError("the input budget must be positive")
        self.total = total
        self.used = 0
        self.setting = setting
        self.what = what
        self._warned = False

    def try_reserve(self, size: int) -> bool:
        """Take ``size`` octets if they are free; False (and nothing taken) if not."""
        if self.used + size > self.total:
            if not self._warned:  # once per episode, not once per refused chunk
                _log.warning("%s reached %s (%d octets): refusing new data until some is "
                             "stored", self.what, self.setting, self.total)
                self._warned = True
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)
        if self.used <= self.total // 2:
            self._warned = False


class Reservation:
    """What one message has taken from the budget (from each of ``budgets``: the process's
    and its client's, say); give it all back with :meth:`close`.

    ``refused`` turns True at the first octets the budget could not hold, and stays so
    until :meth:`close` (the end of that message): the caller stops keeping the message
    and answers "try again later". A session may use one reservation for one message
    after another.
    """

    def __init__(self, *budgets: InputBudget | None) -> None:
        self.budgets = [b for b in budgets if b is not None]
        self.size = 0
        self.refused = False

    def take(self, size: int) -> bool:
        """Reserve ``size`` more octets; False once the budget has refused any."""
        if self.refused:
            return False
        for n, budget in enumerate(self.budgets):
            if not budget.try_reserve(size):
                for taken in self.budgets[:n]:
                    taken.release(size)
                self.refused = True
                return False
        self.size += size
        return True

    def give_back(self, size: int) -> None:
        """Return ``size`` of the octets taken (they moved elsewhere, say to disk)."""
        size = min(size, self.size)
        if size:
            for budget in self.budgets:
                budget.release(size)
        self.size -= size

    def close(self) -> None:
        """The message is over (stored, refused or dropped): give everything back."""
        if self.size:
            for budget in self.budgets:
                budget.release(self.size)
        self.size = 0
        self.refused = False
