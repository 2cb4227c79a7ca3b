"""The `train` entrypoint: one top-level try/except, as SageMaker expects.

Exit 0 when training finished or was stopped cleanly (SIGTERM); non-zero with
`/opt/ml/output/failure` written otherwise.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field

from contracts import layout
from trainer import launcher
from trainer.artifacts import ArtifactWriter
from trainer.environment import TrainingEnvironment
from trainer.failure import describe, write_failure
from trainer.reporting import Reporter

log = logging.getLogger("trainer")

TASK_MODULES = {
    "ml_tagger": "trainer.text.main",
    "ml_topic": "trainer.text.main",
    "classification": "trainer.vision.main",
    "detection": "trainer.vision.main",
    "instance_segmentation": "trainer.vision.main",
}


@dataclass
class RunContext:
    """What a task's `run` receives: the environment, where to write, and the stop flag."""

    env: TrainingEnvironment
    writer: ArtifactWriter | None
    reporter: Reporter
    stop_event: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.stop_event.is_set()


def _install_sigterm(stop_event: threading.Event) -> None:
    def handler(signum, frame):
        log.warning("SIGTERM received: saving state and stopping")
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = None
    reporter = None
    # First thing: in a container the trainer is PID 1, and the kernel drops a signal PID 1 has
    # no handler for, so a stop that came before the handler would be lost, not fatal.
    stop_event = threading.Event()
    _install_sigterm(stop_event)
    try:
        env = TrainingEnvironment.load()
        writer = ArtifactWriter(env.artifact_uri) if env.is_master else None
        reporter = Reporter(writer, attempt=env.job.attempt)
        reporter.update(force=True, status="initializing")
        if writer is not None:
            from trainer.probe import probe

            writer.put_json(layout.ENVIRONMENT, probe())
        ctx = RunContext(env, writer, reporter, stop_event)
        module_name = TASK_MODULES.get(env.task)
        if module_name is None:
            raise ValueError(f"Invalid task {env.task!r}. Choose one of: {', '.join(TASK_MODULES)}")
        if launcher.should_launch(env):
            return launcher.launch(env, ctx.stop_event)  # the workers report for themselves
        importlib.import_module(module_name).run(ctx)
        status = "stopped" if ctx.should_stop() else "finished"
        # a stopped job has nothing left it will do by itself: no ETA (-1), as a finished one has 0
        reporter.update(force=True, status=status, eta_hr=0 if status == "finished" else -1, phase=None)
        return 0
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        log.exception("training failed")
        failure_path = (env or TrainingEnvironment.unloaded()).failure_file
        write_failure(failure_path, exc)
        if reporter is not None:
            try:
                reporter.update(force=True, status="exception", exception=describe(exc))
            except Exception:
                log.exception("could not write the exception heartbeat")
        return 1


if __name__ == "__main__":
    sys.exit(main())
