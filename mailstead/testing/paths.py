"""Where the shared test material (``shared/corpus``, ``shared/conformance``) lives.

CI clones the repository with ``shared/`` beside it; a developer's checkout has it there
too. ``MAILSTEAD_SHARED`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    configured = os.environ.get("MAILSTEAD_SHARED")
    if configured:
        return Path(configured)
    beside_repo = Path(__file__).resolve().parents[2].parent / "shared"
    return beside_repo if beside_repo.is_dir() else Path("/work/shared")


SHARED = shared_dir()
