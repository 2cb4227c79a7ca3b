"""The scheduled sweeps and the list routes on DynamoDB (moto) read the lane index, not the
table (issue 17, section 4): `launch_queued` and `deliver_pending` read the active jobs and the
callbacks not yet settled, whatever the history; every write path that changes a job's status
leaves its item in the right lane; `check_trained_job` and `GET /api/v1.5.0/train` read one
bounded page at a time, never one record per job. Items read are counted from the responses."""

from __future__ import annotations

import pytest

from callbacks.delivery import DeliveryResult
from chalicelib import job_index
from chalicelib.adapters.aws.artifact_store import S3ArtifactStore
from chalicelib.adapters.aws.job_store import DynamoJobStore, lane_of, lane_sort_key
from chalicelib.ai_factory import service as ai_factory
from chalicelib.errors import NotFound, ValidationError
from chalicelib.ports import (
    COMPLETED,
    IN_PROGRESS,
    Adapters,
    CapacityError,
    TrainingDescription,
    TrainingRequest,
)
from chalicelib.services import events, jobs, outbox
from chalicelib.v15 import service as v15
from contracts.job_config import JobConfig
from tests.aws.conftest import BUCKET, TABLE
from tests.aws.test_sweep_index import ReadMeter, delivered, job


class Platform:
    """SageMaker as the sweeps see it: start (or no capacity), describe, stop."""

    def __init__(self):
        self.status: dict[str, str] = {}
        self.capacity = True

    def start(self, request: TrainingRequest) -> None:
        if not self.capacity:
            raise CapacityError("ResourceLimitExceeded: no ml.g5.xlarge capacity")
        self.status[request.training_job_name] = IN_PROGRESS

    def describe(self, name: str) -> TrainingDescription:
        if name not in self.status:
            raise NotFound(name)
        return TrainingDescription(self.status[name])

    def stop(self, name: str) -> None:
        self.status[name] = "Stopped"


@pytest.fixture
def svc(dynamodb, s3):
    return Adapters(DynamoJobStore(dynamodb, TABLE), S3ArtifactStore(s3, BUCKET, "dev"), Platform(), None)


@pytest.fixture
def meter(dynamodb):
    return ReadMeter(dynamodb)


@pytest.fixture
def history(svc):
    """200 settled jobs of both APIs: what every sweep used to read each minute."""
    for n in range(200):
        svc.jobs.create(delivered(n) if n % 2 else job(n))


@pytest.fixture
def sent(monkeypatch):
    """Callbacks are 'delivered' without a network; the URLs they went to."""
    urls = []

    def deliver_once(url, *args, **kwargs):
        urls.append(url)
        return DeliveryResult(True, 1, 200)

    monkeypatch.setattr(outbox.delivery, "deliver_once", deliver_once)
    return urls


def submit(svc: Adapters, api: str = "v1.5", n: int = 0) -> dict:
    job_id, job_name = jobs.new_ids("aif", svc.settings.stage)
    job_id, job_name = f"{job_id}-{n}", f"{job_name}-{n}"
    record = jobs.base_record(
        job_id,
        job_name,
        api,
        "classification",
        resource={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        artifact_uri=f"s3://{BUCKET}/dev/jobs/{job_id}",
        callback={"url": "http://127.0.0.1:9/callback"},
    )
    request = jobs.training_request(svc.settings, record, "trainer:latest", None)
    config = JobConfig(job_id=job_id, task="classification", artifact_uri=record["artifact_uri"])
    return jobs.launch(svc, record, config, None, request)


def v15_job(n: int) -> dict:
    record = job(n, task="classification", hyperparameters={"num_epochs_to_finish": 3})
    return {**record, "attempts": [{"attempt": 1, "training_job_name": record["job_name"]}]}


def reads(meter: ReadMeter, operation: str) -> int:
    return sum(n for name, n in meter.calls if name == operation)


def assert_every_item_in_its_lane(dynamodb, store: DynamoJobStore) -> None:
    items = dynamodb.scan(TableName=TABLE)["Items"]
    for item in items:
        record = store._record(item)
        assert (item["lane"]["S"], item["lane_sk"]["S"]) == (lane_of(record), lane_sort_key(record)), record
    records = [store._record(item) for item in items]
    active = {r["job_id"] for r in records if job_index.is_active(r)}
    callbacks = {r["job_id"] for r in records if job_index.callback_due_at(r) is not None}
    assert {r["job_id"] for r in store.list_active()} == active
    assert {r["job_id"] for r in store.list_due_callbacks(float("inf"))} == callbacks


# --- the sweeps -------------------------------------------------------------------------------
def test_launching_queued_jobs_reads_only_the_active_jobs(svc, history, meter):
    svc.platform.capacity = False
    queued = [submit(svc, n=n) for n in range(2)]
    svc.platform.capacity = True
    submit(svc, n=2)  # running: active, not queued
    meter.reset()
    assert events.launch_queued(svc) == 2
    assert reads(meter, "Scan") == 0
    assert reads(meter, "Query") == 3  # the three active jobs, out of 203
    assert all(svc.jobs.get(j["job_id"])["queued_request"] is None for j in queued)


def test_delivering_callbacks_reads_only_active_jobs_and_unsettled_callbacks(svc, history, meter, sent):
    missed = submit(svc, "ai_factory", n=1)  # ended on the platform; its event never came
    svc.platform.status[missed["job_name"]] = COMPLETED
    never_enqueued = submit(svc, "ai_factory", n=2)
    svc.jobs.update(never_enqueued["job_id"], {"status": "Failed", "settled": True})
    meter.reset()
    assert events.deliver_pending(svc) == 2
    assert reads(meter, "Scan") == 0
    assert reads(meter, "Query") == 2  # the one still marked running, the one never enqueued
    assert len(sent) == 2
    meter.reset()
    assert events.deliver_pending(svc) == 0  # both delivered: nothing left in the sweep lanes
    assert reads(meter, "Query") == 0 and reads(meter, "Scan") == 0


def test_every_status_write_path_keeps_the_item_in_its_lane(svc, dynamodb, sent):
    store = svc.jobs
    svc.platform.capacity = False
    queued = submit(svc, "ai_factory", n=1)  # launch, then the capacity queue
    assert_every_item_in_its_lane(dynamodb, store)
    jobs.stop(svc, queued)  # a queued job stopped before it started: Stopped, settled
    assert_every_item_in_its_lane(dynamodb, store)
    svc.platform.capacity = True
    running = submit(svc, "v1.5", n=2)
    jobs.stop(svc, running)  # the platform stops it; the refresh settles it
    assert store.get(running["job_id"])["status"] == "Stopped"
    assert_every_item_in_its_lane(dynamodb, store)
    jobs.restore(svc, store.get(running["job_id"]), "trainer:latest", None)  # active again
    assert_every_item_in_its_lane(dynamodb, store)
    svc.platform.capacity = False
    waiting = submit(svc, "ai_factory", n=3)
    svc.platform.capacity = True
    events.launch_queued(svc)  # from the queue to the platform
    assert_every_item_in_its_lane(dynamodb, store)
    svc.platform.status[waiting["job_name"]] = COMPLETED
    events.on_training_state_change(svc, waiting["job_name"], COMPLETED)  # settle, enqueue, send
    assert store.get(waiting["job_id"])["callback_outbox"]["state"] == "delivered"
    assert_every_item_in_its_lane(dynamodb, store)
    ended = submit(svc, "ai_factory", n=4)
    svc.platform.status[ended["job_name"]] = "Failed"
    job_now = jobs.refresh(svc, store.get(ended["job_id"]))  # a read settles it: callback lane
    assert_every_item_in_its_lane(dynamodb, store)
    claimed = outbox.claim(svc, outbox.enqueue(svc, job_now))  # enqueued, then leased
    assert_every_item_in_its_lane(dynamodb, store)
    outbox.record(svc, claimed[0], claimed[1], DeliveryResult(False, 1, 503, retryable=True))  # backoff
    assert_every_item_in_its_lane(dynamodb, store)
    due_later = {j["job_id"] for j in store.list_due_callbacks(float("inf"))}
    due_now = {j["job_id"] for j in store.list_due_callbacks(0)}  # the stopped queued one: never enqueued
    assert ended["job_id"] in due_later - due_now and queued["job_id"] in due_now


# --- the list routes --------------------------------------------------------------------------
def page_through(call, limit):
    pages, token = [], None
    while True:
        body = call({"limit": str(limit), **({"next_token": token} if token else {})})
        pages.append(body["jobs"])
        token = body["next_token"]
        if token is None:
            return pages


def test_check_trained_job_pages_read_one_bounded_page_each(svc, dynamodb, meter):
    for n in range(30):
        svc.jobs.create(delivered(n) if n % 3 else job(n, "ai_factory", status="InProgress"))
        svc.jobs.create(job(100 + n))  # another API's jobs in between
    per_page = []
    meter.calls.clear()

    def call(params):
        meter.reset()
        body = ai_factory.list_training_jobs(svc, params)
        per_page.append(list(meter.calls))
        return body

    pages = page_through(call, 7)
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    names = [item["TrainingJobName"] for p in pages for item in p]
    assert names == [f"aif-job-{n}" for n in reversed(range(30))]
    for calls in per_page:
        assert {name for name, _ in calls} == {"Query"}  # no Scan, no GetItem per job
        assert len(calls) <= 3 and sum(n for _, n in calls) <= 3 * (7 + 2)


def test_check_trained_job_without_paging_is_the_full_list_built_from_pages(svc, meter, monkeypatch):
    monkeypatch.setattr(ai_factory, "PAGE_LIMIT_MAX", 8)
    for n in range(30):
        svc.jobs.create(delivered(n))
    meter.reset()
    listed = ai_factory.list_training_jobs(svc)
    assert [item["TrainingJobName"] for item in listed] == [f"aif-job-{n}" for n in reversed(range(30))]
    assert {name for name, _ in meter.calls} == {"Query"}
    assert max(n for _, n in meter.calls) <= 8 + 2  # each Query read one bounded page


def test_v15_list_pages_chain_without_reading_each_record(svc, meter):
    for n in range(12):
        svc.jobs.create(v15_job(n))
    meter.reset()
    pages = page_through(lambda params: v15.list_jobs(svc, params), 5)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [row["job_id"] for p in pages for row in p] == [job(n)["job_id"] for n in reversed(range(12))]
    assert pages[0][0] == {
        "job_id": job(11)["job_id"],
        "task": "classification",
        "status": "finished",
        "epoch": 0,
        "total_epoch": 3,
        "created_at": job(11)["created_at"],
    }
    assert {name for name, _ in meter.calls} == {"Query"}  # no GetItem per job, no Scan


def test_v15_list_answers_a_first_page_by_default(svc, monkeypatch):
    monkeypatch.setattr(v15, "LIST_LIMIT", 3)
    for n in range(5):
        svc.jobs.create(v15_job(n))
    body = v15.list_jobs(svc)
    assert len(body["jobs"]) == 3 and body["next_token"]


@pytest.mark.parametrize(
    "query, field",
    [({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"next_token": "nope"}, "next_token")],
)
def test_v15_list_refuses_bad_paging_by_name(svc, query, field):
    with pytest.raises(ValidationError) as caught:
        v15.list_jobs(svc, query)
    assert caught.value.field == field
