"""Tiny real checkpoints from the real trainer, and the real inference server as a child process.

The server is started exactly as the local hosting platform starts it:
`python -m inference.serve --model-dir DIR --port N --host 127.0.0.1` with
PYTHONPATH=containers/trainer:containers/inference:<repo root>.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.servers import REPO, free_port
from tests.trainer.test_vision_train import CLASSIFICATION, DETECTION, SEGMENTATION, Job

# One epoch at a learning rate this small leaves the R-CNN heads near their initial scores
# (~1/num_classes), so every image yields detections above the heads' 0.05 cut and the
# tests see boxes, masks and polygons; it is still a checkpoint the trainer trained and wrote.
TASK_HP = {
    "classification": {**CLASSIFICATION, "num_epochs_to_finish": 1},
    "detection": {**DETECTION, "num_epochs_to_finish": 1, "learning_rate": 1e-6},
    # Mask R-CNN on resnet18, and a resize (48 -> 40 px) so the server must map boxes and
    # masks back to the original image.
    "instance_segmentation": {
        **SEGMENTATION,
        "backbone": "resnet18",
        "num_epochs_to_finish": 1,
        "learning_rate": 1e-6,
        "image_resized_width": 40,
        "image_resized_height": 40,
    },
}
IMAGE_SIZE = 48


def train_checkpoint(root: Path, task: str) -> tuple[Path, Path]:
    """(epoch-1 checkpoint directory, data_dir) of a one-epoch job on synthetic data."""
    job = Job(root, task, TASK_HP[task], num_images=6, image_size=IMAGE_SIZE)
    with pytest.MonkeyPatch.context() as mp:
        assert job.run(mp) == 0, job.failure
    return job.checkpoints / "epoch-1", job.data


def server_env(**extra: str) -> dict:
    paths = [str(REPO / "containers" / "trainer"), str(REPO / "containers" / "inference"), str(REPO)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFACTORY_", "SAGEMAKER_"))}
    env.update(PYTHONPATH=os.pathsep.join(paths), AIFACTORY_DEVICE="cpu")
    env.update(extra)
    return env


class InferenceServer:
    """The server in a child process on a free loopback port; `url`, `post`, `get`, `stop`."""

    def __init__(self, model_dir: Path | None, log_path: Path, command: list[str] | None = None, **env: str):
        """`command` None: the local platform's command line; otherwise `command` with the port in
        SAGEMAKER_BIND_TO_PORT, as SageMaker starts `serve`."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        if command is None:
            command = [sys.executable, "-m", "inference.serve", "--model-dir", str(model_dir)]
            command += ["--port", str(self.port), "--host", "127.0.0.1"]
        else:
            env = {"SAGEMAKER_BIND_TO_PORT": str(self.port), "AIFACTORY_HOST": "127.0.0.1", **env}
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            command, env=server_env(**env), stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready(timeout=180)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"inference server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"inference server not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, path: str = "/invocations", **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=120, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
