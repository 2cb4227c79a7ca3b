"""Request payload builders: the spec's example, with overrides by dotted path."""

from __future__ import annotations

TRAINER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/chappieai-sagemaker:slot_tagger"
SPEC_HYPERPARAMETERS = {
    "process.train.using_gpu": "True",
    "process.train.initLearningRate": "0.2",
    "process.train.decayLearningSteps": "500",
    "process.train.decayRate": "0.95",
    "process.train.saveCheckpointSteps": "200",
    "process.train.keepCheckpointMax": "3",
    "process.train.momentum": "0.9",
    "process.train.steps": "400",
    "process.train.batchsize": "128",
    "process.eval.using_gpu": "True",
    "process.eval.steps": "100",
    "process.eval.batchsize": "15",
    "model.numClasses": "-1",
    "model.vocabSize": "-1",
    "model.embeddingSize": "50",
    "model.nHiddenGate": "50",
    "model.nHiddenTag": "50",
    "model.dropoutRate": "0.2",
    "model.add_start_end_words": "True",
}
CALLBACK_SECRET = "callback-secret-91c2"
DATASET_SECRET = "dataset-secret-7f3a"


def create_payload(
    callback="http://127.0.0.1:9/callback",
    dataset="http://127.0.0.1:9/fetch",
    hyperparameters=None,
    page_size=100,
    **overrides,
) -> dict:
    payload = {
        "callback_url": {"url": callback, "headers": {"x-api-key": CALLBACK_SECRET}},
        "dataset_endpoint": {
            "type": "fetch",
            "url": dataset,
            "headers": {"x-api-key": DATASET_SECRET},
            "pagination": {"begin_offset": 0, "page_size": page_size, "max_pages": 0},
        },
        "training_model": {
            "image": TRAINER_IMAGE,
            "hyperparameters": dict(SPEC_HYPERPARAMETERS if hyperparameters is None else hyperparameters),
            "resource": {"InstanceType": "ml.m4.4xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        },
        "task_def": "ml_tagger",
        "creator": "thaiph",
    }
    for path, value in overrides.items():
        set_path(payload, path.replace("__", "."), value)
    return {k: v for k, v in payload.items() if v is not _DELETE}


_DELETE = object()


def set_path(payload: dict, dotted: str, value) -> None:
    """`training_model.resource.InstanceType`; hyper-parameter keys keep their dots after `hyperparameters`."""
    parts = dotted.split(".")
    if "hyperparameters" in parts:
        index = parts.index("hyperparameters")
        parts = parts[: index + 1] + [".".join(parts[index + 1 :])] if index + 1 < len(parts) else parts
    node = payload
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


DELETE = _DELETE


def fast_tagger_hyperparameters(steps: int = 60, **extra: str) -> dict:
    return {
        **SPEC_HYPERPARAMETERS,
        "process.train.steps": str(steps),
        "process.train.batchsize": "16",
        "process.train.initLearningRate": "0.5",
        "process.train.saveCheckpointSteps": "20",
        "process.train.decayLearningSteps": "50",
        "process.eval.steps": "20",
        "process.eval.batchsize": "32",
        "model.embeddingSize": "16",
        "model.nHiddenGate": "16",
        "model.nHiddenTag": "16",
        **extra,
    }
