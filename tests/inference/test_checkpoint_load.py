"""`trainer.vision.checkpoint.load_model`: the one way a checkpoint directory becomes a model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from trainer.vision import engine
from trainer.vision.checkpoint import load_model
from trainer.vision.data import classification_collate

from tests.inference.trainer_output import val_dataset


def test_load_model_rebuilds_the_model_the_trainer_evaluated(trained):
    checkpoint, data = trained("classification")
    loaded = load_model(checkpoint, "cpu")
    assert not loaded.model.training and loaded.task == "classification"
    assert loaded.class_names == json.loads((checkpoint / "model.json").read_text())["class_names"]
    dataset = val_dataset(data, "classification", loaded.model_json["hyperparameters"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=classification_collate)
    evaluation = engine.evaluate(
        loaded.model, loader, torch.device("cpu"), "classification", loaded.class_names
    )
    recorded = json.loads((checkpoint / "metrics.json").read_text())["metrics"]
    assert evaluation.metrics["overall"] == recorded["overall"]


def test_load_model_applies_the_eval_pipeline(trained):
    checkpoint, data = trained("classification")
    loaded = load_model(checkpoint, "cpu")
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    out = loaded.transform(image)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 32, 32)


def test_load_model_without_weights_names_the_pruned_file(trained, tmp_path):
    checkpoint, _ = trained("classification")
    copy = tmp_path / "epoch-1"
    shutil.copytree(checkpoint, copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        load_model(copy, "cpu")


def test_load_model_without_model_json_says_it_is_no_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no model.json: it is not a vision checkpoint directory"):
        load_model(tmp_path, "cpu")


def test_load_model_refuses_weights_of_another_model(trained, tmp_path):
    checkpoint, _ = trained("classification")
    copy = tmp_path / "epoch-1"
    shutil.copytree(checkpoint, copy)
    model_json = json.loads((copy / "model.json").read_text())
    model_json["hyperparameters"]["algorithm"] = model_json["algorithm"] = "resnet34"
    (copy / "model.json").write_text(json.dumps(model_json))
    with pytest.raises(RuntimeError, match="Missing key"):
        load_model(copy, "cpu")
