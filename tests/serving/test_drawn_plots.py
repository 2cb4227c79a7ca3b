"""A checkpoint's plots: drawn by the trainer image's `plot` tool on the first request, stored
beside the checkpoint and served from there (contracts.plots)."""

from __future__ import annotations

import base64

import pytest

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.adapters.local.tool_runner import LocalToolRunner
from chalicelib.errors import NotFound
from chalicelib.ports import COMPLETED, Adapters
from chalicelib.v15 import plots as routes
from chalicelib.v15 import service as v15
from chalicelib.v15.tools import ToolError
from contracts import layout, plots, tools

JOB = "20261130000000-plots"
CLASSES = ["cat", "dog", "eel"]
JPEG = b"\xff\xd8\xff\xe0 an older trainer's plot"


class CountingTools:
    """The real tool in a detached child process, counted."""

    def __init__(self, store):
        self.requests: list[dict] = []
        self.real = LocalToolRunner(store)
        self.timeout_s = self.real.timeout_s

    def start(self, request, result_key):
        self.requests.append(request)
        self.real.start(request, result_key)


class FailingTools:
    timeout_s = 60.0

    def __init__(self, store):
        self.store = store

    def start(self, request, result_key):
        self.store.put_json(result_key, tools.failed(500, f"ValueError: cannot draw {request['plot']}"))


def metrics_record(epoch: int) -> dict:
    per_class = [0.9, 0.8, 0.7, 0.6]
    return {
        "epoch": epoch,
        "avg_loss": 0.5,
        "metrics": {
            "overall": {"accuracy": 0.75},
            "specific": {
                "categories": ["mean", *CLASSES],
                "aucs": per_class,
                "sensitivities": per_class,
                "specificities": per_class,
            },
        },
    }


def numbers() -> dict:
    thresholds = [i / 10 for i in range(11)]
    precision = [[min(1.0, 0.5 + t / (k + 2)) for t in thresholds] for k in range(3)]
    precision[2][-1] = float("nan")  # nothing scores above the last threshold
    recall = [[1.0 - t * (k + 1) / 3 for t in thresholds] for k in range(3)]
    return plots.plot_data(CLASSES, [[5, 1, 0], [0, 6, 1], [2, 0, 4]], thresholds, precision, recall)


@pytest.fixture
def store(tmp_path):
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    artifacts.put_json(layout.job_key(JOB, layout.epoch_file(1, layout.METRICS_JSON)), metrics_record(1))
    artifacts.put_json(layout.job_key(JOB, layout.epoch_file(1, layout.MODEL_JSON)), {"class_names": CLASSES})
    artifacts.put_json(layout.job_key(JOB, layout.epoch_file(1, layout.PLOT_DATA_JSON)), numbers())
    return artifacts


def services(tmp_path, store, tool_runner, task="classification") -> Adapters:
    jobs = SqliteJobStore(tmp_path / "jobs.sqlite3")
    jobs.create(
        {
            "job_id": JOB,
            "job_name": "plots",
            "api": "v1.5",
            "task": task,
            "status": COMPLETED,
            "settled": True,
            "created_at": "2026-11-30 00:00:00",
            "artifact_key": layout.job_prefix(JOB),
            "attempts": [{"attempt": 1, "training_job_name": "plots"}],
            "hyperparameters": {},
        }
    )
    return Adapters(jobs=jobs, artifacts=store, platform=None, secrets=None, tools=tool_runner)


def decoded(answer: str) -> bytes:
    return base64.b64decode(answer)


def stored(store, name: str) -> bytes | None:
    return store.get_bytes(layout.job_key(JOB, layout.epoch_file(1, name)))


def test_first_request_draws_the_plot_and_stores_it(tmp_path, store):
    counting = CountingTools(store)
    svc = services(tmp_path, store, counting)
    first = decoded(routes.confusion_matrix(svc, JOB, "1")["base64_confusion_matrix_plot"])
    assert first[:3] == b"\xff\xd8\xff"
    assert stored(store, layout.CONFUSION_MATRIX_PLOT) == first
    assert [r["plot"] for r in counting.requests] == [plots.CONFUSION_MATRIX]
    assert counting.requests[0]["data"]["matrix"] == [[5, 1, 0], [0, 6, 1], [2, 0, 4]]


def test_a_stored_plot_is_served_without_the_tool(tmp_path, store):
    counting = CountingTools(store)
    svc = services(tmp_path, store, counting)
    first = routes.threshold(svc, JOB, "1", "2")["base64_threshold_plot"]
    assert routes.threshold(svc, JOB, "1", "2")["base64_threshold_plot"] == first
    assert len(counting.requests) == 1


def test_a_threshold_request_carries_only_that_class(tmp_path, store):
    counting = CountingTools(store)
    svc = services(tmp_path, store, counting)
    routes.threshold(svc, JOB, "1", "3")
    routes.threshold(svc, JOB, "1", "0")
    one, mean = (r["data"] for r in counting.requests)
    assert one["class_names"] == ["eel"] and one["precision"][0][-1] is None  # NaN kept as a gap
    assert mean["class_names"] == [plots.MEAN_CLASS_NAME]
    assert mean["precision"] == [numbers()["mean_precision"]]


def test_a_checkpoint_from_an_older_trainer_serves_its_own_jpeg(tmp_path, store):
    store.put_bytes(layout.job_key(JOB, layout.epoch_file(1, layout.threshold_plot(1))), JPEG)
    svc = services(tmp_path, store, FailingTools(store))
    assert decoded(routes.threshold(svc, JOB, "1", "1")["base64_threshold_plot"]) == JPEG


def test_a_checkpoint_without_numbers_has_no_plot(tmp_path, store):
    (tmp_path / "artifacts" / layout.job_key(JOB, layout.epoch_file(1, layout.PLOT_DATA_JSON))).unlink()
    svc = services(tmp_path, store, FailingTools(store))
    with pytest.raises(NotFound) as caught:
        routes.confusion_matrix(svc, JOB, "1")
    assert caught.value.message == "Checkpoint of epoch 1 has no confusion matrix plot."


def test_a_failed_drawing_carries_the_tools_status_and_stores_nothing(tmp_path, store):
    svc = services(tmp_path, store, FailingTools(store))
    with pytest.raises(ToolError) as caught:
        routes.threshold(svc, JOB, "1", "1")
    assert (caught.value.status_code, caught.value.message) == (500, "ValueError: cannot draw threshold")
    assert stored(store, layout.threshold_plot(1)) is None


def test_the_checkpoint_route_draws_its_metric_plot(tmp_path, store):
    svc = services(tmp_path, store, CountingTools(store))
    plot = v15.checkpoint(svc, JOB, "1")["checkpoint"]["base64_metric_plot"]
    assert decoded(plot)[:3] == b"\xff\xd8\xff" and stored(store, layout.METRIC_PLOT) == decoded(plot)


def test_the_checkpoint_route_still_answers_when_the_plot_cannot_be_drawn(tmp_path, store):
    svc = services(tmp_path, store, None)  # a stage without a tools function
    checkpoint = v15.checkpoint(svc, JOB, "1")["checkpoint"]
    assert checkpoint["base64_metric_plot"] is None and checkpoint["metrics"]["overall"]["accuracy"] == 0.75


def put_losses(store, losses):
    store.put_json(layout.job_key(JOB, layout.LOSSES), losses)


def test_the_loss_curve_is_redrawn_only_when_it_has_more_points(tmp_path, store):
    counting = CountingTools(store)
    svc = services(tmp_path, store, counting)
    put_losses(store, [2.0, 1.5])
    first = routes.loss(svc, JOB)["base64_loss_plot"]
    assert routes.loss(svc, JOB)["base64_loss_plot"] == first
    put_losses(store, [2.0, 1.5, 1.1])
    assert routes.loss(svc, JOB)["base64_loss_plot"] != first
    assert [r["data"]["losses"] for r in counting.requests] == [[2.0, 1.5], [2.0, 1.5, 1.1]]
    assert counting.requests[0]["data"]["display"] == 20  # the spec's num_batches_to_display default
    assert store.get_json(layout.job_key(JOB, layout.LOSS_PLOT_SOURCE)) == {"points": 3, "display": 20}


def test_no_loss_curve_before_the_first_loss_point(tmp_path, store):
    with pytest.raises(NotFound) as caught:
        routes.loss(services(tmp_path, store, FailingTools(store)), JOB)
    assert caught.value.message == "The loss curve is drawn after the first epoch; try again then."


def test_an_older_trainers_loss_plot_is_served_when_there_are_no_points(tmp_path, store):
    store.put_bytes(layout.job_key(JOB, layout.LOSS_PLOT), JPEG)
    assert (
        decoded(routes.loss(services(tmp_path, store, FailingTools(store)), JOB)["base64_loss_plot"]) == JPEG
    )


def test_the_model_graph_is_drawn_once_from_the_trainers_lines(tmp_path, store):
    counting = CountingTools(store)
    svc = services(tmp_path, store, counting)
    store.put_json(
        layout.job_key(JOB, layout.MODEL_GRAPH_JSON), plots.model_graph(["resnet18: ResNet (11 params)"])
    )
    first = decoded(routes.model_graph(svc, JOB)["base64_model_graph_plot"])
    assert (
        first[:3] == b"\xff\xd8\xff"
        and decoded(routes.model_graph(svc, JOB)["base64_model_graph_plot"]) == first
    )
    assert [r["data"] for r in counting.requests] == [{"lines": ["resnet18: ResNet (11 params)"]}]


def test_no_model_graph_before_the_model_is_built(tmp_path, store):
    with pytest.raises(NotFound) as caught:
        routes.model_graph(services(tmp_path, store, FailingTools(store)), JOB)
    assert caught.value.message == "The model graph is drawn once the model is built; try again shortly."


class RecordingTools(FailingTools):
    def __init__(self, store):
        super().__init__(store)
        self.requests: list[dict] = []

    def start(self, request, result_key):
        self.requests.append(request)
        super().start(request, result_key)


def test_the_loss_curve_is_drawn_at_the_batches_the_trainer_recorded(tmp_path, store):
    tools_seen = RecordingTools(store)
    put_losses(store, [2.0, 1.5, 1.1])
    store.put_json(layout.job_key(JOB, layout.LOSS_STEPS), [5, 10, 15])  # 3 epochs of 5 batches
    with pytest.raises(ToolError):
        routes.loss(services(tmp_path, store, tools_seen), JOB)
    assert tools_seen.requests[0]["data"]["steps"] == [5, 10, 15]
