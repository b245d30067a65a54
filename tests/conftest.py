"""Settings for the whole test suite.

The sanity flag (``mailstead/core/sanity.py``) is on for every test: a catch-all fallback that
degrades quietly in production raises here, so the test that provoked it fails. It is set in
the environment at import time, before any test module is collected, so that servers the tests
start as subprocesses inherit it too. A test that checks the production behaviour turns it
off for itself with ``monkeypatch.delenv``.
"""

from __future__ import annotations

import os

from mailstead.core import sanity

os.environ[sanity.ENV_VAR] = "1"
