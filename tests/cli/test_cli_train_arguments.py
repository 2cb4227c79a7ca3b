"""`aifactory train` passes any `--name value` on as a v1.5 train argument; against the real
server a name no task knows is refused in one line with the closest known name, and an
argument of another task is accepted (issue 18)."""

from __future__ import annotations

BASE = ["train", "--task", "classification", "--algorithm", "resnet18", "--pretrained", "False"]


def test_a_typo_is_refused_naming_the_closest_argument(cli, classification_data):
    result = cli(*BASE, "--data-dir", classification_data, "--num_epoch", "3")
    assert result.code == 1
    assert result.err == (
        "aifactory: Invalid 'num_epoch': unknown argument; did you mean num_epochs_to_finish?\n"
    )
    assert result.out == ""


def test_a_name_no_task_knows_is_refused(cli, classification_data):
    result = cli(*BASE, "--data-dir", classification_data, "--foo", "bar")
    assert (result.code, result.err) == (1, "aifactory: Invalid 'foo': unknown argument\n")
