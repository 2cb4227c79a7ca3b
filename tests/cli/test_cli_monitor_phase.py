"""A job's validation pass reads as such in the CLI's status line, not as `batch 20/20, ETA 0`."""

from __future__ import annotations

from aifactory.progress import monitor_line


def test_the_evaluating_phase_is_shown_without_an_eta():
    body = {"status": "running", "phase": "evaluating", "epoch": 3, "total_epoch": 3}
    body |= {"batch": 20, "total_batch": 20, "avg_loss": 0.5, "eta_hr": -1}
    assert monitor_line(body) == "running (evaluating) epoch 3/3 batch 20/20 loss 0.5000"
