"""Job records in DynamoDB with conditional writes.

The whole record travels as one JSON string (`doc`) so nested dicts and floats never
meet DynamoDB's Decimal type; the few attributes we query or sort by (`job_id`,
`job_name`, `api`, `status`, `created_at`) are copied beside it, and `version` guards
every update (optimistic concurrency: two Lambdas updating one job cannot both win).

Sweeps and list pages read one more GSI, `lane-index` (DESIGN.md, "Stores at scale"): every
item carries `lane`, its partition there, and `lane_sk` = `<api>#<created_at>#<job_id>`,
both recomputed from the record by every write (`_item`). The lane is the record's sweep lane
(`chalicelib.job_index`: `active` while the job runs, `callback` while an ended AI Factory
job's callback needs a sender) or `history#<api>` once settled. So a sweep queries the
`active` or `callback` partition and reads O(active) items, never the table; a list page
queries the three partitions that can hold an api's jobs newest first with a key condition
from the page's cursor and reads O(page) items. One index, not two (one sparse, one by
api): CloudFormation adds at most one GSI per stack update, and a second would make the
update of an existing stack fail and roll back.

Tenants (`chalicelib.tenancy`): a settled job's lane is its tenant's history,
`history#<api>#<tenant>`, and every item carries `tenant`, so a tenant's list page reads its
own history partition and filters the two small unsettled lanes: O(page) for every tenant.

Items written before the index (or before tenants) have no `lane` or an older one:
`backfill_index` (or `python -m chalicelib.adapters.aws.job_store backfill --table <name>`)
writes it once after the stack update; any later update of a record writes it too.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import job_index, tenancy
from chalicelib.job_record import Job
from chalicelib.ports import ConflictError
from chalicelib.tenancy import DEFAULT

NAME_INDEX = "job_name-index"
LANE_INDEX = "lane-index"
HISTORY = "history#"  # + api + "#" + tenant: the lane of a tenant's settled jobs
INDEXED_FIELDS = ("job_name", "api", "status", "created_at")
INDEX_ATTRIBUTES = ("lane", "lane_sk", "tenant")  # what backfill_index writes on older items
QUERY_PAGE = 100  # items per Query page of a sweep when the store has no page_size


def history_lane(api: str, tenant: str) -> str:
    """A tenant's settled jobs of one api: its own partition, so its list page reads O(page)
    items however much history other tenants have."""
    return f"{HISTORY}{api}#{tenant}"


def lane_of(record: dict[str, Any]) -> str:
    return job_index.sweep_lane(record) or history_lane(str(record.get("api") or ""), tenancy.owner(record))


def lane_sort_key(record: dict[str, Any]) -> str:
    """`<api>#<created_at>#<job_id>`: ordered as (created_at, job_id) within an api, as long
    as created_at keeps one width ("YYYY-mm-dd HH:MM:SS", `contracts.timeutil.now_str`)."""
    created_at, job_id = job_index.newest_first_key(record)
    return f"{record.get('api') or ''}#{created_at}#{job_id}"


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments of the table this store needs, as infra/cloudformation.yaml
    declares it (tests create their moto table from this; tests/aws/test_infra.py compares)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [
            {"AttributeName": "job_id", "AttributeType": "S"},
            {"AttributeName": "job_name", "AttributeType": "S"},
            {"AttributeName": "lane", "AttributeType": "S"},
            {"AttributeName": "lane_sk", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": NAME_INDEX,
                "KeySchema": [{"AttributeName": "job_name", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": LANE_INDEX,
                "KeySchema": [
                    {"AttributeName": "lane", "KeyType": "HASH"},
                    {"AttributeName": "lane_sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _unmet_expectations(record: dict[str, Any], expect: dict[str, Any] | None) -> list[str]:
    """`expect` maps a field to its required value, or to a list/tuple/set of allowed values
    (as the SQLite store does)."""
    unmet = []
    for field, wanted in (expect or {}).items():
        allowed = wanted if isinstance(wanted, list | tuple | set) else (wanted,)
        if record.get(field) not in allowed:
            unmet.append(f"{field}={record.get(field)!r} (expected {wanted!r})")
    return unmet


class DynamoJobStore:
    """ports.JobStore on one DynamoDB table keyed by `job_id` with a `job_name-index` GSI.

    Takes a low-level DynamoDB client (`boto3.client("dynamodb")`), not a Table resource:
    a resource's client rewrites typed attribute values, which this store writes itself.
    `page_size` bounds each Scan and sweep Query page; the paging itself stays inside the
    store's methods.
    """

    def __init__(self, client, table_name: str, *, page_size: int | None = None, max_attempts: int = 5):
        if hasattr(client, "table_name"):
            raise TypeError("DynamoJobStore takes boto3.client('dynamodb'), not a Table resource.")
        if not table_name:
            raise ValueError("DynamoJobStore needs a table name (AIFACTORY_TABLE).")
        self._client = client
        self.table_name = table_name
        self.page_size = page_size
        self.max_attempts = max_attempts

    # --- item <-> record ------------------------------------------------------
    @staticmethod
    def _item(record: Mapping[str, Any], version: int) -> dict[str, Any]:
        record = Job.from_item(record)
        item: dict[str, Any] = {
            "job_id": {"S": str(record.job_id)},
            "version": {"N": str(version)},
            "doc": {"S": json.dumps(record.to_item(), separators=(",", ":"), sort_keys=True)},
        }
        for name in INDEXED_FIELDS:
            value = record.get(name)
            if isinstance(value, str) and value:
                item[name] = {"S": value}
            elif isinstance(value, int | float) and not isinstance(value, bool):
                item[name] = {"N": repr(value)}
        item["lane"] = {"S": lane_of(record)}
        item["lane_sk"] = {"S": lane_sort_key(record)}
        item["tenant"] = {"S": tenancy.owner(record)}  # filters the (small) active and callback lanes
        return item

    @staticmethod
    def _record(item: dict[str, Any]) -> Job:
        """The item's record (`Job.from_item` migrates items of older record versions)."""
        return Job.from_item(json.loads(item["doc"]["S"]))

    def _read(self, job_id: str) -> tuple[Job, int] | None:
        response = self._client.get_item(
            TableName=self.table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        return self._record(item), int(item["version"]["N"])

    # --- JobStore -------------------------------------------------------------
    def create(self, job: Mapping[str, Any]) -> None:
        job = Job.from_item(job)  # a record without a job_id is a ValueError
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=self._item(job, 1),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise ConflictError(f"Job '{job.job_id}' already exists.") from error
            raise

    def get(self, job_id: str) -> Job | None:
        found = self._read(job_id)
        return found[0] if found else None

    def get_by_name(self, job_name: str) -> Job | None:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            IndexName=NAME_INDEX,
            KeyConditionExpression="job_name = :name",
            ExpressionAttributeValues={":name": {"S": job_name}},
        )
        records = [self._record(item) for page in pages for item in page.get("Items", [])]
        if not records:
            return None
        # Names are unique by construction; if a race ever duplicated one, the newest wins.
        return max(records, key=lambda r: r.created_at)

    def update(self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None) -> Job:
        if "job_id" in changes and changes["job_id"] != job_id:
            raise ValueError("A job's 'job_id' cannot change.")
        for _ in range(self.max_attempts):
            found = self._read(job_id)
            if found is None:
                raise ConflictError(f"Job '{job_id}' does not exist.")
            record, version = found
            unmet = _unmet_expectations(record, expect)
            if unmet:
                raise ConflictError(f"Job '{job_id}' is not in the expected state: {', '.join(unmet)}.")
            updated = record.with_changes(changes)
            try:
                self._client.put_item(
                    TableName=self.table_name,
                    Item=self._item(updated, version + 1),
                    ConditionExpression="version = :version",
                    ExpressionAttributeValues={":version": {"N": str(version)}},
                )
            except ClientError as error:
                if _is_conditional_failure(error):
                    continue  # someone else wrote first: re-read and re-check `expect`
                raise
            return updated
        raise ConflictError(
            f"Job '{job_id}' kept changing under {self.max_attempts} update attempts; try again."
        )

    def list(self, api: str | None = None) -> list[Job]:
        kwargs: dict[str, Any] = {"TableName": self.table_name}
        if api is not None:
            kwargs["FilterExpression"] = "#api = :api"
            kwargs["ExpressionAttributeNames"] = {"#api": "api"}
            kwargs["ExpressionAttributeValues"] = {":api": {"S": api}}
        if self.page_size:
            kwargs["PaginationConfig"] = {"PageSize": self.page_size}
        pages = self._client.get_paginator("scan").paginate(**kwargs)
        records = [self._record(item) for page in pages for item in page.get("Items", [])]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    # --- sweeps and pages: the lane index ----------------------------------------
    def _query_lane(
        self,
        lane: str,
        condition: str = "",
        values: dict[str, Any] | None = None,
        newest_first: bool = False,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The lane's items in `lane_sk` order, one Query page at a time (bounded memory)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": LANE_INDEX,
            "KeyConditionExpression": "lane = :lane" + (f" AND {condition}" if condition else ""),
            "ExpressionAttributeValues": {":lane": {"S": lane}, **(values or {})},
            "ScanIndexForward": not newest_first,
            "Limit": page_size or self.page_size or QUERY_PAGE,
        }
        while True:
            response = self._client.query(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _sweep(self, lane: str) -> list[Job]:
        records = [self._record(item) for item in self._query_lane(lane)]
        return sorted(records, key=job_index.newest_first_key)

    def list_active(self) -> list[Job]:
        return self._sweep(job_index.ACTIVE)

    def list_due_callbacks(self, now: float) -> list[Job]:
        return [job for job in self._sweep(job_index.CALLBACK) if job_index.callback_is_due(job, now)]

    def page(
        self, api: str, limit: int, after: tuple[str, str] | None = None, tenants: Sequence[str] = (DEFAULT,)
    ) -> tuple[list[Job], bool]:
        """An api's jobs of `tenants` live in the active and callback lanes (filtered by tenant:
        they hold only unsettled work) and in each tenant's history lane: each is queried newest
        first for `limit` + 1 items from the cursor on, and all merged."""
        if limit < 1:
            raise ValueError("A page holds at least one job.")
        prefix = f"{api}#"
        if after is None:
            start = None
            condition, values = "begins_with(lane_sk, :lo)", {":lo": {"S": prefix}}
        else:
            start = f"{api}#{after[0]}#{after[1]}"  # BETWEEN is inclusive: the cursor's own job is skipped
            condition, values = "lane_sk BETWEEN :lo AND :hi", {":lo": {"S": prefix}, ":hi": {"S": start}}
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        wanted = set(tenants)
        for lane in (*job_index.SWEEP_LANES, *(history_lane(api, t) for t in sorted(wanted))):
            taken = 0
            # One Query per lane as a rule; more only past DynamoDB's 1 MB page.
            for item in self._query_lane(lane, condition, values, newest_first=True, page_size=limit + 2):
                if item.get("tenant", {}).get("S", DEFAULT) not in wanted:
                    continue
                sort_key = item["lane_sk"]["S"]
                if sort_key == start:
                    continue
                found.setdefault(item["job_id"]["S"], (sort_key, item))  # one that moved lanes meanwhile
                taken += 1
                if taken > limit:
                    break
        ordered = sorted(found.values(), key=lambda pair: pair[0], reverse=True)
        return [self._record(item) for _, item in ordered[:limit]], len(ordered) > limit

    def backfill_index(self) -> dict[str, int]:
        """Writes `lane`/`lane_sk` on every item that lacks them or holds stale ones (items
        written before the index existed), a Scan page at a time. Each write is conditional on
        the item's version and keeps it: a job updated meanwhile already has its own (correct)
        attributes and is left alone. Safe to run again; returns what it did."""
        counts = {"scanned": 0, "written": 0, "changed_meanwhile": 0}
        kwargs: dict[str, Any] = {"TableName": self.table_name}
        if self.page_size:
            kwargs["PaginationConfig"] = {"PageSize": self.page_size}
        for page in self._client.get_paginator("scan").paginate(**kwargs):
            for item in page.get("Items", []):
                counts["scanned"] += 1
                record, version = self._record(item), int(item["version"]["N"])
                wanted = self._item(record, version)
                if all(item.get(name) == wanted[name] for name in INDEX_ATTRIBUTES):
                    continue
                try:
                    self._client.put_item(
                        TableName=self.table_name,
                        Item={**item, **{name: wanted[name] for name in INDEX_ATTRIBUTES}},
                        ConditionExpression="version = :version",
                        ExpressionAttributeValues={":version": {"N": str(version)}},
                    )
                    counts["written"] += 1
                except ClientError as error:
                    if not _is_conditional_failure(error):
                        raise
                    counts["changed_meanwhile"] += 1
        return counts

    def delete(self, job_id: str) -> None:
        self._client.delete_item(TableName=self.table_name, Key={"job_id": {"S": job_id}})


def main(argv: list[str] | None = None) -> int:
    """`python -m chalicelib.adapters.aws.job_store backfill --table aifactory-jobs-dev`"""
    parser = argparse.ArgumentParser(prog="python -m chalicelib.adapters.aws.job_store")
    parser.add_argument("command", choices=["backfill"])
    parser.add_argument("--table", required=True, help="the stage's job table (stack output JobsTableName)")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    import boto3

    store = DynamoJobStore(boto3.client("dynamodb", region_name=args.region), args.table)
    counts = store.backfill_index()
    print(
        f"{args.table}: {counts['scanned']} items read, {counts['written']} given their lane, "
        f"{counts['changed_meanwhile']} updated meanwhile (already indexed)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
