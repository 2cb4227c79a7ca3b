"""`aifactory.Client` against a scripted loopback server: routes, envelopes, retries, logs paging."""

from __future__ import annotations

import pytest

from aifactory import AIFactoryError, BadRequest, Client, Conflict, NotFound, RouteNotFound, ServerError
from tests.cli.fake_api import FakeApi, LogBook

JOB = "20240101120000-0f8fad5b-d9cb-469f-a165-70867728950e"
V = "/api/v1.5.0"


@pytest.fixture
def fake():
    with FakeApi() as server:
        yield server


@pytest.fixture
def client(fake):
    with Client(fake.url, "k1", retries=2) as c:
        yield c


def test_sends_the_api_key(fake, client):
    fake.reply("GET", "/api/version", 200, b"v1.5.0")
    assert client.version() == "v1.5.0"
    assert fake.requests[0].headers["x-api-key"] == "k1"


def test_train_sends_form_arguments_as_the_v15_api_reads_them(fake, client):
    fake.reply("POST", f"{V}/train", 200, {"result": "OK", "job_id": JOB})
    assert client.train("detection", "/d", pretrained=False, anchor_sizes=[16, 32], batch_size=2) == JOB
    assert fake.requests[0].form() == {
        "task": "detection",
        "data_dir": "/d",
        "pretrained": "False",
        "anchor_sizes": "[16, 32]",
        "batch_size": "2",
    }


def test_v15_logs_page(fake, client):
    book = LogBook([f"line {i}" for i in range(5)])
    fake.route("GET", f"{V}/train/{JOB}/logs", book.v15_handler)
    page = client.logs(JOB, offset=1, limit=2)
    assert page == {"lines": ["line 1", "line 2"], "offset": 1, "next_offset": 3, "complete": False}
    assert fake.requests[0].query == {"offset": "1", "limit": "2"}


def test_ai_factory_logs_page_is_a_post_with_the_job_name(fake, client):
    book = LogBook(["a", "b"])
    book.ended = True
    fake.route("POST", "/logs", book.ai_factory_handler)
    assert client.logs("aif-job", 0, 10) == {
        "lines": ["a", "b"],
        "offset": 0,
        "next_offset": 2,
        "complete": True,
    }
    assert fake.requests[0].json() == {"job_name": "aif-job", "offset": 0, "limit": 10}


def test_iter_logs_reads_every_page(fake, client):
    book = LogBook([str(i) for i in range(7)])
    fake.route("GET", f"{V}/train/{JOB}/logs", book.v15_handler)
    assert list(client.iter_logs(JOB, limit=3)) == [str(i) for i in range(7)]
    assert [r.query["offset"] for r in fake.requests] == ["0", "3", "6", "7"]


def test_logs_without_the_route_is_route_not_found(client):
    with pytest.raises(RouteNotFound) as info:
        client.logs(JOB)
    assert isinstance(info.value, NotFound)
    assert str(info.value) == f"the server has no route GET {V}/train/{JOB}/logs"


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (404, {"result": "Error", "message": "Job not found."}, NotFound, "Job not found."),
        (409, {"status": "error", "message": "Job is not stopped."}, Conflict, "Job is not stopped."),
        (400, {"result": "Error", "message": "Invalid 'epoch': must be an integer"}, BadRequest, "Invalid 'epoch': must be an integer"),
        (500, {"result": "Error", "message": "Internal error"}, ServerError, "Internal error"),
        (200, {"result": "Error", "message": "Job not found."}, NotFound, "Job not found."),
        (418, b"short and stout\nsecond line", AIFactoryError, "short and stout"),
    ],
)  # fmt: skip
def test_error_envelopes_become_typed_errors(fake, client, status, body, error, message):
    fake.reply("PATCH", f"{V}/train/{JOB}", status, body)
    with pytest.raises(error) as info:
        client.stop(JOB)
    assert str(info.value) == message
    assert info.value.status == status


def test_get_is_retried_on_503(fake, client):
    answers = iter([(503, {"message": "busy"}, {}), (503, {"message": "busy"}, {})])
    fake.route("GET", f"{V}/devices", lambda r: next(answers, (200, {"result": "OK", "devices": []}, {})))
    assert client.devices() == {"result": "OK", "devices": []}
    assert len(fake.requests) == 3


def test_post_is_sent_once(fake, client):
    fake.reply("POST", "/create_training_job", 503, {"status": "error", "message": "busy"})
    with pytest.raises(ServerError):
        client.create_training_job({"task_def": "ml_topic"})
    assert len(fake.requests) == 1


def test_download_follows_a_redirect_without_the_key(fake, client, tmp_path):
    with FakeApi() as storage:
        storage.reply(
            "GET", "/bucket/model.tar.gz", 200, b"\x1f\x8bmodel", {"Content-Type": "application/gzip"}
        )
        fake.reply(
            "GET", "/models/aif-job", 302, b"", {"Location": f"{storage.url}/bucket/model.tar.gz?sig=1"}
        )
        path = client.download_model("aif-job", tmp_path)
        assert path == tmp_path / "aif-job-model.tar.gz"
        assert path.read_bytes() == b"\x1f\x8bmodel"
        assert "x-api-key" not in storage.requests[0].headers
        assert storage.requests[0].query == {"sig": "1"}
