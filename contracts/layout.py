"""Where a job's artifacts live, relative to the artifact store's root (a directory or an
S3 prefix). The trainer writes these keys under its artifact URI (`job_dir`); the API
reads them through the ArtifactStore. Both build every key here.
"""

from __future__ import annotations

import re

FORMAT_VERSION = 2
"""job.json / artifact layout version; `upgrade` migrates older layouts to it.

1 (releases 1.1.0 to 1.4.x): R-CNN checkpoints' model.json leave the normalisation implicit
  (`needs_freeze_bn` decided frozen or trainable BatchNorm).
2: every checkpoint's model.json names its normalisation (`rcnn_norm`); from-scratch
  detectors may use GroupNorm, which only an explicit value can express.
0 or absent (before 1.1.0): no job.json format at all; not upgradable.
"""
OLDEST_UPGRADABLE = 1
VERSION_NAMES = {0: "1.0.x", 1: "1.1.0", 2: "1.5.0"}

JOB_FILE = "job.json"
PROGRESS = "progress.json"
LOSSES = "losses.json"
LOSS_STEPS = "loss_steps.json"  # the batch (counted over all epochs) each loss point ends at
RESULT = "result.json"
ENVIRONMENT = "environment.json"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
LOSS_PLOT = f"{PLOTS}/loss.jpg"  # drawn by the API's plot tool from LOSSES (contracts.plots)
LOSS_PLOT_SOURCE = f"{PLOTS}/loss.source.json"  # which losses the stored LOSS_PLOT shows
MODEL_GRAPH_PLOT = f"{PLOTS}/model-graph.jpg"  # drawn from MODEL_GRAPH_JSON
MODEL_GRAPH_JSON = f"{PLOTS}/model-graph.json"  # written by the trainer once the model is built

# Files of one vision checkpoint directory (`checkpoints/epoch-<N>/`): self-contained and
# deployable as it is (SageMaker hosting loads an uncompressed prefix as model data).
WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
METRICS_JSON = "metrics.json"
SUMMARY_JSON = "summary.json"
TRAIN_STATE = "train_state.pt"  # optimizer/scheduler state: read only by the trainer
METRIC_PLOT = "metric.jpg"
CONFUSION_MATRIX_PLOT = "confusion_matrix.jpg"
THRESHOLD_PLOT = "threshold.jpg"  # mean over classes
PLOT_DATA_JSON = "plot_data.json"  # the numbers the plots above are drawn from (contracts.plots)
RESUME_FILES = (WEIGHTS, TRAIN_STATE)

_EPOCH_DIR = re.compile(r"(?:^|/)checkpoints/epoch-(\d+)/([^/]+)$")
EPOCH_DIR_NAME = re.compile(r"^epoch-(\d+)$")


def job_prefix(job_id: str) -> str:
    """The key prefix of everything one job owns."""
    return f"jobs/{job_id}"


def job_key(job_id: str, name: str) -> str:
    """`name` (one of the constants above, or a relative path) under the job's prefix."""
    return f"{job_prefix(job_id)}/{name}"


def epoch_dir_name(epoch: int) -> str:
    """A checkpoint directory's name inside `checkpoints/` (SageMaker's /opt/ml/checkpoints)."""
    return f"epoch-{int(epoch)}"


def epoch_dir(epoch: int) -> str:
    """A checkpoint directory, relative to the job's prefix."""
    return f"{CHECKPOINTS}/{epoch_dir_name(epoch)}"


def epoch_file(epoch: int, name: str) -> str:
    return f"{epoch_dir(epoch)}/{name}"


def threshold_plot(class_index: int) -> str:
    """Per-class threshold plot file name in a checkpoint directory; 0 is the mean."""
    return THRESHOLD_PLOT if int(class_index) == 0 else f"threshold-class-{int(class_index)}.jpg"


def parse_epoch_key(key: str) -> tuple[int, str] | None:
    """`(epoch, file name)` of a key inside a checkpoint directory, else None."""
    match = _EPOCH_DIR.search(key)
    return (int(match.group(1)), match.group(2)) if match else None


def text_step_dir(step: int) -> str:
    """Text tasks' resume points (every `saveCheckpointSteps` steps)."""
    return f"{CHECKPOINTS}/step-{int(step)}"


OUTPUT_PREFIX = "output"  # the job's S3OutputPath is `<artifacts>/OUTPUT_PREFIX`


def model_output(training_job_name: str) -> str:
    """Where SageMaker leaves model.tar.gz for S3OutputPath `<artifacts>/output`, relative to the job."""
    return f"{OUTPUT_PREFIX}/{training_job_name}/output/model.tar.gz"
