"""Unit checks of the text trainer's parts: hyper-parameters, metrics, schedule, checkpoints."""

from __future__ import annotations

import pytest
import torch
from trainer.text import checkpoints
from trainer.text.config import TextConfig, as_hyperparameters, parse_hyperparameters
from trainer.text.data import IGNORE_INDEX, Encoder, StepBatches, build_classes, build_vocab, split_records
from trainer.text.main import make_optimizer
from trainer.text.metrics import callback_log, confusion_matrix, scores
from trainer.text.models import build_model, model_spec

from tests.builders import SPEC_HYPERPARAMETERS

SPEC_EXAMPLE = SPEC_HYPERPARAMETERS


def test_spec_example_parses_and_round_trips():
    config = parse_hyperparameters(SPEC_EXAMPLE)
    assert config == TextConfig()  # the defaults are the spec's example
    resolved = as_hyperparameters(config)
    assert {k: str(v) for k, v in resolved.items() if k in SPEC_EXAMPLE} == SPEC_EXAMPLE
    assert parse_hyperparameters({"process.train.steps": "4e2", "unknown.key": "x"}).steps == 400


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("process.train.batchsize", "0"),
        ("process.train.steps", "12.5"),
        ("process.train.decayRate", "1.5"),
        ("process.train.momentum", "-0.1"),
        ("process.eval.steps", "-1"),
        ("model.numClasses", "0"),
        ("model.vocabSize", "-2"),
        ("process.train.initLearningRate", "nan"),
    ],
)
def test_invalid_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"Invalid hyper-parameter {key}='{value}'"):
        parse_hyperparameters({key: value})


def test_step_decay_schedule():
    config = parse_hyperparameters(
        {"process.train.decayLearningSteps": "3", "process.train.decayRate": "0.5"}
    )
    optimizer, schedule = make_optimizer(torch.nn.Linear(2, 2), config)
    seen = []
    for _ in range(7):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05])
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_report_matches_sklearn_definitions():
    target = torch.tensor([0, 0, 0, 1, 1, 2, IGNORE_INDEX])
    preds = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    matrix = confusion_matrix(preds, target, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    report = scores(matrix)
    # sklearn.metrics.classification_report(target[:-1], preds[:-1]) gives these numbers.
    assert [round(d["precision"], 4) for d in report["details"]] == [1.0, 0.5, 0.5]
    assert [round(d["recall"], 4) for d in report["details"]] == [0.6667, 0.5, 1.0]
    assert report["avg"]["f1-score"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    text = callback_log(report)
    assert text["avg"] == {"precision": "0.75", "recall": "0.67", "f1-score": "0.68", "support": "6"}
    assert text["details"][2] == {
        "precision": "0.50",
        "recall": "1.00",
        "f1-score": "0.67",
        "support": "1",
        "no": "2",
    }


def test_class_with_no_predictions_scores_zero():
    report = scores(confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 1]), 2))
    assert report["details"][1] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1, "no": 1}


def test_report_of_an_empty_evaluation_is_all_zero():
    report = scores(confusion_matrix(torch.tensor([1]), torch.tensor([IGNORE_INDEX]), 3), 2)
    assert report["avg"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    assert report["accuracy"] == 0.0 and [d["support"] for d in report["details"]] == [0, 0]


def test_vocab_classes_and_encoding():
    vocab = build_vocab([["b", "a", "b"], ["c"]], vocab_size=-1)
    assert vocab == ["<pad>", "<unk>", "<s>", "</s>", "b", "a", "c"]
    assert build_vocab([["b", "a", "b"], ["c"]], vocab_size=5)[-1] == "b"
    with pytest.raises(ValueError, match="model.vocabSize=3"):
        build_vocab([["a"]], vocab_size=3)
    assert build_classes([["10", "2"], ["1"]], -1) == ["1", "2", "10"]
    encoder = Encoder("ml_tagger", vocab, ["O", "X"], add_start_end_words=True)
    example = encoder.encode({"tokens": ["a", "zzz"], "tags": ["X", "O"]})
    assert example.ids == [2, 5, 1, 3] and example.target == [IGNORE_INDEX, 1, 0, IGNORE_INDEX]


def test_split_and_batches_are_deterministic():
    records = [{"text": str(i), "label": "x"} for i in range(50)]
    train, held = split_records(records, 0.2, seed=3)
    assert len(held) == 10 and len(train) == 40 and split_records(records, 0.2, seed=3) == (train, held)
    assert not {r["text"] for r in train} & {r["text"] for r in held}
    encoder = Encoder("ml_topic", build_vocab([[r["text"]] for r in train], -1), ["x"], False)
    examples = [encoder.encode(r) for r in train]
    first, again = StepBatches(examples, 8, seed=0), StepBatches(examples, 8, seed=0)
    assert first.per_epoch == 5
    assert torch.equal(first(7).ids, again(7).ids)  # a resumed run sees the same batch at a step
    epoch = torch.cat([first(s).ids for s in range(5)]).flatten().sort().values
    assert epoch.tolist() == sorted(encoder.ids([r["text"]])[0] for r in train)


def test_checkpoint_pruning_and_loading(tmp_path):
    config = TextConfig(embedding_size=4, hidden_gate=3, hidden_tag=0)
    spec = model_spec("ml_topic", 10, 2, config)
    model = build_model(spec)
    optimizer, schedule = make_optimizer(model, config)
    for step in (10, 20, 30):
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": schedule.state_dict(),
            "num_losses": step,
        }
        checkpoints.save(
            tmp_path, step, model, {"model": spec, "task": "ml_topic"}, state, {"avg_loss": 1.0}, 2
        )
    (tmp_path / ".step-40.tmp").mkdir()  # a save cut short never counts
    assert checkpoints.list_steps(tmp_path) == [20, 30]
    latest = checkpoints.load_latest(tmp_path)
    assert latest.step == 30 and latest.state["num_losses"] == 30
    rebuilt = build_model(latest.meta["model"])
    rebuilt.load_state_dict(latest.weights)
    ids, lengths = torch.tensor([[4, 5, 6]]), torch.tensor([3])
    model.eval()
    rebuilt.eval()
    assert torch.allclose(model(ids, lengths), rebuilt(ids, lengths))
