"""JobStore on a SQLite file: the local stage's DynamoDB.

Each call opens its own connection (the API serves requests on threads, and the runner
processes write too); `BEGIN IMMEDIATE` makes read-check-write updates atomic across
processes, which is what DynamoDB's conditional writes give the aws stage.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib.ports import ConflictError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    job_name TEXT UNIQUE NOT NULL,
    api TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_api ON jobs(api, created_at);
"""


class SqliteJobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def create(self, job: dict[str, Any]) -> None:
        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO jobs (job_id, job_name, api, status, created_at, doc) VALUES (?,?,?,?,?,?)",
                    (
                        job["job_id"],
                        job["job_name"],
                        job["api"],
                        job["status"],
                        job["created_at"],
                        json.dumps(job),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"Job {job['job_id']} already exists") from exc

    def _get(self, conn, column: str, value: str) -> dict[str, Any] | None:
        row = conn.execute(f"SELECT doc FROM jobs WHERE {column} = ?", (value,)).fetchone()
        return json.loads(row[0]) if row else None

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            return self._get(conn, "job_id", job_id)

    def get_by_name(self, job_name: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            return self._get(conn, "job_name", job_name)

    def update(
        self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                job = self._get(conn, "job_id", job_id)
                if job is None:
                    raise ConflictError(f"Job {job_id} does not exist")
                for key, value in (expect or {}).items():
                    allowed = value if isinstance(value, (list, tuple, set)) else (value,)
                    if job.get(key) not in allowed:
                        raise ConflictError(f"Job {job_id} has {key}={job.get(key)!r}")
                job.update(changes)
                conn.execute(
                    "UPDATE jobs SET status = ?, doc = ? WHERE job_id = ?",
                    (job["status"], json.dumps(job), job_id),
                )
                conn.execute("COMMIT")
                return job
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def list(self, api: str | None = None) -> list[dict[str, Any]]:
        with self._connect() as conn:
            if api is None:
                rows = conn.execute("SELECT doc FROM jobs ORDER BY created_at, job_id").fetchall()
            else:
                rows = conn.execute(
                    "SELECT doc FROM jobs WHERE api = ? ORDER BY created_at, job_id", (api,)
                ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def delete(self, job_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
