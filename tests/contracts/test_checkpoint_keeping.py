"""Which checkpoints keep their weights: the newest N and always the best."""

from __future__ import annotations

from contracts import metrics

# the job: 15 epochs, the best accuracy at epoch 4, max_num_checkpoints 5
SCORES = {epoch: 0.5 + 0.01 * epoch for epoch in range(1, 16)} | {4: 0.99}


def test_the_best_keeps_its_weights_beside_the_newest():
    assert metrics.checkpoints_to_keep(SCORES, 5) == {4, 11, 12, 13, 14, 15}


def test_a_best_among_the_newest_adds_nothing():
    assert metrics.checkpoints_to_keep(SCORES | {14: 1.0}, 5) == {11, 12, 13, 14, 15}


def test_ties_keep_the_earliest_best_as_the_api_stars_it():
    tied = dict.fromkeys(range(1, 8), 0.75)
    assert metrics.best_epoch(tied) == 1
    assert metrics.checkpoints_to_keep(tied, 2) == {1, 6, 7}


def test_at_least_the_newest_is_kept():
    assert metrics.checkpoints_to_keep({1: 0.9, 2: 0.1}, 0) == {1, 2}
    assert metrics.checkpoints_to_keep({}, 3) == set()


def test_headline_ranks_accuracy_or_mean_ap():
    assert metrics.headline("classification", {"overall": {"accuracy": 0.5}}) == 0.5
    assert metrics.headline("detection", {"specific": {"aps": [0.3, 0.1]}}) == 0.3
    assert metrics.headline("detection", {}) == -1


def test_the_trainer_exports_the_checkpoint_the_api_stars(tmp_path):
    """The trainer's model.tar.gz and the API's `is_best` come from the one ranking: among
    checkpoints that still hold weights, the highest headline, the earliest on ties."""
    import json

    from trainer.vision import checkpoint as ckpt
    from trainer.vision.main import best_checkpoint

    accuracies = {1: 0.7, 2: 0.9, 3: 0.9, 4: 0.95}  # epoch 4's weights were pruned
    for epoch, accuracy in accuracies.items():
        directory = ckpt.epoch_dir(tmp_path, epoch)
        directory.mkdir(parents=True)
        (directory / ckpt.METRICS).write_text(json.dumps({"metrics": {"overall": {"accuracy": accuracy}}}))
        if epoch != 4:
            (directory / ckpt.WEIGHTS).write_bytes(b"weights")
    epoch, path, record = best_checkpoint(tmp_path, "classification")
    available = {e: a for e, a in accuracies.items() if e != 4}
    assert epoch == metrics.best_epoch(available) == 2
    assert path == ckpt.epoch_dir(tmp_path, 2) and record["metrics"]["overall"]["accuracy"] == 0.9
    assert best_checkpoint(tmp_path / "none", "classification") is None
