"""Settings for the whole test suite.

The sanity flag (``mailstead/core/sanity.py``) is on for every test: a catch-all fallback that
degrades quietly in production raises here, so the test that provoked it fails. It is set in
the environment at import time, before any test module is collected, so that servers the tests
start as subprocesses inherit it too. A test that checks the production behaviour turns it
off for itself with ``monkeypatch.delenv``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mailstead.core import sanity

os.environ[sanity.ENV_VAR] = "1"

# Plugins whose hooks must run in the process that prints the summary, which under
# pytest-xdist is the controller: it collects nothing, so it never imports a conftest below
# this one. ``pytester`` runs the suite's own plugins in a child pytest to test them.
pytest_plugins = ("pytester", "tests.conformance.mpt_tally")


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """The command line makes the process's files private (``os.umask(0o077)``, cli/main.py);
    tests that run it in process must not leave that to the next test, whose files other
    users' programs (Postfix, Dovecot) may need to read."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)
