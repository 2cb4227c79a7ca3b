"""Job records in DynamoDB with conditional writes.

The whole record travels as one JSON string (`doc`) so nested dicts and floats never
meet DynamoDB's Decimal type; the few attributes we query or sort by (`job_id`,
`job_name`, `api`, `status`, `created_at`) are copied beside it, and `version` guards
every update (optimistic concurrency: two Lambdas updating one job cannot both win).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.ports import ConflictError

NAME_INDEX = "job_name-index"
INDEXED_FIELDS = ("job_name", "api", "status", "created_at")


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
    `page_size` bounds each Scan page; the paging itself stays inside `list`.
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
    def _item(record: dict[str, Any], version: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "job_id": {"S": str(record["job_id"])},
            "version": {"N": str(version)},
            "doc": {"S": json.dumps(record, separators=(",", ":"), sort_keys=True)},
        }
        for name in INDEXED_FIELDS:
            value = record.get(name)
            if isinstance(value, str) and value:
                item[name] = {"S": value}
            elif isinstance(value, int | float) and not isinstance(value, bool):
                item[name] = {"N": repr(value)}
        return item

    @staticmethod
    def _record(item: dict[str, Any]) -> dict[str, Any]:
        return json.loads(item["doc"]["S"])

    def _read(self, job_id: str) -> tuple[dict[str, Any], int] | None:
        response = self._client.get_item(
            TableName=self.table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        return self._record(item), int(item["version"]["N"])

    # --- JobStore -------------------------------------------------------------
    def create(self, job: dict[str, Any]) -> None:
        if not job.get("job_id"):
            raise ValueError("A job record needs a 'job_id'.")
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=self._item(job, 1),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise ConflictError(f"Job '{job['job_id']}' already exists.") from error
            raise

    def get(self, job_id: str) -> dict[str, Any] | None:
        found = self._read(job_id)
        return found[0] if found else None

    def get_by_name(self, job_name: str) -> dict[str, Any] | None:
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
        return max(records, key=lambda r: str(r.get("created_at") or ""))

    def update(
        self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any]:
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
            updated = {**record, **changes}
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

    def list(self, api: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table_name}
        if api is not None:
            kwargs["FilterExpression"] = "#api = :api"
            kwargs["ExpressionAttributeNames"] = {"#api": "api"}
            kwargs["ExpressionAttributeValues"] = {":api": {"S": api}}
        if self.page_size:
            kwargs["PaginationConfig"] = {"PageSize": self.page_size}
        pages = self._client.get_paginator("scan").paginate(**kwargs)
        records = [self._record(item) for page in pages for item in page.get("Items", [])]
        return sorted(records, key=lambda r: (str(r.get("created_at") or ""), str(r["job_id"])))

    def delete(self, job_id: str) -> None:
        self._client.delete_item(TableName=self.table_name, Key={"job_id": {"S": job_id}})
