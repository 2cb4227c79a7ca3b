"""The job stores' sweep index and list pages (issue 17, section 4), on DynamoDB through moto
and on SQLite: a sweep reads the active jobs and due callbacks only, a job that settles leaves
the index, and list pages are bounded and chain through their cursor. On DynamoDB the items
each call read are counted from the responses (ScannedCount), not inferred from the results."""

from __future__ import annotations

import pytest

from chalicelib import job_index
from chalicelib.adapters.aws.job_store import LANE_INDEX, DynamoJobStore, lane_of
from chalicelib.adapters.local.job_store import SqliteJobStore
from tests.aws.conftest import TABLE

NOW = 1_900_000_000.0


def job(n: int, api: str = "v1.5", status: str = "Completed", **extra) -> dict:
    return {
        "job_id": f"20261122{n:06d}-job{n}",
        "job_name": f"aif-job-{n}",
        "api": api,
        "status": status,
        "created_at": f"2026-11-22 {n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}",
        "settled": status in ("Completed", "Failed", "Stopped"),
        "attempts": [],
        **extra,
    }


def delivered(n: int, **extra) -> dict:
    return job(n, "ai_factory", callback_outbox={"state": "delivered", "attempts": 1}, **extra)


def pending(n: int, next_attempt_at: float, lease_until: float | None = None) -> dict:
    box = {"state": "pending", "attempts": 1, "next_attempt_at": next_attempt_at, "lease_until": lease_until}
    return job(n, "ai_factory", callback_outbox=box)


class ReadMeter:
    """Items DynamoDB read for each Query/Scan call (ScannedCount), from a botocore hook."""

    def __init__(self, client):
        self.calls: list[tuple[str, int]] = []
        client.meta.events.register("after-call.dynamodb.Query", self._query)
        client.meta.events.register("after-call.dynamodb.Scan", self._scan)
        client.meta.events.register("after-call.dynamodb.GetItem", self._get)

    def _query(self, parsed, **_):
        self.calls.append(("Query", parsed.get("ScannedCount", 0)))

    def _scan(self, parsed, **_):
        self.calls.append(("Scan", parsed.get("ScannedCount", 0)))

    def _get(self, parsed, **_):
        self.calls.append(("GetItem", 1 if "Item" in parsed else 0))

    @property
    def items(self) -> int:
        return sum(n for _, n in self.calls)

    def reset(self):
        self.calls.clear()


@pytest.fixture(params=["dynamodb", "sqlite"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteJobStore(tmp_path / "jobs.sqlite3")
    return DynamoJobStore(request.getfixturevalue("dynamodb"), TABLE, page_size=4)


@pytest.fixture
def meter(dynamodb):
    return ReadMeter(dynamodb)


def ids(records) -> list[str]:
    return [r["job_id"] for r in records]


# --- both stores ------------------------------------------------------------------------------
def test_list_active_returns_the_jobs_that_have_not_ended(store):
    for n in range(20):
        store.create(job(n) if n % 2 else delivered(n))
    running = [
        job(100, status="InProgress"),
        job(101, "ai_factory", status="Stopping"),
        job(102, status="Pending"),
    ]
    for record in running:
        store.create(record)
    assert ids(store.list_active()) == ids(running)


def test_a_job_that_ends_leaves_the_active_set(store):
    store.create(job(1, status="InProgress", settled=False))
    store.update(job(1)["job_id"], {"status": "Completed", "settled": True})
    assert store.list_active() == []
    assert store.list_due_callbacks(NOW) == []  # a v1.5 job has no callback


def test_a_restored_job_enters_the_active_set_again(store):
    store.create(job(1, status="Stopped"))
    store.update(job(1)["job_id"], {"status": "InProgress", "settled": False}, expect={"status": "Stopped"})
    assert ids(store.list_active()) == [job(1)["job_id"]]


def test_an_ended_ai_factory_job_not_yet_enqueued_is_a_due_callback(store):
    store.create(job(1, "ai_factory", status="InProgress"))
    assert store.list_due_callbacks(NOW) == []
    store.update(job(1)["job_id"], {"status": "Failed", "settled": True})
    assert ids(store.list_due_callbacks(NOW)) == [job(1)["job_id"]]
    assert store.list_active() == []


def test_a_pending_callback_is_due_from_its_next_attempt_on(store):
    store.create(pending(1, next_attempt_at=NOW + 60))
    assert store.list_due_callbacks(NOW) == []
    assert ids(store.list_due_callbacks(NOW + 60)) == [pending(1, 0)["job_id"]]


def test_a_leased_callback_is_not_due_until_its_lease_expires(store):
    store.create(pending(1, next_attempt_at=NOW - 5, lease_until=NOW + 30))
    assert store.list_due_callbacks(NOW) == []
    assert len(store.list_due_callbacks(NOW + 30)) == 1


def test_a_delivered_or_failed_callback_leaves_the_index(store):
    for n, state in ((1, "delivered"), (2, "failed")):
        store.create(pending(n, next_attempt_at=NOW - 1))
        box = {**pending(n, 0)["callback_outbox"], "state": state}
        store.update(pending(n, 0)["job_id"], {"callback_outbox": box})
    assert store.list_due_callbacks(NOW) == []


def test_a_callback_sent_by_the_old_at_most_once_sender_is_not_due(store):
    store.create(job(1, "ai_factory", callback_claimed=True))
    assert store.list_due_callbacks(NOW) == []


def test_pages_are_bounded_and_chain_newest_first(store):
    created = []
    for n in range(23):  # every lane an api's jobs can be in, and another api between them
        if n % 5 == 0:
            record = job(n, "ai_factory", status="InProgress")
        elif n % 5 == 1:
            record = pending(n, next_attempt_at=NOW)
        elif n % 5 == 2:
            record = job(n, "v1.5")
        else:
            record = delivered(n)
        store.create(record)
        created.append(record)
    wanted = [
        r["job_id"]
        for r in sorted(created, key=job_index.newest_first_key, reverse=True)
        if r["api"] == "ai_factory"
    ]
    pages, after = [], None
    while True:
        records, more = store.page("ai_factory", 4, after)
        assert len(records) <= 4
        pages.append(ids(records))
        if not more:
            break
        after = job_index.newest_first_key(records[-1])
    assert [len(p) for p in pages] == [4, 4, 4, 4, 2]
    assert [i for p in pages for i in p] == wanted


def test_a_page_orders_jobs_of_one_second_by_job_id(store):
    for suffix in ("b", "a", "c"):
        store.create({**job(1), "job_id": f"20261122000001-{suffix}", "job_name": f"aif-{suffix}"})
    first, more = store.page("v1.5", 2)
    assert ids(first) == ["20261122000001-c", "20261122000001-b"] and more
    rest, more = store.page("v1.5", 2, job_index.newest_first_key(first[-1]))
    assert ids(rest) == ["20261122000001-a"] and not more


def test_an_empty_api_has_an_empty_last_page(store):
    store.create(job(1))
    assert store.page("ai_factory", 10) == ([], False)


# --- DynamoDB: what each call read ------------------------------------------------------------
@pytest.fixture
def big_table(dynamodb):
    """200 settled jobs of both APIs, 5 active ones and 3 pending callbacks (one not due yet)."""
    store = DynamoJobStore(dynamodb, TABLE)
    for n in range(200):
        store.create(delivered(n) if n % 2 else job(n))
    for n in range(200, 205):
        store.create(job(n, "ai_factory" if n % 2 else "v1.5", status="InProgress"))
    for n in range(205, 207):
        store.create(pending(n, next_attempt_at=NOW - 10))
    store.create(pending(207, next_attempt_at=NOW + 3600))
    return store


def test_the_active_sweep_reads_only_active_items(big_table, meter):
    assert len(big_table.list_active()) == 5
    assert meter.calls == [("Query", 5)]  # one Query of the active lane; no Scan


def test_the_callback_sweep_reads_only_callbacks_not_yet_settled(big_table, meter):
    assert len(big_table.list_due_callbacks(NOW)) == 2
    assert meter.calls == [("Query", 3)]  # the two due ones and the one waiting for its backoff


def test_a_sweep_pages_through_a_larger_active_set(dynamodb, meter):
    store = DynamoJobStore(dynamodb, TABLE, page_size=3)
    for n in range(8):
        store.create(job(n, status="InProgress"))
    meter.reset()
    assert len(store.list_active()) == 8
    assert [name for name, _ in meter.calls] == ["Query"] * 3 and meter.items == 8


def test_a_list_page_reads_its_page_not_the_table(big_table, meter):
    records, more = big_table.page("v1.5", 10)
    assert len(records) == 10 and more
    assert {name for name, _ in meter.calls} == {"Query"}
    assert len(meter.calls) == 3  # the api's three lanes, one Query each
    assert meter.items <= 3 * (10 + 2)
    meter.reset()
    big_table.page("v1.5", 10, job_index.newest_first_key(records[-1]))
    assert len(meter.calls) == 3 and meter.items <= 3 * (10 + 2)


def test_every_item_carries_the_lane_its_record_belongs_in(big_table, dynamodb):
    items = dynamodb.scan(TableName=TABLE)["Items"]
    lanes = {}
    for item in items:
        record = big_table._record(item)
        assert item["lane"]["S"] == lane_of(record)
        assert item["lane_sk"]["S"] == f"{record['api']}#{record['created_at']}#{record['job_id']}"
        lanes[item["lane"]["S"]] = lanes.get(item["lane"]["S"], 0) + 1
    assert lanes == {
        "active": 5,
        "callback": 3,
        "history#v1.5#default": 100,
        "history#ai_factory#default": 100,
    }


def test_a_settled_job_is_gone_from_the_active_partition(dynamodb):
    store = DynamoJobStore(dynamodb, TABLE)
    store.create(job(1, status="InProgress"))
    store.update(job(1)["job_id"], {"status": "Stopped", "settled": True})
    response = dynamodb.query(
        TableName=TABLE,
        IndexName=LANE_INDEX,
        KeyConditionExpression="lane = :lane",
        ExpressionAttributeValues={":lane": {"S": "active"}},
    )
    assert response["Count"] == 0


# --- DynamoDB: records written before the index -----------------------------------------------
def put_unindexed(dynamodb, store, record, version=1):
    """An item as the store wrote it before `lane`/`lane_sk` existed."""
    item = store._item(record, version)
    del item["lane"], item["lane_sk"]
    dynamodb.put_item(TableName=TABLE, Item=item)


def test_backfill_indexes_records_written_before_the_index(dynamodb):
    store = DynamoJobStore(dynamodb, TABLE, page_size=5)
    put_unindexed(dynamodb, store, job(1, status="InProgress"))
    for n in range(2, 12):
        put_unindexed(dynamodb, store, job(n))
    store.create(job(12))  # written by this version: already indexed
    assert store.list_active() == [] and len(store.page("v1.5", 50)[0]) == 1  # invisible until backfilled
    assert store.backfill_index() == {"scanned": 12, "written": 11, "changed_meanwhile": 0}
    assert ids(store.list_active()) == [job(1)["job_id"]]
    assert len(store.page("v1.5", 50)[0]) == 12
    assert store.backfill_index()["written"] == 0  # a second run has nothing to do
    assert store.get(job(1)["job_id"]) == job(1, status="InProgress")  # the record itself is unchanged


def test_backfill_leaves_a_job_updated_meanwhile_to_its_own_write(dynamodb):
    store = DynamoJobStore(dynamodb, TABLE)
    put_unindexed(dynamodb, store, job(1, status="InProgress"))
    fired = []

    def race(**_):
        if not fired:
            fired.append(1)
            store.update(job(1)["job_id"], {"status": "Completed", "settled": True})

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", race)
    counts = store.backfill_index()
    assert fired and counts["changed_meanwhile"] == 1 and counts["written"] == 0
    assert store.list_active() == []  # the update's own lane (history) stands
    assert ids(store.page("v1.5", 5)[0]) == [job(1)["job_id"]]


def test_the_backfill_command_names_what_it_did(dynamodb, capsys):
    from chalicelib.adapters.aws import job_store

    put_unindexed(dynamodb, DynamoJobStore(dynamodb, TABLE), job(1))
    assert job_store.main(["backfill", "--table", TABLE, "--region", "us-east-1"]) == 0
    assert "1 items read, 1 given their lane" in capsys.readouterr().out


def test_a_tenants_page_reads_its_own_history_not_the_others(dynamodb):
    """Tenants (chalicelib.tenancy): a small tenant's page reads O(page) items however much
    history a big one has."""
    from chalicelib.adapters.aws.job_store import DynamoJobStore
    from tests.aws.conftest import TABLE

    store = DynamoJobStore(dynamodb, TABLE)
    for i in range(60):
        store.create(
            {"job_id": f"big-{i:03}", "job_name": f"big-{i:03}", "api": "v1.5", "status": "Completed",
             "created_at": f"2026-01-01 00:{i // 60:02}:{i % 60:02}", "tenant": "t-big"}
        )  # fmt: skip
    for i in range(3):
        store.create(
            {"job_id": f"small-{i}", "job_name": f"small-{i}", "api": "v1.5", "status": "Completed",
             "created_at": f"2025-01-01 00:00:0{i}", "tenant": "t-small"}
        )  # fmt: skip
    read = []
    dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: read.append(len(parsed.get("Items", [])))
    )
    records, more = store.page("v1.5", 10, tenants=("t-small",))
    assert [r["job_id"] for r in records] == ["small-2", "small-1", "small-0"] and not more
    assert sum(read) <= 3
    both, more = store.page("v1.5", 5, tenants=("t-small", "t-big"))
    assert [r["job_id"] for r in both] == [f"big-{i:03}" for i in range(59, 54, -1)] and more


def test_every_index_request_validates_against_the_service_model(dynamodb):
    from tests.aws.service_model import record_requests

    sent = record_requests(dynamodb)
    store = DynamoJobStore(dynamodb, TABLE, page_size=1)
    for n in range(3):
        store.create(job(n, status="InProgress" if n else "Completed"))
    store.list_active()
    store.list_due_callbacks(NOW)
    first, _ = store.page("v1.5", 1)
    store.page("v1.5", 1, job_index.newest_first_key(first[-1]))
    put_unindexed(dynamodb, store, job(9))
    store.backfill_index()
    assert {name for name, _ in sent} == {"PutItem", "Query", "Scan"}
