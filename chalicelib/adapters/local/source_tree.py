"""The one place that knows where the repository is: the local platform runs the
containers' code from the source tree instead of from images."""

from __future__ import annotations

import os
from pathlib import Path

from chalicelib.settings import SECRET_ENVIRONMENT

REPO_ROOT = Path(__file__).resolve().parents[3]
TRAINER_CODE = REPO_ROOT / "containers" / "trainer"
INFERENCE_CODE = REPO_ROOT / "containers" / "inference"


# What the API holds and no container code needs: never in a trainer's, tool's or model server's
# environment. Derived from the settings table (every key setting), never listed here by hand.
CONTAINERS_NEVER_SEE = SECRET_ENVIRONMENT
# The job runner sends the job's callback when it ends (services.events): it signs the callback
# and its model link, so it keeps those two keys and no other.
RUNNER_KEYS = frozenset({"AIFACTORY_CALLBACK_SIGNING_KEY", "AIFACTORY_MODEL_LINK_KEY"})
RUNNER_NEVER_SEES = SECRET_ENVIRONMENT - RUNNER_KEYS


def container_env(*code: Path) -> dict[str, str]:
    """The environment of a child that runs container code: this process's, less its secrets."""
    env = {k: v for k, v in os.environ.items() if k not in CONTAINERS_NEVER_SEE}
    env["PYTHONPATH"] = child_pythonpath(*code)
    return env


def child_pythonpath(*extra: Path) -> str:
    """PYTHONPATH of a child that runs container code: that code, the contracts, the shared packages."""
    return os.pathsep.join(str(p) for p in (*extra, REPO_ROOT))
