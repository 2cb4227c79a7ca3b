"""The one place that knows where the repository is: the local platform runs the
containers' code from the source tree instead of from images."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
TRAINER_CODE = REPO_ROOT / "containers" / "trainer"
INFERENCE_CODE = REPO_ROOT / "containers" / "inference"


def child_pythonpath(*extra: Path) -> str:
    """PYTHONPATH of a child that runs container code: that code, the contracts, the shared packages."""
    return os.pathsep.join(str(p) for p in (*extra, REPO_ROOT))
