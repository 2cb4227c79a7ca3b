"""Issue 17: the checkpoint route's answer stays under Lambda's 6 MB whatever the class count.

No answer carries the C x C confusion matrix (its plot is a JPEG of bounded size); what grows
with C is `metrics.specific`, one entry per class in every list. Measured
(bench/bench_answer_sizes.py): the answer is 0.28 / 0.32 / 0.45 MB at 1,000 / 2,000 / 5,000
classes. Past 3 MB of metrics (about 60,000 such classes) the route answers a page of classes
at a time (chalicelib.v15.class_pages); below it, the spec's body unchanged."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.aws_limits import LAMBDA_MAX_RESPONSE_BYTES
from chalicelib.errors import ValidationError
from chalicelib.ports import COMPLETED, Adapters
from chalicelib.services import jobs
from chalicelib.v15 import class_pages
from chalicelib.v15 import service as v15
from contracts import layout

JOB = "20261201000000-classes"
SCORES = ("aucs", "sensitivities", "specificities")


def metrics(classes: int, name_length: int = 26) -> dict:
    names = [f"class-{i:06d}-".ljust(name_length, "x") for i in range(classes)]
    return {
        "overall": {"accuracy": 0.8, "avg_recall": 0.79, "avg_precision": 0.81, "avg_f1_score": 0.8},
        "specific": {
            "categories": ["mean", *names],
            **{score: [0.5, *(round(0.5 + (i % 997) / 2000, 4) for i in range(classes))] for score in SCORES},
        },
    }


@pytest.fixture
def checkpoint_of(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(
        jobs.base_record(JOB, "v15-classes", "v1.5", "classification", status=COMPLETED, settled=True)
    )
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    svc = Adapters(jobs=store, artifacts=artifacts, platform=None, secrets=None, tools=None)

    def answer(classes: int, query: dict | None = None, name_length: int = 26) -> dict:
        record = {"epoch": 1, "avg_loss": 0.5, "metrics": metrics(classes, name_length)}
        artifacts.put_json(layout.job_key(JOB, layout.epoch_file(1, layout.METRICS_JSON)), record)
        return v15.checkpoint(svc, JOB, "1", query)["checkpoint"]

    return answer


def size(answer: dict) -> int:
    return len(json.dumps({"result": "OK", "checkpoint": answer}).encode())


def test_a_normal_checkpoint_is_the_specs_body(checkpoint_of):
    answer = checkpoint_of(5_000)
    assert list(answer) == ["epoch", "avg_loss", "metrics", "base64_metric_plot", "is_best", "is_available"]
    assert answer["metrics"] == metrics(5_000)
    assert size(answer) < 500_000


def test_past_3_mb_of_metrics_the_classes_come_a_page_at_a_time(checkpoint_of):
    full = metrics(150_000)
    assert len(json.dumps(full)) > 2 * class_pages.PAGE_BYTES  # 150,000 classes: 7.9 MB, over Lambda's 6 MB
    pages, offset = [], 0
    while offset is not None:
        answer = checkpoint_of(150_000, {"class_offset": str(offset)} if offset else None)
        assert size(answer) < class_pages.PAGE_BYTES + 1_000 < LAMBDA_MAX_RESPONSE_BYTES
        specific = answer["metrics"]["specific"]
        assert specific["categories"][0] == "mean" and specific["aucs"][0] == 0.5  # the mean on every page
        assert answer["metrics"]["overall"] == full["overall"]
        classes = answer["classes"]
        assert classes["total"] == 150_000 and classes["offset"] == offset
        assert len(specific["categories"]) == classes["count"] + 1
        pages.append(answer)
        offset = classes["next_offset"]
    assert len(pages) == 3
    for key in ("categories", *SCORES):  # the pages put together are the whole lists
        joined = [pages[0]["metrics"]["specific"][key][0]]
        for answer in pages:
            joined += answer["metrics"]["specific"][key][1:]
        assert joined == full["specific"][key]


def test_long_class_names_make_smaller_pages_never_a_larger_answer(checkpoint_of):
    answer = checkpoint_of(20_000, name_length=255)  # a directory name's most
    assert answer["classes"]["next_offset"] == answer["classes"]["count"] < 20_000
    assert size(answer) < class_pages.PAGE_BYTES + 1_000


def test_class_offset_pages_any_checkpoint_and_is_checked(checkpoint_of):
    answer = checkpoint_of(10, {"class_offset": "7"})
    assert answer["metrics"]["specific"]["categories"] == ["mean"] + [
        f"class-{i:06d}-".ljust(26, "x") for i in (7, 8, 9)
    ]
    assert answer["classes"] == {"total": 10, "offset": 7, "count": 3, "next_offset": None}
    for bad in ("10", "-1", "x", "1e400"):
        with pytest.raises(ValidationError, match="'class_offset'"):
            checkpoint_of(10, {"class_offset": bad})


def test_a_detection_checkpoint_pages_every_aligned_list():
    detection = {
        "overall": {},
        "specific": {
            "categories": ["mean", "cat", "dog", "eel"],
            "aps": [0.5, 0.1, 0.2, 0.3],
            "f1_scores": [0.4, 0.1, 0.2, 0.3],
        },
    }
    shown, classes = class_pages.page(detection, {"class_offset": "1"})
    assert shown["specific"] == {
        "categories": ["mean", "dog", "eel"],
        "aps": [0.5, 0.2, 0.3],
        "f1_scores": [0.4, 0.2, 0.3],
    }
    assert classes == {"total": 3, "offset": 1, "count": 2, "next_offset": None}
    assert class_pages.page(detection) == (detection, None)


def test_the_route_passes_class_offset(client, api_headers, tmp_path, monkeypatch):
    store = SqliteJobStore(tmp_path / "route-jobs.sqlite3")
    store.create(
        jobs.base_record(JOB, "v15-classes", "v1.5", "classification", status=COMPLETED, settled=True)
    )
    artifacts = DirectoryArtifactStore(tmp_path / "route-artifacts")
    record = {"epoch": 1, "avg_loss": 0.5, "metrics": metrics(10)}
    artifacts.put_json(layout.job_key(JOB, layout.epoch_file(1, layout.METRICS_JSON)), record)
    svc = Adapters(jobs=store, artifacts=artifacts, platform=None, secrets=None, tools=None)
    monkeypatch.setattr("chalicelib.v15.routes.adapters", lambda: svc)
    path = f"/api/v1.5.0/train/{JOB}/checkpoints/epoch/1"
    whole = client.http.get(path, headers=api_headers).json_body
    assert whole["checkpoint"]["metrics"] == metrics(10) and "classes" not in whole["checkpoint"]
    paged = client.http.get(path + "?class_offset=8", headers=api_headers).json_body
    assert paged["checkpoint"]["classes"] == {"total": 10, "offset": 8, "count": 2, "next_offset": None}
    refused = client.http.get(path + "?class_offset=10", headers=api_headers)
    assert refused.status_code == 400 and "'class_offset'" in refused.json_body["message"]
