"""`python -m chalicelib.entrypoints.job_runner <job_dir>`: one local training job.

The local platform starts this detached from the API process. It composes the runner
(an adapter) with the state-change handler (a service), which the adapter must not
import itself.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from chalicelib import settings
from chalicelib.adapters.local import runner
from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.services import events
from chalicelib.wiring import adapters


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job_dir = Path((sys.argv[1:] if argv is None else argv)[0])
    config = settings.current()
    platform = LocalTrainingPlatform(
        job_dir.parent.parent,
        max_concurrent=config.max_concurrent_jobs,
        stop_grace_seconds=config.stop_grace_seconds,
    )
    return runner.run(
        job_dir, platform, lambda name, status: events.on_training_state_change(adapters(), name, status)
    )


if __name__ == "__main__":
    sys.exit(main())
